package transport

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MessageType is the type of a data message: Text or Binary.
type MessageType uint8

// Data message types, numerically equal to their RFC 6455 opcodes.
const (
	Text   MessageType = 1
	Binary MessageType = 2
)

const (
	ctrlQueueSize = 16
	// overloadFactor × SendQueueSize bounds a queue whose socket still
	// takes data: it is long because the flush workers are behind, not
	// because the peer is slow.
	overloadFactor = 4

	closeGrace    = 5 * time.Second // graceful Close: flush, close frame, wait for the reply
	failGrace     = time.Second     // protocol violation, slow consumer, echo
	pingFrameSize = 2 + 8
)

// Conn is one server-side WebSocket connection. See the package
// documentation for its concurrency contract.
type Conn struct {
	// Send, run for every member of a room on each broadcast, touches
	// only the first cache line: mu, sendQ, the flags, room, queueLimit
	// and shard. Keep them together and first.
	//
	// mu guards the fields below up to hb. It is never held while
	// blocking on the socket or a channel, and no other lock is taken
	// while it is held.
	mu           sync.Mutex
	sendQ        []*Prepared // data waiting for the next turn
	owned        bool        // someone owns the write side (see the package doc)
	blocked      bool        // a write is waiting for the peer to read
	held         bool        // Hold: data waits for Release
	closeStarted bool
	killed       bool
	peerGone     bool // the reader has seen the peer's close or EOF
	finishing    bool // finish has started: it runs once
	finished     bool // the socket is closed and the write side done
	// room is how many more bytes the queue takes before the connection
	// is a slow consumer: Options.SendQueueBytes minus the sizes queued
	// since the last turn took the queue (negative after one message
	// larger than the bound).
	room       int32
	queueLimit int32       // opts.SendQueueSize
	shard      *flushShard // where the connection gets its turns
	ctrlQ      [][]byte    // complete control frames, written before data
	// closing is made when closing starts, or by Done, so that an open
	// connection nobody waits for holds none of its state.
	closing *closeState

	// nc is a *rawSocket for a TCP or Unix socket on Linux (see
	// newRawSocket), else the hijacked net.Conn itself (TLS terminated
	// in-process, a pipe), which every read and write then waits on.
	nc     net.Conn
	prefix *[]byte       // bytes that came with the upgrade request, read first; nil once read
	br     *bufio.Reader // nil while idle (see TryRead)
	opts   *Options      // shared by the Upgrader's connections
	neg    negotiated

	// fd is the raw socket's descriptor, set once by newConn (-1 when
	// nc is not a *rawSocket): flushTurn writes to it directly, without
	// the socket's reference count (a cold cache line per delivery, 5 %
	// of the server's CPU at 50k deliveries/s with poll.FD's). That is
	// safe because the descriptor is closed only by finish, which runs as
	// the write side's last owner, so no raw write is in flight or can
	// follow; Terminate only shuts the socket down while someone else
	// owns it. Not guarded by mu.
	fd          int32
	notifyState atomic.Int32
	// Where the heartbeat clock keeps the connection: when it is due (clock
	// time) and its index in the clock's heap (-1 when not scheduled).
	// Guarded by heartbeats.mu.
	hbIdx    int32
	hbAt     int64
	notifyFn func() // set by NotifyReadable, run by readable

	lastSeen  atomic.Int64 // heartbeat clock time (see heartbeatClock.now)
	pingAt    atomic.Int64 // when the unanswered ping was sent; 0 if none
	nextPing  atomic.Int64 // when the next ping is due; 0 before the first
	framesOut atomic.Uint64
	bytesOut  atomic.Uint64
	bytesIn   atomic.Uint64

	// readMu serialises readers: Read, and Close draining the socket for
	// the peer's close reply when no Read is in progress.
	readMu sync.Mutex
	r      readState
	w      writeState
}

// closeState is how the connection ends, made by closingLocked when
// closing starts. Guarded by Conn.mu.
type closeState struct {
	req       closeRequest // valid when requested
	requested bool         // req waits for the write side's owner
	cause     error        // what Err reports
	at        int64        // heartbeat clock time that caps every socket write; 0 if none
	err       error        // writing the close frame failed
	// wake is made by a close sequence waiting for the peer, and closed
	// by Terminate or the peer's close.
	wake chan struct{}
	done chan struct{} // made by Done, closed by finish
	// evicted is what the connection held when the queue budget closed
	// it to make room (see QueueBudget.freeing), given back by finish.
	evicted int64
}

// closingLocked returns the connection's close state, making it on the
// first call. c.mu must be held. Only Err, closeDeadline and the fields'
// own checks read it: its existence says nothing.
func (c *Conn) closingLocked() *closeState {
	if c.closing == nil {
		c.closing = new(closeState)
	}
	return c.closing
}

