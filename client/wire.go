package client

import (
	"encoding/json"
	"strings"
)

// Frame types of protocol v1.
const (
	typeJoin     = "join"
	typeLeave    = "leave"
	typePublish  = "publish"
	typeEmit     = "emit"
	typeAck      = "ack"
	typeWelcome  = "welcome"
	typeEvent    = "event"
	typeReply    = "reply"
	typeError    = "error"
	typeShutdown = "server_shutdown"
	typeGap      = "gap"
)

// maxAckIDs is the protocol's limit of msgIds in one ack frame.
const maxAckIDs = 1024

// request is every frame the client sends.
type request struct {
	Type   string          `json:"type"`
	ID     string          `json:"id,omitempty"`
	Room   string          `json:"room,omitempty"`
	Event  string          `json:"event,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	Ack    bool            `json:"ack,omitempty"`
	MsgIDs []string        `json:"msgIds,omitempty"`
	// publish
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
	// join: the position to recover from
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
}

// joinReply is the data of a join's reply.
type joinReply struct {
	Room      string `json:"room"`
	Offset    uint64 `json:"offset"`
	Epoch     string `json:"epoch"`
	Recovered *bool  `json:"recovered"`
}

// position is where a Client is in a room's history: the offset and
// epoch of the last message it received.
type position struct {
	offset uint64
	epoch  string
}

// frame is every frame the server sends; the fields a type does not use
// stay zero, and unknown fields are ignored as the protocol asks.
type frame struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`

	// reply, event
	Data json.RawMessage `json:"data"`
	// error
	Code    string `json:"code"`
	Message string `json:"message"`
	// event
	Room   string `json:"room"`
	Event  string `json:"event"`
	MsgID  string `json:"msgId"`
	TS     int64  `json:"ts"`
	Ack    bool   `json:"ack"`
	From   string `json:"from"`
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
	// server_shutdown
	RetryAfterMs int64  `json:"retryAfterMs"`
	Reason       string `json:"reason"`
	// welcome
	Protocol     int    `json:"protocol"`
	ConnectionID string `json:"connectionId"`
	SessionID    string `json:"sessionId"`
	UserID       string `json:"userId"`
	HeartbeatMs  int64  `json:"heartbeatMs"`
	ResumeToken  string `json:"resumeToken"`
	Resumed      bool   `json:"resumed"`
}

// id returns the frame's request id as text: a JSON string unquoted, a
// number as written, "" when absent.
func (f *frame) id() string {
	raw := strings.TrimSpace(string(f.ID))
	if raw == "" || raw == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(f.ID, &s) == nil {
		return s
	}
	return raw
}

// Event is a message published to a room the Client is in.
type Event struct {
	Room  string
	Event string
	// Data is the message's JSON payload as sent ("null" or empty when it
	// had none).
	Data  json.RawMessage
	MsgID string
	// TS is the publish time in Unix milliseconds.
	TS int64
	// From is the publishing user's id as the server knows it (empty for
	// server-side publishes); unlike anything in Data, clients cannot forge it.
	From string
	// Offset and Epoch are the message's place in the room's history, in
	// rooms that keep one (zero otherwise). The Client recovers from the
	// last one it received after a reconnect.
	Offset uint64
	Epoch  string
}

// marshalData encodes a request payload; nil stays absent and a
// json.RawMessage is used as is (after validation).
func marshalData(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return b, nil
}
