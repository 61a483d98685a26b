package herald

import (
	"encoding/json"
	"time"

	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/transport"
)

// The protocol seam.
//
// The core of this package (conn and Server: identity and permissions,
// rooms and fan-out, acks, limits, sessions and recovery, drain, hooks,
// metrics, logs) knows nothing of frames. A client reaches it through a
// protocol adapter, which decodes the client's requests into calls of the
// core's operations and encodes what the core answers and announces into
// the client's frames. Each connection holds its adapter as one value,
// its link: the transport that carries the client and the protocol
// spoken on it, in a single interface so that an idle connection pays
// for one pointer pair, not two.
//
// The core's operations (ops.go) are methods of conn called on the
// connection's read side, one request at a time:
//
//	join(ref, room, from)   leave(ref, room)   ack(ref, msgIDs)
//	publish(ref, room, event, data, ack, idempotencyKey)
//	emit(ref, event, data)  refresh(ref, token) ping(ref)
//
// ref is the adapter's own reference to the request (v1: the request's
// id, as raw JSON; empty when the client wants no answer). The core
// answers it exactly once, through link.reply or link.fail, possibly
// later and from another goroutine (a pipelined publish), always in
// request order. Answers are JSON objects whose shape docs/protocol.md
// describes (the v1 reply data); an adapter may pass them on as they are.
//
// Messages to rooms and users go the other way without the adapter's
// code on the path: the hub encodes each message once per protocol (the
// link's hub.Codec, in its own slot of hub.Delivery) and queues the same
// prepared frame to every member speaking that protocol, straight to the
// member's transport (link.direct). What the core says on its own (the
// welcome, a gap, a token about to expire, the drain) goes through the
// link's notice methods.
//
// How v1 is plugged in (v1.go): serveWebSocket admits the upgrade
// (authentication, origin, limits, OnUpgrade), accepts the WebSocket,
// wraps it in a v1Link and hands the conn to run, which opens the
// session, joins rooms and sends the welcome through the link; v1's
// read side (serveReads) then decodes each text frame with
// protocol.Decode and calls the operation it names (v1.handle). v1Codec
// (codec.go) is hub codec slot 0.
//
// Where another protocol goes: an HTTP entry point that admits the
// client with the same checks, a link type over its transport (an
// Engine.IO socket, SSE's response writer, an MQTT session over a
// WebSocket), a hub.Codec in a slot of its own, and a read side that
// maps its packets onto the operations above. Nothing in the core
// changes: rooms, acks, limits, sessions, drain and hooks are shared, and
// a room's members may speak any mix of protocols.

// clientTransport is what the core needs of the connection that carries a
// client: queueing prepared frames without blocking (a full queue closes
// the connection as a slow consumer), closing, and what the queue holds.
// A *transport.Conn is one; an Engine.IO socket, polling or not, is
// another. It has no read side: reading is the adapter's.
type clientTransport interface {
	// Send queues a prepared frame (shared with other connections: it
	// must not be changed) and returns at once.
	hub.Sender
	// Hold makes Send queue behind a frame that Release puts first:
	// deliveries that race with the welcome wait for it.
	Hold()
	Release(p *transport.Prepared) error
	// Close closes gracefully with a close code and reason and returns
	// once the connection is gone; Abort closes at once with them and
	// reports whether this call closed it; Terminate drops the
	// connection, recording cause as its error.
	Close(code int, reason string) error
	Abort(code int, reason string, cause error) bool
	Terminate(cause error)
	// Done is closed once the connection is gone; Err then says why
	// (transport.ErrHeartbeatTimeout, ErrSlowConsumer, a *CloseError…).
	Done() <-chan struct{}
	Err() error
	// LastSeen is when the client was last heard from.
	LastSeen() time.Time
	Compressed() bool
	// Queued, QueueLimit and QueueRoom describe the send queue in
	// frames and bytes: a history replay waits for room in it.
	Queued() int
	QueueLimit() int
	QueueRoom() int
}

// link is a connection's way to its client: its transport and the
// protocol adapter that speaks on it (see the top of this file). The
// methods that take c run on the goroutines the core calls them from,
// one at a time per connection for the answers (the read side or the
// publish pipeline), concurrently with deliveries for the notices.
type link interface {
	clientTransport
	// protocol names the protocol in metrics and logs: "v1", "socketio".
	protocol() string
	// direct returns what the hub queues broadcasts to: the sender and
	// the codec of the link's protocol.
	direct() (hub.Sender, hub.Codec)
	// welcome sends the connection's first frame, ahead of everything
	// held since Hold, and ends the hold.
	welcome(c *conn, w *welcome)
	// reply answers request ref with data, a JSON object; fail answers
	// it with an error code (protocol.Code*) and a message for humans.
	// fail with an empty ref is an error about no request in particular
	// (a rate-limited or unreadable frame). reply with an empty ref
	// sends nothing.
	reply(c *conn, ref json.RawMessage, data json.RawMessage)
	fail(c *conn, ref json.RawMessage, code, message string)
	// gap tells the client that it may have missed messages of room
	// which history cannot give back.
	gap(c *conn, room string)
	// tokenExpiring warns that the credential expires at exp, left from
	// now, unless refreshed.
	tokenExpiring(c *conn, exp time.Time, left time.Duration)
	// shutdown tells the client that the node drains and when to
	// reconnect (to another node).
	shutdown(c *conn, retryAfter time.Duration)
}

// welcome is what the core tells a client once its connection is set up.
type welcome struct {
	Rooms     []string // rooms joined before the welcome (OnUpgrade, a resumed session)
	Resumed   bool     // the session asked for was resumed
	Heartbeat time.Duration
}
