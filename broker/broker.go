// Package broker defines the Engine seam between a node's Hub and the
// transport that carries messages between nodes. The memory engine
// (broker/memory) is the single-node default; cluster engines (Redis, NATS)
// implement the same interface so the Hub never changes.
//
// Contract for implementations:
//   - Publish hands a message to every node that has local interest in its
//     room, including the publishing node, by calling Handler.HandleMessage
//     there. Messages from one publisher on one node arrive in publish order.
//   - Subscribe/Unsubscribe declare this node's interest in a room. The Hub
//     serialises them per room: Subscribe is called before the first local
//     member joins and Unsubscribe after the last one leaves.
//   - User rooms (names starting with protocol.UserRoomPrefix, "user:") reach every started
//     node, whatever its interest: engines carry all of them over a few
//     node-wide channels, and Subscribe and Unsubscribe of a user room do
//     nothing. Every connection has a user room, so a subscription per
//     user room would cost a subscription per connection, on every node
//     and on the backend; a user's messages are few, and a node without
//     one of the user's connections drops them in the Hub. Like any room,
//     a user room keeps one publisher's order.
//   - PublishControl reaches every node, whatever its interest.
//   - Handler methods must not block: the Hub only enqueues.
//   - An error from Publish means the message was not accepted and will not
//     be delivered; callers must tell their caller (never drop silently).
package broker

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrUnavailable is returned (wrapped) when the engine cannot be reached.
var ErrUnavailable = errors.New("broker: unavailable")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("broker: closed")

// Message is one publication to a room. Direct messages to a user are
// publications to the room "user:<id>" (protocol.UserRoom). Offset and Epoch are set by engines
// that keep history; zero otherwise.
type Message struct {
	Room  string          `json:"room"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data,omitempty"`
	// MsgID is unique per message across the cluster.
	MsgID  string `json:"msgId"`
	Offset uint64 `json:"offset,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
	// Ack asks recipients to acknowledge the message (acked delivery).
	Ack bool `json:"ack,omitempty"`
	// PublishedAt is the publish time in Unix nanoseconds.
	PublishedAt int64 `json:"ts"`
	// CorrelationID of whoever published it (a connection or an API request).
	CorrelationID string `json:"cid,omitempty"`
	// From is the user id of the client that published it; empty for
	// server-side publishes (API, Server.Publish).
	From string `json:"from,omitempty"`
	// IdempotencyKey, if set, makes a retried publish to a room with
	// history count once: a Publish whose key was already stored for the
	// room within the history window returns nil without storing or
	// delivering again, and sets MsgID, Offset and Epoch to those of the
	// stored message.
	IdempotencyKey string `json:"idk,omitempty"`
}

// Position is a point in a room's history: the offset of a message and the
// epoch of the history it is in.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
	// MsgID, when set, is the msgId of the message at Offset, as whoever
	// gives the position saw it. Since checks it (see Historian): a
	// history rolled back to an older copy (Redis restarted from an older
	// snapshot, a stream restored from a backup) gives its offsets again
	// to other messages in the same epoch, and only the message at the
	// offset tells the two apart.
	MsgID string `json:"msgId,omitempty"`
}

// HistoryPolicy says how much history a room keeps; Size 0 means none.
type HistoryPolicy struct {
	// Size is how many messages are kept at most (engines may trim
	// approximately, e.g. Redis MAXLEN ~, keeping a few more).
	Size int
	// TTL is how long a message is kept; 0: as long as Size allows.
	TTL time.Duration
}

// HistoryFunc gives a room's policy (from the room-name patterns of the
// config).
type HistoryFunc func(room string) HistoryPolicy

// ErrUnrecoverable is returned (wrapped) by Since when the gap cannot be
// filled: the messages were trimmed or expired, or the position is of
// another epoch.
var ErrUnrecoverable = errors.New("broker: history cannot fill the gap")

// Historian is implemented by engines that keep room history.
//
// Publish to a room with history appends the message to the history
// first (assigning the room's next offset and its epoch), sets m.Offset
// and m.Epoch on the caller's message, then delivers; it returns only
// after the message is stored and accepted. Offsets are per room,
// strictly increasing, and start at 1 in a new epoch; the epoch changes
// whenever history is lost (stream deleted, Redis flushed or restarted
// without its data, memory engine restarted).
type Historian interface {
	// SetHistory sets the per-room policy; called once, before Start.
	SetHistory(f HistoryFunc)
	// Since returns the messages of room published after pos, oldest
	// first, at most limit (limit <= 0: all kept), and the room's current
	// position (the offset of its newest message, and its epoch). If pos
	// is of another epoch, or messages after pos.Offset were trimmed or
	// expired, it returns the current position and an error wrapping
	// ErrUnrecoverable. So it does when pos.MsgID is set and the message
	// at pos.Offset is another one, or (engines whose history can be
	// rolled back) is no longer kept: the position is not one of this
	// history's. A zero pos asks only for the current position. The
	// current position's MsgID is the newest message's where the engine
	// keeps it at no cost, "" otherwise.
	Since(ctx context.Context, room string, pos Position, limit int) ([]*Message, Position, error)
}

// ControlKind names a cluster-wide control action.
type ControlKind string

// Control kinds.
const (
	// ControlDisconnectUser closes every connection of User on every node.
	ControlDisconnectUser ControlKind = "disconnect_user"
	// ControlRevoke closes connections whose token has TokenID (jti) or whose
	// user is User, and makes nodes refuse such tokens until they expire.
	ControlRevoke ControlKind = "revoke"
	// ControlSessionPending tells the node holding session Session, of
	// User, that the session's previous connection ended with
	// unacknowledged messages, now in the session store for it to
	// redeliver. User lets the node find the session's connection among
	// the user's.
	ControlSessionPending ControlKind = "session_pending"
)

// Control kinds of the admin console (package admin): a node asks every
// node a question (Payload holds it) and each answers with a reply that
// names the question; nodes that did not ask ignore the replies. Nothing
// is sent while no console is in use.
const (
	ControlAdminQuery ControlKind = "admin_query"
	ControlAdminReply ControlKind = "admin_reply"
)

// Control is a message that must reach every node.
type Control struct {
	Kind    ControlKind `json:"kind"`
	User    string      `json:"user,omitempty"`
	TokenID string      `json:"jti,omitempty"`
	// Until is when a revocation stops mattering (token expiry), Unix seconds.
	Until int64 `json:"until,omitempty"`
	// At is when a revocation of User was made, Unix seconds: it applies
	// to the user's tokens issued up to then. Zero: when it arrives.
	At     int64  `json:"at,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Payload carries what a kind needs beyond the fields above (the
	// admin console's questions and answers).
	Payload json.RawMessage `json:"payload,omitempty"`
	// Session is the session id of ControlSessionPending.
	Session string `json:"session,omitempty"`
}

