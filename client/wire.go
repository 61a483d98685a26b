package client

import (
	"encoding/json"
	"strings"

	"github.com/heraldrt/herald/protocol"
)

// The wire types are package protocol's: protocol.Request for every frame
// the Client sends, protocol.Welcome, protocol.Event, protocol.ErrorFrame,
// protocol.ServerShutdown and protocol.JoinReply for what it reads. Only
// the decoding of an incoming frame whose type is not yet known lives
// here.

// frame is the first decoding of every frame the server sends after the
// welcome: its type and id, and the fields of protocol.Event, which also
// carry a reply's data and a gap's room. An error or server_shutdown
// frame, rare, is decoded again into its protocol type (body). Unknown
// fields are ignored as the protocol asks.
type frame struct {
	Type string          `json:"type"`
	ID   json.RawMessage `json:"id"`
	protocol.Event
}

// id returns the frame's request id as text: a JSON string unquoted, a
// number as written, "" when absent.
func (f *frame) id() string { return idText(f.ID) }

// idText returns a request id as text: a JSON string unquoted, a number
// as written, "" when absent.
func idText(id json.RawMessage) string {
	raw := strings.TrimSpace(string(id))
	if raw == "" || raw == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(id, &s) == nil {
		return s
	}
	return raw
}

// position is where a Client is in a room's history: the offset, epoch
// and msgId of the last message it received. The server checks the msgId
// when the Client recovers: a history rolled back to an older copy gives
// the offset to another message.
type position struct {
	offset uint64
	epoch  string
	msgID  string
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
