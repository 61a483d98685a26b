// Package transport is Herald's server side of the WebSocket protocol:
// RFC 6455 framing on a hijacked net.Conn, with permessage-deflate
// (RFC 7692) at a configurable level. It owns the socket, the frames,
// heartbeats and the closing handshake, and knows nothing about rooms or
// message formats.
//
// # Fan-out
//
// A broadcast is encoded once with [NewPrepared]. Its frame, and its
// compressed frame, are built on first use and the same bytes are
// written to every recipient. Each connection's writer coalesces
// everything queued into a single writev (net.Buffers), so a burst of
// messages costs one system call per connection, not one per message.
//
// # Concurrency contract
//
//   - Upgrade starts exactly one goroutine per connection, the writer. It
//     owns every socket write (data, pongs, pings, close frames) and exits
//     when the connection ends; Done is closed after it has exited and
//     the socket is closed.
//   - Read runs on the caller's goroutine and must be called from one
//     goroutine at a time.
//   - Send and WriteText never block: they enqueue on a bounded queue.
//     When it is full the connection is closed as a slow consumer (4008)
//     so that a broadcaster is never stalled by one client.
//   - Close, Terminate, Done, Err, LastSeen, Stats and the other getters
//     are safe to call from any goroutine.
//
// Conn.mu guards the close state; it is a leaf lock held only for field
// updates, never across I/O. Conn.readMu serialises Read and the
// close-reply drain in Close.
//
// # Close codes
//
//	Code  Name                  Sent when                                 Client should
//	1000  CloseNormal           Close(1000, ...) by the application       not reconnect
//	1001  CloseGoingAway        server shutdown / drain                   reconnect with backoff
//	1002  CloseProtocolError    frame violates RFC 6455 / RFC 7692        not reconnect (bug)
//	1003  CloseUnsupportedData  application rejects the message type      not reconnect
//	1005  CloseNoStatus         received close frame had no code          (never sent)
//	1006  CloseAbnormal         socket dropped without a close frame      (never sent) reconnect
//	1007  CloseInvalidPayload   invalid UTF-8 or invalid deflate data     not reconnect (bug)
//	1008  ClosePolicyViolation  application policy (auth, abuse)          not reconnect
//	1009  CloseMessageTooBig    message larger than Options.ReadLimit     not reconnect (bug)
//	1011  CloseInternalError    server error                              reconnect with backoff
//	4008  CloseSlowConsumer     send queue full                           reconnect with backoff
//
// A heartbeat timeout (ErrHeartbeatTimeout) ends the connection without
// a close frame; the client sees 1006 and should reconnect with backoff.
//
// # Limits
//
// The connection's writes go through net.Buffers.WriteTo: on a
// *net.TCPConn that is one writev; on other net.Conn types (TLS
// terminated in-process) it degrades to one Write per frame.
package transport
