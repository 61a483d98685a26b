package protocol

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Frame types the server sends.
const (
	TypeWelcome        = "welcome"
	TypeEvent          = "event"
	TypeReply          = "reply"
	TypeError          = "error"
	TypeServerShutdown = "server_shutdown"
	TypeTokenExpiring  = "token_expiring"
	// TypeGap tells a connection that it may have missed messages of a
	// room and that history cannot give them back: resync the room.
	TypeGap = "gap"
)

// Version is the wire protocol version announced in welcome.
const Version = 1

// Welcome is the first frame on every connection.
type Welcome struct {
	Type          string `json:"type"`
	Protocol      int    `json:"protocol"`
	ConnectionID  string `json:"connectionId"`
	SessionID     string `json:"sessionId"`
	CorrelationID string `json:"correlationId"`
	UserID        string `json:"userId"`
	HeartbeatMs   int64  `json:"heartbeatMs"`
	// ResumeToken, with SessionID, lets the client resume this session on
	// any node after a reconnect; it changes on every resume.
	ResumeToken string `json:"resumeToken"`
	Resumed     bool   `json:"resumed"`
	// Rooms lists the rooms restored by a resume and those the
	// application joined at the upgrade (Hooks.OnUpgrade).
	Rooms []string `json:"rooms,omitempty"`
}

// Event is a message delivered to a room's members or to a user. MsgID,
// Offset, Epoch and Ack are filled by engines that keep history and by acked
// delivery; clients must ignore zero values.
type Event struct {
	Room   string          `json:"room"`
	Event  string          `json:"event"`
	Data   json.RawMessage `json:"data,omitempty"`
	MsgID  string          `json:"msgId,omitempty"`
	Offset uint64          `json:"offset,omitempty"`
	Epoch  string          `json:"epoch,omitempty"`
	Ack    bool            `json:"ack,omitempty"`
	// From is the publishing user's id, set by the server (clients cannot
	// forge it); empty for server-side publishes.
	From string `json:"from,omitempty"`
	// TS is the publish time in Unix milliseconds.
	TS int64 `json:"ts,omitempty"`
}

