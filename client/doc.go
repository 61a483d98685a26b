// Package client is a Go client for Herald's wire protocol v1
// (docs/protocol.md): it joins rooms, publishes, emits custom events to the
// server's hook and receives room events, and it keeps doing so across
// network cuts, server restarts and drains.
//
// It imports no server code: it speaks the protocol over
// github.com/coder/websocket, so it doubles as an independent check of the
// server's wire format.
//
// # Connection lifecycle
//
// Dial opens the first connection and returns once the server's welcome
// arrived. From then on the Client reconnects by itself:
//
//   - after a network cut, an unexpected close, two heartbeats without a
//     ping from the server, an attempt that outlasted its handshake
//     timeout (WithHandshakeTimeout, 30 s), or an upgrade refused for now
//     (429, 503, 5xx; the token provider is asked again each time) it
//     waits an exponential backoff with full jitter (WithReconnect) and
//     dials again; a refusal that says when to come back (Retry-After, as
//     a server over its admission bound answers with 503 overloaded) is
//     not retried before it, and the Clients it refused together spread
//     over as long again;
//   - after a server_shutdown frame it keeps receiving on the draining node
//     until the server's retryAfterMs has passed, then closes its side and
//     reconnects at once, without inflating the backoff;
//   - after close codes that say "do not come back" it stops for good and
//     reports the *CloseError through Err and Done;
//   - when the server refuses a reconnect for good it stops and reports the
//     *HandshakeError: at once for 400 and 404, and for 401 and 403 with a
//     fixed token (WithHeader); with WithTokenProvider after 3 such refusals
//     in a row, so that the provider can come up with a new token.
//     (A 4001 close, token expired, reconnects: with a fixed token, the
//     upgrade is then refused with 401 and the Client stops.)
//
// Close codes and what the Client does (the table is protocol.CloseCodes;
// a test keeps this copy in step with it):
//
//	code  meaning                          reconnect
//	1000  normal close                     yes (a close the client did not ask for)
//	1001  server draining                  yes, after retryAfterMs
//	1002  protocol violation               yes, but it is a client bug
//	1003  unsupported data                 yes, with backoff
//	1006  network cut, heartbeat timeout   yes, with backoff
//	1007  invalid UTF-8                    yes, but it is a client bug
//	1008  refused by policy                no, unless the cause is fixed
//	1009  message too big                  yes, send smaller messages
//	1011  server error                     yes, with backoff
//	1013  try again later                  yes, with backoff
//	4001  token expired                    yes, with a new token
//	4003  token or user revoked            no
//	4004  disconnected by the application  no
//	4008  slow consumer                    yes, with backoff; read faster
//
// The server keeps no room membership across connections, so the Client
// remembers the rooms joined with Join (and forgotten with Leave) and joins
// them again on every new connection before it reports Connected. A join
// the server refuses for now (broker_unavailable, rate_limited) is asked
// again on the same connection after a backoff, within the handshake
// timeout, rather than dropping a connection the server just admitted.
//
// # Delivery
//
// Events are handed to handlers registered with On and OnAny, or given
// to Dial with WithEventHandler, which sees direct messages to the user
// sent before Dial returns. Messages
// published with ack are acknowledged automatically, in batches
// (WithAckBatch), once every handler has returned; the server redelivers
// what it does not see acknowledged, so the Client drops an event whose
// msgId it handed out recently (the last 4096 ids).
//
// In rooms that keep history every Event has an Offset and an Epoch. The
// Client remembers the last it received per room (Position) and joins
// again with it after every reconnect, so the server sends what was
// published meanwhile, in order and once, before live events; it tells
// the application whether that filled the gap (WithRecoveryHandler: false
// means fetch the room's state again), and passes on the server's gap
// frames (WithGapHandler). WithIdempotencyKey makes a retried Publish
// count once. See docs/delivery.md.
//
// # Concurrency
//
// A Client is safe for concurrent use. Each connection has one reader and
// one writer goroutine; a supervising goroutine owns them and reconnects.
// Every handler (On, OnAny, WithStateHandler, WithFrameHandler) runs on a
// single dispatch goroutine, in the order frames arrived, so handlers need
// no locking among themselves but must return promptly: while they run, the
// next events wait, and a backlog of more than 1024 events stops reading
// from the socket. A handler may call Join, Publish and the other requests
// (bounded by a context), but not Close. Close stops everything and waits
// for every goroutine, handlers included.
package client
