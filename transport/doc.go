// Package transport is Herald's server side of the WebSocket protocol:
// RFC 6455 framing on a hijacked net.Conn, with permessage-deflate
// (RFC 7692) at a configurable level. It owns the socket, the frames,
// heartbeats and the closing handshake, and knows nothing about rooms or
// message formats.
//
// # Fan-out
//
// A broadcast is encoded once with [NewPrepared], whose frame holds the
// message's only copy; its compressed frame is built on first use. The
// same bytes are written to every recipient.
//
// Send appends to the connection's queue and, unless the connection is
// already waiting for a turn, puts it on the ready list of one of
// GOMAXPROCS flush shards. Each shard's worker goroutine runs only while
// its list is non-empty: for every ready connection it takes everything
// queued and writes it with one non-blocking writev. While the workers
// are busy more messages queue up, so under load each connection's turn
// carries many frames in one system call. When the socket does not take
// the whole batch (the peer is slow), the rest is handed to a goroutine
// that waits for the peer, for up to WriteTimeout, and then gives the
// connection back to its shard; a worker never blocks on one client.
//
// The flush workers, the pollers and the heartbeat clock serve every
// connection of the process and run only while they have work. Each
// Upgrader holds them (NewUpgrader); Upgrader.Close, once the
// connections are closed, gives the hold back, and the last one waits
// until they have all ended, so that a server's shutdown leaves none of
// them behind.
//
// On Linux a worker writes the turns of up to 256 ready connections with
// one io_uring submission: a writev each, with RWF_NOWAIT, so a full
// socket answers EAGAIN at once exactly as a non-blocking writev does.
// The kernel's work per socket is the same; the system call's own cost
// (about 0.6 µs on a virtual machine with the usual speculative
// execution mitigations, plus the descriptor lookup) is shared, which
// cuts the CPU per write on loopback by about a quarter. Where the
// kernel does not offer io_uring to the process (older kernels, or one
// whose io_uring would wait on a full socket, which a probe at first use
// checks; recent Docker and containerd default seccomp profiles refuse
// it), after DisableIOUring, or with HERALD_IO_URING=off in the
// environment, each turn is a writev of its own. IOURing reports which.
//
// # Concurrency contract
//
//   - Upgrade starts no goroutine per connection. The write side has at
//     most one owner at a time: a flush worker during the connection's
//     turn, the goroutine finishing a blocked write, or the close
//     sequence. Ownership passes under Conn.mu; only the owner writes to
//     the socket. Done is closed once the socket is closed and the last
//     owner has finished.
//   - Heartbeats run on one clock per process (a heap of connections by
//     next wake-up and one timer): a ping every PingInterval, and the
//     connection is terminated when nothing at all has arrived within
//     PongTimeout of it. Bytes the socket holds unread (FIONREAD) count
//     as arrived, and so do whole frames waiting in the connection's
//     read buffer behind a message the application still holds: a
//     process short of CPU, or an application slow with one message,
//     that has not read a pong yet does not terminate a live client
//     (UnreadBytes). Part of a frame in the buffer does not count. Over
//     TLS terminated in-process (*tls.Conn), the socket under the TLS is
//     asked, and what crypto/tls holds is moved into the read buffer
//     without waiting, when no read is in progress.
//   - Read runs on the caller's goroutine and must be called from one
//     goroutine at a time. TryRead is its non-waiting form: with
//     NotifyReadable, which runs a callback on another goroutine when the
//     socket has bytes (one epoll instance per process watches idle
//     sockets), a server holds no goroutine and no read buffer for an
//     idle connection, and only a read buffer for one that stopped
//     halfway through a frame (4 KiB, or the frame's size once 4 KiB of
//     a larger one have come). Do not mix the two on one connection.
//     Read buffers beyond the 4 KiB one (a large frame's, a fragmented
//     or compressed message's assembly buffer, and in Read a large
//     frame's payload while it arrives) share a bound in bytes across an
//     Upgrader's connections (Options.MaxReadingBytes, or a ReadBudget
//     shared by several Upgraders; over it: 1013, ErrReadsFull). A
//     connection that ends mid-frame gives its bytes back.
//   - Hold and Release let a server queue messages behind one it has not
//     sent yet (Herald's welcome): Send queues while held, Release puts
//     its message first and starts writing.
//   - Send and WriteText never block: they enqueue on a queue bounded in
//     messages and in bytes. When it is full (in messages while the
//     socket is full too; in bytes at any time), the connection is closed
//     as a slow consumer (4008) so that a broadcaster is never stalled by
//     one client. The queues of an Upgrader's connections share a bound in
//     bytes (Options.MaxQueuedBytes; over it: 1013 for the connection
//     holding the most whose write waits for its peer, else for the one
//     whose message does not fit).
//   - Close, Terminate, Done, Err, LastSeen, Stats and the other getters
//     are safe to call from any goroutine.
//
// Conn.mu guards the queues, the write side's ownership and the close
// state; it is a leaf lock held only for field updates, never across I/O. Conn.readMu serialises Read and the
// close-reply drain in Close.
//
// # Close codes
//
//	Code  Name                  Sent when
//	1000  CloseNormal           Close(1000, ...) by the application
//	1001  CloseGoingAway        server shutdown / drain
//	1002  CloseProtocolError    frame violates RFC 6455 / RFC 7692
//	1003  CloseUnsupportedData  application rejects the message type
//	1005  CloseNoStatus         received close frame had no code (never sent)
//	1006  CloseAbnormal         socket dropped without a close frame (never sent)
//	1007  CloseInvalidPayload   invalid UTF-8 or invalid deflate data
//	1008  ClosePolicyViolation  application policy (auth, abuse), or
//	                            more than ControlFrameRate pings/pongs
//	1009  CloseMessageTooBig    message larger than Options.ReadLimit
//	1011  CloseInternalError    server error (Abort by the application)
//	1013  CloseTryAgainLater    the Upgrader's queues full (MaxQueuedBytes),
//	                            or its read buffers (MaxReadingBytes)
//	4008  CloseSlowConsumer     send queue full, in messages or bytes (or Abort)
//
// Whether a client should reconnect after each, and the codes Herald
// adds, are in one table: protocol.CloseCodes (docs/protocol.md). A code
// that no endpoint may send (1005, 1006, 1015, and those outside
// 1000-1003, 1007-1014 and 3000-4999), given to Close or Abort, goes out
// as a close frame without a status.
//
// A heartbeat timeout (ErrHeartbeatTimeout) ends the connection without
// a close frame; the client sees 1006 and should reconnect with backoff.
//
// # Limits
//
// On Linux, Upgrade takes the socket of a *net.TCPConn or *net.UnixConn
// over as a bare descriptor and closes the net.Conn: Go's socket and its
// runtime poll descriptor cost about 550 bytes per connection that an
// idle WebSocket does not need. Reads are then watched by the package's
// epoll instance, writes are non-blocking, and the rare waits (a peer
// that does not read, a blocking Read, the closing handshake) are
// watched by two more epoll instances that run only while someone
// waits. Other net.Conn types (TLS terminated in-process), and other
// systems, keep their net.Conn and write every batch from a short-lived
// goroutine through net.Buffers.WriteTo, which is one Write per frame
// for TLS.
package transport