// closeRequest asks the write side to end the connection with frame.
type closeRequest struct {
	frame    []byte // complete close frame
	flush    bool   // write what is already queued first
	waitPeer bool   // after the close frame, wait for the peer's close or EOF
}

// newConn wraps nc, taking its socket over as a *rawSocket where it can
// (nc is closed then); prefix holds bytes the client sent right after the
// upgrade request.
func newConn(nc net.Conn, prefix []byte, opts *Options, neg negotiated) *Conn {
	if s := newRawSocket(nc); s != nil {
		nc = s
	}
	c := &Conn{
		nc:         nc,
		opts:       opts,
		neg:        neg,
		shard:      pickShard(),
		queueLimit: int32(min(opts.SendQueueSize, math.MaxInt32)),
		room:       int32(opts.SendQueueBytes),
		hbIdx:      -1,
		fd:         -1,
	}
	if s := c.raw(); s != nil {
		c.fd = s.fd
	}
	if len(prefix) > 0 {
		c.prefix = &prefix
	}
	c.lastSeen.Store(c.now())
	return c
}

// raw returns the connection's raw socket, or nil if it has none.
func (c *Conn) raw() *rawSocket {
	s, _ := c.nc.(*rawSocket)
	return s
}

// start arms the heartbeat on the process's heartbeat clock. No
// goroutine is started: writes happen on the flush workers.
func (c *Conn) start() {
	if c.opts.PingInterval > 0 {
		heartbeats.schedule(c, c.opts.PingInterval)
	}
}

// closeDeadline returns the deadline closing set (see closeState.at), or
// the zero time. c.mu must be held.
func (c *Conn) closeDeadline() time.Time {
	if c.closing == nil || c.closing.at == 0 {
		return time.Time{}
	}
	return heartbeats.base.Add(time.Duration(c.closing.at))
}

// now is the heartbeat clock's time, which lastSeen, pingAt and
// nextPing are kept in: one monotonic base per process rather than one
// per connection.
func (c *Conn) now() int64 { return heartbeats.now() }

// Send enqueues m without blocking. When SendQueueSize messages are
// already waiting while the socket is full (a write is waiting for the
// peer to read), or m would take the queue over SendQueueBytes, the peer
// is not keeping up: Send returns ErrSlowConsumer and closes the
// connection with code 4008, so that one slow client never stalls a
// broadcaster. A queue that grows only because the server itself is
// behind may hold overloadFactor times as many messages (never more
// bytes) before that happens. When the Upgrader's connections together
// queue MaxQueuedBytes, Send returns ErrQueuesFull and closes the
// connection with 1013, unless connections holding more than it does
// whose peers are not reading (their writes wait) can be closed instead:
// up to four of them are, each with 1013, the one holding the most
// first. After closing has started Send returns ErrClosed.
func (c *Conn) Send(m *Prepared) error { return c.send(m, 0, false) }

// SendNow is Send for a message the peer is waiting for (an answer to a
// request it sent): when no turn is in progress, the connection's turn
// is taken on the caller's goroutine, as Release takes it, instead of by
// a flush worker. The write is non-blocking all the same (what the
// socket does not take goes on in the background), and the frame is
// written without a worker's wakeup and without the scratch space a
// worker starting afresh allocates for its turn. Messages for many
// connections (broadcasts) should use Send, which lets a worker write
// them in one system call.
func (c *Conn) SendNow(m *Prepared) error { return c.send(m, 0, true) }

// send is Send (SendNow when now) after evictions holders have been
// closed to make room for m.
func (c *Conn) send(m *Prepared, evictions int, now bool) error {
	size := int32(min(m.Size(), math.MaxInt32))
	c.mu.Lock()
	if c.closeStarted {
		c.mu.Unlock()
		return ErrClosed
	}
	n, limit := len(c.sendQ), int(c.queueLimit)
	if n > 0 && size > c.room || n >= limit && (c.blocked || n >= overloadFactor*limit) {
		c.mu.Unlock()
		if !c.Abort(CloseSlowConsumer, "slow consumer", ErrSlowConsumer) {
			return ErrClosed
		}
		return ErrSlowConsumer
	}
	if !c.opts.queues.take(int64(size)) {
		c.mu.Unlock()
		if evictions < maxEvictions && c.opts.queues.makeRoom(c, int64(size)) {
			return c.send(m, evictions+1, now)
		}
		if !c.Abort(CloseTryAgainLater, "server busy: send queues full", ErrQueuesFull) {
			return ErrClosed
		}
		return ErrQueuesFull
	}
	c.room -= size
	c.sendQ = append(c.sendQ, m)
	claimed := !c.held && c.claimLocked()
	c.mu.Unlock()
	switch {
	case claimed && now:
		sc := turnScratches.Get().(*turnScratch)
		c.flushTurn(sc)
		turnScratches.Put(sc)
	case claimed:
		c.shard.push(c)
	}
	return nil
}