// Handler receives what the engine delivers to this node.
type Handler interface {
	HandleMessage(m *Message)
	HandleControl(c *Control)
	// HandleGap is called when this node may have missed messages of rooms
	// and history cannot fill the gap: rooms without history after the
	// engine resubscribed, or rooms whose catch-up from history failed.
	HandleGap(rooms []string)
}

// ControlGapHandler is implemented by Handlers that want to know when
// this node may have missed control messages: an engine calls
// HandleControlGap once its control subscription is back after a break
// (a Redis resubscribe, a NATS reconnect). Control messages are not kept
// anywhere, so the handler re-reads whatever state they carry from where
// that state is stored (revocations: Config.Revocations). Like every
// Handler method, it must not block.
type ControlGapHandler interface {
	HandleControlGap()
}

// Broker is a message engine. See the package documentation for the contract.
type Broker interface {
	// Start connects the engine and begins delivering to h. It is called once.
	Start(ctx context.Context, h Handler) error
	Publish(ctx context.Context, m *Message) error
	Subscribe(ctx context.Context, room string) error
	Unsubscribe(ctx context.Context, room string) error
	PublishControl(ctx context.Context, c *Control) error
	// Health reports nil while the engine can deliver.
	Health(ctx context.Context) error
	// Close stops delivery and releases resources.
	Close() error
}

// BatchPublisher is implemented by engines whose Publish waits for a
// round trip to a server (Redis). PublishBatch publishes ms as that many
// Publish calls in that order would, in one round trip, and sets errs[i]
// (len(errs) == len(ms)) to what Publish would have returned for ms[i].
// Herald sends a connection's publications through it while earlier
// ones are still unconfirmed, so that one connection can publish faster
// than one message per round trip and still keep its order.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, ms []*Message, errs []error)
}