// AppendEvent appends the JSON encoding of an event frame to dst. It is the
// hot path of every broadcast (run once per message, not per recipient), so
// it is written by hand; ev.Data must already be valid JSON.
func AppendEvent(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"type":"event","room":`...)
	dst = AppendString(dst, ev.Room)
	dst = append(dst, `,"event":`...)
	dst = AppendString(dst, ev.Event)
	if len(ev.Data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, ev.Data...)
	}
	if ev.MsgID != "" {
		dst = append(dst, `,"msgId":`...)
		dst = AppendString(dst, ev.MsgID)
	}
	if ev.Offset != 0 {
		dst = append(dst, `,"offset":`...)
		dst = strconv.AppendUint(dst, ev.Offset, 10)
	}
	if ev.Epoch != "" {
		dst = append(dst, `,"epoch":`...)
		dst = AppendString(dst, ev.Epoch)
	}
	if ev.Ack {
		dst = append(dst, `,"ack":true`...)
	}
	if ev.From != "" {
		dst = append(dst, `,"from":`...)
		dst = AppendString(dst, ev.From)
	}
	if ev.TS != 0 {
		dst = append(dst, `,"ts":`...)
		dst = strconv.AppendInt(dst, ev.TS, 10)
	}
	return append(dst, '}')
}

// Reply answers a request that succeeded.
type Reply struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// ErrorFrame answers a request that failed, or reports a problem with a
// frame that had no id.
type ErrorFrame struct {
	Type    string          `json:"type"`
	ID      json.RawMessage `json:"id,omitempty"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

// ServerShutdown tells a client that the server is draining: it should
// reconnect (to another node) after RetryAfterMs.
type ServerShutdown struct {
	Type         string `json:"type"`
	RetryAfterMs int64  `json:"retryAfterMs"`
	Reason       string `json:"reason,omitempty"`
}

// TokenExpiring warns that the connection's token expires at ExpiresAt
// (Unix ms): send a refresh before then or be closed with 4001.
type TokenExpiring struct {
	Type      string `json:"type"`
	ExpiresAt int64  `json:"expiresAt"`
	InMs      int64  `json:"inMs"`
}

// EncodeTokenExpiring returns a token_expiring frame.
func EncodeTokenExpiring(expiresAtMs, inMs int64) []byte {
	return mustMarshal(TokenExpiring{Type: TypeTokenExpiring, ExpiresAt: expiresAtMs, InMs: inMs})
}

// Gap is the frame of TypeGap.
type Gap struct {
	Type string `json:"type"`
	Room string `json:"room"`
}

// EncodeGap returns a gap frame for room.
func EncodeGap(room string) []byte {
	return mustMarshal(Gap{Type: TypeGap, Room: room})
}

// JoinReply is the data of a join's reply. For a room that keeps history
// it carries the room's position when live delivery began (Offset and
// Epoch: the client's position until an event comes; MsgID: the msgId of
// the message at Offset, when known, which a recovering join gives back)
// and, when the join asked to recover, whether everything after the
// client's position was replayed (Recovered).
type JoinReply struct {
	Room      string `json:"room"`
	Offset    uint64 `json:"offset,omitempty"`
	Epoch     string `json:"epoch,omitempty"`
	MsgID     string `json:"msgId,omitempty"`
	Recovered *bool  `json:"recovered,omitempty"`
	// Replayed is how many messages the recovery sent before the reply.
	Replayed int `json:"replayed,omitempty"`
}

// PublishReply is the data of a publish's reply: the message's id and,
// in a room that keeps history, its offset and epoch.
type PublishReply struct {
	MsgID  string `json:"msgId"`
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
}

// EncodeWelcome returns the JSON of w with its type set: what Marshal
// writes, appended by hand, since every connect sends one (encoding/json's
// reflection was 2 % of a connect's CPU).
func EncodeWelcome(w Welcome) []byte { return EncodeWelcomeAfter(0, w) }

// EncodeWelcomeAfter is EncodeWelcome with headroom bytes of room in
// front of the JSON (which starts at b[headroom:]), for a frame header
// to be written there (transport.NewPreparedInPlace): the welcome is
// then neither copied into a frame nor allocated twice.
func EncodeWelcomeAfter(headroom int, w Welcome) []byte {
	n := 160 + len(w.ConnectionID) + len(w.SessionID) + len(w.CorrelationID) + len(w.UserID) + len(w.ResumeToken)
	for _, r := range w.Rooms {
		n += len(r) + 3
	}
	b := make([]byte, headroom, headroom+n)
	b = append(b, `{"type":"welcome","protocol":`...)
	b = strconv.AppendInt(b, int64(w.Protocol), 10)
	b = append(b, `,"connectionId":`...)
	b = AppendString(b, w.ConnectionID)
	b = append(b, `,"sessionId":`...)
	b = AppendString(b, w.SessionID)
	b = append(b, `,"correlationId":`...)
	b = AppendString(b, w.CorrelationID)
	b = append(b, `,"userId":`...)
	b = AppendString(b, w.UserID)
	b = append(b, `,"heartbeatMs":`...)
	b = strconv.AppendInt(b, w.HeartbeatMs, 10)
	b = append(b, `,"resumeToken":`...)
	b = AppendString(b, w.ResumeToken)
	b = append(b, `,"resumed":`...)
	b = strconv.AppendBool(b, w.Resumed)
	if len(w.Rooms) > 0 {
		b = append(b, `,"rooms":[`...)
		for i, r := range w.Rooms {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, r)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// EncodeReply returns a reply frame for id carrying data (may be nil).
func EncodeReply(id json.RawMessage, data json.RawMessage) []byte {
	return mustMarshal(Reply{Type: TypeReply, ID: id, Data: data})
}

// EncodeError returns an error frame.
func EncodeError(id json.RawMessage, code, message string) []byte {
	return mustMarshal(ErrorFrame{Type: TypeError, ID: id, Code: code, Message: message})
}

// EncodeServerShutdown returns a server_shutdown frame.
func EncodeServerShutdown(retryAfterMs int64, reason string) []byte {
	return mustMarshal(ServerShutdown{Type: TypeServerShutdown, RetryAfterMs: retryAfterMs, Reason: reason})
}

// Marshal is json.Marshal without HTML escaping: '<', '>' and '&' are
// written as they are, not as \u003c, \u003e and \u0026, since frames and
// API bodies are read by programs, never embedded in HTML. It is the one
// JSON encoding of every frame and API body.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// mustMarshal encodes values whose types cannot fail to marshal. RawMessage
// fields are only ever set from data the decoder already validated.
func mustMarshal(v any) []byte {
	b, err := Marshal(v)
	if err != nil {
		panic("protocol: marshal: " + err.Error())
	}
	return b
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaped as Marshal does (no HTML
// escaping). Invalid UTF-8 is replaced by U+FFFD, as encoding/json does, so
// the output is always valid JSON.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