// heldBytes returns what the send queue holds, or -1 once closing has
// started (see holder).
func (c *Conn) heldBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeStarted {
		return -1
	}
	return c.opts.SendQueueBytes - int64(c.room)
}

// evict closes the connection, which holds held bytes in b, to make
// room in b for others' messages: with 1013, as the one whose message
// did not fit would be. held counts in b's freeing until finish.
func (c *Conn) evict(b *QueueBudget, held int64) bool {
	c.mu.Lock()
	if c.closeStarted {
		c.mu.Unlock()
		return false
	}
	c.closingLocked().evicted = held
	b.freeing.Add(held)
	c.mu.Unlock()
	c.Abort(CloseTryAgainLater, "server busy: send queues full", ErrQueuesFull)
	return true
}

// Abort closes the connection at once with code and reason, for a peer
// the server gives up on (e.g. one that leaves too many messages
// unacknowledged, which Send's full-queue check does not see) or a
// failure of the server's own: what is queued is dropped, the close frame
// is written, and the socket is closed without waiting for the reply.
// Err then reports cause wrapped together with a *CloseError, so both
// errors.Is and errors.As work (just the *CloseError when cause is nil).
// It reports whether it started closing: false when closing had already
// started. The reason is truncated to 123 bytes on a UTF-8 boundary.
func (c *Conn) Abort(code int, reason string, cause error) bool {
	reason = truncateUTF8(reason, maxControlPayload-2)
	var err error = &CloseError{Code: code, Reason: reason}
	if cause != nil {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	return c.startClose(closeRequest{frame: closeFrame(code, reason)}, err, failGrace)
}

// Queued returns how many data messages wait in the send queue: a
// sender with much to say (a history replay) paces itself by it rather
// than fill the queue and be closed as a slow consumer.
func (c *Conn) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sendQ)
}

// QueueLimit returns the send queue's bound (Options.SendQueueSize).
func (c *Conn) QueueLimit() int { return int(c.queueLimit) }

// QueueRoom returns how many more bytes the send queue takes now.
func (c *Conn) QueueRoom() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return int(c.room)
}

// Prefetch reads the fields Send uses, so that a broadcaster can bring
// several connections' state into the CPU cache at once (see
// hub.Prefetcher). It has no effect otherwise; the result is meaningless.
func (c *Conn) Prefetch() int { return int(c.queueLimit) }

// Hold makes Send queue data without writing it until Release, e.g.
// while a server subscribes a new connection to its rooms before telling
// it so: what is delivered meanwhile must wait behind that first
// message. The queue bound still applies. Control frames are not held.
func (c *Conn) Hold() {
	c.mu.Lock()
	c.held = true
	c.mu.Unlock()
}

// Release queues first, unless nil, ahead of everything sent since Hold,
// and writes from then on. The first turn is taken on the caller's
// goroutine, not on a flush worker: a new connection's first write (a
// welcome, behind an UpgradeHeld response) then costs one system call
// and no worker's wakeup, which at a few thousand connects a second was
// a goroutine started per connect.
func (c *Conn) Release(first *Prepared) error {
	c.mu.Lock()
	if c.closeStarted {
		c.mu.Unlock()
		return ErrClosed
	}
	c.held = false
	if first != nil {
		size := int32(min(first.Size(), math.MaxInt32))
		c.opts.queues.add(int64(size))
		c.room -= size
		c.sendQ = append(c.sendQ, nil)
		copy(c.sendQ[1:], c.sendQ)
		c.sendQ[0] = first
	}
	claimed := c.claimLocked()
	c.mu.Unlock()
	if claimed {
		sc := turnScratches.Get().(*turnScratch)
		c.flushTurn(sc)
		turnScratches.Put(sc)
	}
	return nil
}

// turnScratches serve turns taken outside the flush workers (Release).
// Their writes may be raw calls (see iovecScratch.raw).
var turnScratches = sync.Pool{New: func() any {
	sc := new(turnScratch)
	sc.iov.raw = true
	return sc
}}

// WriteText enqueues a text message for this connection only, compressed
// according to the connection's Options. It does not block; see Send.
func (c *Conn) WriteText(b []byte) error {
	return c.Send(NewPrepared(Text, b, c.opts.CompressionThreshold, c.opts.CompressionLevel))
}

// Done is closed when the socket is closed and nothing is writing to it
// any more.
func (c *Conn) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return closedChan
	}
	cl := c.closingLocked()
	if cl.done == nil {
		cl.done = make(chan struct{})
	}
	return cl.done
}

// closedChan is Done's answer once the connection has finished.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// closingStarted reports whether closing has started: Send fails from
// then on.
func (c *Conn) closingStarted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeStarted
}

