package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Request types a client may send.
const (
	TypeJoin    = "join"
	TypeLeave   = "leave"
	TypePublish = "publish"
	TypeEmit    = "emit"
	TypeAck     = "ack"
	TypeRefresh = "refresh"
	// TypePing asks for an empty reply. It lets a client whose WebSocket
	// API hides the server's pings (browsers) check that the server still
	// answers.
	TypePing = "ping"
)

// Limits applied by Decode.
const (
	MaxIDLen    = 64  // bytes of the id field (string content or number literal)
	MaxRoomLen  = 256 // bytes of a room name
	MaxEventLen = 128 // bytes of an event name
	MaxAckIDs   = 1024
	// MaxIdempotencyKeyLen bounds a publish's idempotency key (bytes).
	MaxIdempotencyKeyLen = 128
	// MaxEpochLen bounds the epoch of a join's recovery position (bytes).
	MaxEpochLen = 128
	// MaxMsgIDLen bounds the msgId of a join's recovery position (bytes),
	// and the msgIds the Go client remembers and acknowledges (Herald's
	// are about 20 bytes; 4,096 remembered ids of up to the read limit
	// would be 8 GiB): an event with a longer one is delivered, but not
	// deduplicated or acknowledged.
	MaxMsgIDLen = 128
)

// Request is one decoded client frame.
type Request struct {
	Type string `json:"type"`
	// ID correlates a request with its reply or error. It is kept as the raw
	// JSON the client sent (a string or a number) and echoed back unchanged.
	ID     json.RawMessage `json:"id,omitempty"`
	Room   string          `json:"room,omitempty"`
	Event  string          `json:"event,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	MsgIDs []string        `json:"msgIds,omitempty"`
	// Ack on a publish asks every recipient to acknowledge the message; the
	// server redelivers it until they do (see docs/protocol.md).
	Ack bool `json:"ack,omitempty"`
	// Token is the new credential of a refresh request.
	Token string `json:"token,omitempty"`
	// IdempotencyKey on a publish makes a retry with the same key count
	// once in a room that keeps history (see docs/delivery.md).
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// Offset and Epoch on a join are the position of the last message of
	// the room the client saw: the server replays what followed before
	// live delivery resumes (recovery; see docs/protocol.md).
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
	// MsgID on a join that recovers is the msgId of the message at
	// Offset (the last event's, or the join reply's): the server checks
	// that its history still has that message there, and otherwise
	// answers recovered false. Without it the position is taken on trust
	// (clients before this field).
	MsgID string `json:"msgId,omitempty"`
}

// Recovering reports whether a join asks to recover from a position.
func (r *Request) Recovering() bool { return r.Offset != 0 || r.Epoch != "" }

// Error is a protocol-level failure to be sent to the client as an error
// frame. ID is the request's id when it could be recovered.
type Error struct {
	Code    string
	Message string
	ID      json.RawMessage
}

func (e *Error) Error() string { return fmt.Sprintf("protocol: %s: %s", e.Code, e.Message) }

func errorf(id json.RawMessage, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), ID: id}
}

// Decode parses and validates one text frame. On failure it returns an
// *Error ready to be sent back; the connection should stay open.
func Decode(b []byte) (*Request, error) { return decode(b, "") }

// DecodeAs is Decode for an object whose type is typ unless it has a
// "type" of its own, which is kept (the caller checks it): the argument
// of a Socket.IO herald:* event, whose event name is its type, decoded
// without a copy of it with the type written in.
func DecodeAs(typ string, b []byte) (*Request, error) { return decode(b, typ) }

func decode(b []byte, typ string) (*Request, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, errorf(nil, CodeBadMessage, "frame must be a JSON object")
	}
	var r Request
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, errorf(recoverID(b), CodeBadMessage, "invalid JSON: %s", jsonErrText(err))
	}
	if err := validateID(r.ID); err != nil {
		return nil, err
	}
	// The transport refuses text frames that are not UTF-8; escapes of
	// lone surrogates would still become U+FFFD in names.
	if err := checkSurrogates(b); err != nil {
		return nil, errorf(r.ID, CodeBadMessage, "invalid JSON: %s", err)
	}
	if r.Type == "" {
		r.Type = typ
	}
	if r.Type == "" {
		return nil, errorf(r.ID, CodeBadMessage, "missing field \"type\"")
	}
	switch r.Type {
	case TypeJoin:
		if err := ValidateRoom(r.Room); err != nil {
			return nil, errorf(r.ID, CodeBadRequest, "%s", err)
		}
		if err := validateToken("epoch", r.Epoch, MaxEpochLen); err != nil {
			return nil, errorf(r.ID, CodeBadRequest, "%s", err)
		}
		if err := validateToken("msgId", r.MsgID, MaxMsgIDLen); err != nil {
			return nil, errorf(r.ID, CodeBadRequest, "%s", err)
		}
	case TypeLeave:
		if err := ValidateRoom(r.Room); err != nil {
			return nil, errorf(r.ID, CodeBadRequest, "%s", err)
		}
	case TypePublish:
		if err := ValidateRoom(r.Room); err != nil {
			return nil, errorf(r.ID, CodeBadRequest, "%s", err)
		}
		if err := ValidateEvent(r.Event); err != nil {
			return nil, errorf(r.ID, CodeBadRequest, "%s", err)
		}
		if err := ValidateIdempotencyKey(r.IdempotencyKey); err != nil {
			return nil, errorf(r.ID, CodeBadRequest, "%s", err)
		}
	case TypeEmit:
		if err := ValidateEvent(r.Event); err != nil {
			return nil, errorf(r.ID, CodeBadRequest, "%s", err)
		}
	case TypeRefresh:
		if r.Token == "" {
			return nil, errorf(r.ID, CodeBadRequest, "refresh needs a \"token\"")
		}
	case TypePing:
	case TypeAck:
		if len(r.MsgIDs) == 0 {
			return nil, errorf(r.ID, CodeBadRequest, "ack needs a non-empty \"msgIds\" array")
		}
		if len(r.MsgIDs) > MaxAckIDs {
			return nil, errorf(r.ID, CodeBadRequest, "at most %d msgIds per ack", MaxAckIDs)
		}
	default:
		return nil, errorf(r.ID, CodeUnknownType, "unknown type %q", truncate(r.Type, 64))
	}
	if len(r.Data) > 0 && bytes.Equal(r.Data, []byte("null")) {
		r.Data = nil
	}
	return &r, nil
}

// ValidateRoom reports whether name is an acceptable room name: 1 to
// MaxRoomLen bytes of valid UTF-8 without control characters.
func ValidateRoom(name string) error {
	return validateName("room", name, MaxRoomLen)
}

// ValidateEvent reports whether name is an acceptable event name.
func ValidateEvent(name string) error {
	return validateName("event", name, MaxEventLen)
}

// ValidateIdempotencyKey reports whether key is an acceptable idempotency
// key: empty (none), or at most MaxIdempotencyKeyLen bytes of printable
// ASCII.
func ValidateIdempotencyKey(key string) error {
	return validateToken("idempotencyKey", key, MaxIdempotencyKeyLen)
}

// validateToken accepts an empty value or up to max bytes of printable
// ASCII.
func validateToken(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%q longer than %d bytes", field, max)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return fmt.Errorf("%q must be printable ASCII without spaces", field)
		}
	}
	return nil
}

func validateName(kind, name string, max int) error {
	if name == "" {
		return fmt.Errorf("missing field %q", kind)
	}
	if len(name) > max {
		return fmt.Errorf("%s name longer than %d bytes", kind, max)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%s name is not valid UTF-8", kind)
	}
	for _, r := range name {
		if unicode.IsControl(r) { // C0, DEL and C1, as for JWT subjects
			return fmt.Errorf("%s name contains a control character", kind)
		}
	}
	return nil
}

func validateID(id json.RawMessage) *Error {
	if len(id) == 0 {
		return nil
	}
	switch {
	case id[0] == '"':
		var s string
		if json.Unmarshal(id, &s) != nil || len(s) > MaxIDLen {
			return errorf(nil, CodeBadRequest, "\"id\" must be a string of at most %d bytes or a number", MaxIDLen)
		}
	case id[0] == '-' || (id[0] >= '0' && id[0] <= '9'):
		if len(id) > MaxIDLen {
			return errorf(nil, CodeBadRequest, "\"id\" number too long")
		}
	default:
		return errorf(nil, CodeBadRequest, "\"id\" must be a string or a number")
	}
	return nil
}

// recoverID tries to find a usable id in a frame that failed to decode as a
// whole (for example because "data" had the wrong type), so the error can
// still be matched to its request.
func recoverID(b []byte) json.RawMessage {
	var probe struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(b, &probe) != nil || validateID(probe.ID) != nil {
		return nil
	}
	return probe.ID
}

func jsonErrText(err error) string {
	return truncate(err.Error(), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