// hasFinished reports whether Done is (about to be) closed.
func (c *Conn) hasFinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished
}

// Err returns why the connection ended: a *CloseError (sent or received),
// ErrHeartbeatTimeout, ErrSlowConsumer wrapped with a *CloseError 4008, or
// an I/O error. It is nil while the connection is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing == nil {
		return nil
	}
	return c.closing.cause
}

// LastSeen returns when the last frame of any kind, pongs included, was
// received from the peer (or the upgrade time if none was).
func (c *Conn) LastSeen() time.Time {
	return heartbeats.base.Add(time.Duration(c.lastSeen.Load()))
}

// Compressed reports whether permessage-deflate was negotiated.
func (c *Conn) Compressed() bool { return c.neg.deflate != 0 }

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string {
	if c.neg.subprotocol == 0 {
		return ""
	}
	return c.opts.Subprotocols[c.neg.subprotocol-1]
}

// RemoteAddr returns the peer's network address. For a TCP or Unix
// socket it is asked of the kernel at each call, and is empty once the
// socket is closed.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Stats returns the frames and bytes written and the bytes read, counted
// as on the wire (headers and compressed payloads included).
func (c *Conn) Stats() (framesOut, bytesOut, bytesIn uint64) {
	return c.framesOut.Load(), c.bytesOut.Load(), c.bytesIn.Load()
}

// unqueueLocked ends the count of what the queue held, which the caller
// takes (to write it or drop it), and returns its size. c.mu must be held.
func (c *Conn) unqueueLocked() int64 {
	taken := c.opts.SendQueueBytes - int64(c.room)
	c.room = int32(c.opts.SendQueueBytes)
	return taken
}

// UnreadBytes returns how many bytes the client sent that the
// connection's reader has not been given yet: those the socket holds
// (FIONREAD; not known on other systems than Linux), and those already
// taken into the connection's read buffer when they begin with a whole
// frame: the reader is busy with an earlier message (an application
// holding it, reads paused for backpressure), not waiting for the rest
// of a frame. A heartbeat that finds some knows the client is alive and
// only this process is late reading it: a pong read from the socket
// together with the message still being handled waits in the buffer,
// where FIONREAD does not see it.
//
// Over TLS terminated in this process (a *tls.Conn), the socket is the
// one under the TLS, and what crypto/tls has read from it and not
// returned yet counts too: when no read is in progress and the socket
// holds nothing, UnreadBytes moves it into the read buffer, without
// waiting (pullTLS).
//
// The buffer is looked at only while no read is in progress (its lock
// is free): a blocking Read in progress waits for the rest of a frame,
// and a TryRead in progress hands over what the buffer holds at once.
func (c *Conn) UnreadBytes() int {
	n := 0
	tc, _ := c.nc.(*tls.Conn)
	if s := c.raw(); s != nil {
		n = s.unread()
	} else if tc != nil {
		n = socketUnread(tc.NetConn())
	}
	if c.readMu.TryLock() {
		pulled := 0
		if tc != nil && n == 0 {
			pulled = c.pullTLS(tc)
		}
		// Pulled bytes count whole or not, as the socket's do.
		n += max(c.heldFrameBytes(), pulled)
		c.readMu.Unlock()
	}
	return n
}

// heldFrameBytes returns what the read buffer (or, before the first
// read, what came with the upgrade request) holds when it begins with a
// whole frame, else 0. Between reads the buffer begins at a frame
// boundary. readMu must be held.
func (c *Conn) heldFrameBytes() int {
	var p []byte
	switch {
	case c.br != nil:
		p, _ = c.br.Peek(c.br.Buffered()) // no I/O: no more than is buffered
	case c.prefix != nil:
		p = *c.prefix
	}
	if !wholeFrameAt(p) {
		return 0
	}
	return len(p)
}

// wholeFrameAt reports whether p begins with a whole frame, header and
// payload.
func wholeFrameAt(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	need := frameHeaderSize(p[1])
	if len(p) < need {
		return false
	}
	return framePayloadLen(p) <= uint64(len(p)-need)
}

// frameHeaderSize returns the size of a frame's header from its second
// byte: 2, the extended length's 2 or 8, and the mask's 4.
func frameHeaderSize(b1 byte) int {
	need := 2
	switch b1 & 0x7f {
	case 126:
		need += 2
	case 127:
		need += 8
	}
	if b1&maskBit != 0 {
		need += 4
	}
	return need
}

// framePayloadLen returns the payload length of the frame whose header
// (frameHeaderSize bytes at least) begins p.
func framePayloadLen(p []byte) uint64 {
	switch p[1] & 0x7f {
	case 126:
		return uint64(binary.BigEndian.Uint16(p[2:]))
	case 127:
		return binary.BigEndian.Uint64(p[2:])
	default:
		return uint64(p[1] & 0x7f)
	}
}
