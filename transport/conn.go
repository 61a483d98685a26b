package transport

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MessageType is the type of a data message: Text or Binary.
type MessageType int

// Data message types, numerically equal to their RFC 6455 opcodes.
const (
	Text   MessageType = 1
	Binary MessageType = 2
)

const (
	ctrlQueueSize = 16
	maxBatchItems = 64
	maxBatchBytes = 256 << 10

	closeGrace    = 5 * time.Second // graceful Close: flush, close frame, wait for the reply
	failGrace     = time.Second     // protocol violation, slow consumer, echo
	pingFrameSize = 2 + 8
)

// Conn is one server-side WebSocket connection. See the package
// documentation for its concurrency contract.
type Conn struct {
	nc          net.Conn
	br          *bufio.Reader
	opts        Options
	neg         negotiated
	subprotocol string
	epoch       time.Time // monotonic base for lastSeen

	queue      chan *Prepared
	ctrl       chan []byte       // complete control frames (pongs); written before data
	closeReq   chan closeRequest // at most one request is ever sent
	closing    chan struct{}     // closed once closing starts: Send fails from then on
	kill       chan struct{}     // closed by Terminate
	peerClosed chan struct{}     // closed when the reader has seen the peer's close or EOF
	done       chan struct{}     // closed when the socket is closed and the writer has exited

	// mu guards the fields below. It is never held while blocking on the
	// socket or a channel, and no other lock is taken while it is held.
	mu            sync.Mutex
	cause         error
	closeStarted  bool
	killed        bool
	closeDeadline time.Time // once closing: caps every socket write
	closeErr      error     // writing the close frame failed

	socketOnce     sync.Once
	peerClosedOnce sync.Once

	lastSeen  atomic.Int64 // nanoseconds since epoch
	framesOut atomic.Uint64
	bytesOut  atomic.Uint64
	bytesIn   atomic.Uint64

	// readMu serialises readers: Read, and Close draining the socket for
	// the peer's close reply when no Read is in progress.
	readMu sync.Mutex
	r      readState
	w      writeState
}

// closeRequest asks the writer to end the connection with frame.
type closeRequest struct {
	frame    []byte // complete close frame
	flush    bool   // write what is already queued first
	waitPeer bool   // after the close frame, wait for the peer's close or EOF
}

func newConn(nc net.Conn, br *bufio.Reader, opts Options, neg negotiated, subprotocol string) *Conn {
	c := &Conn{
		nc:          nc,
		br:          br,
		opts:        opts,
		neg:         neg,
		subprotocol: subprotocol,
		epoch:       time.Now(),
		queue:       make(chan *Prepared, opts.SendQueueSize),
		ctrl:        make(chan []byte, ctrlQueueSize),
		closeReq:    make(chan closeRequest, 1),
		closing:     make(chan struct{}),
		kill:        make(chan struct{}),
		peerClosed:  make(chan struct{}),
		done:        make(chan struct{}),
	}
	c.w.batch = make([][]byte, 0, maxBatchItems+ctrlQueueSize+1)
	return c
}

func (c *Conn) start() { go c.writeLoop() }

func (c *Conn) now() int64 { return int64(time.Since(c.epoch)) }

// Send enqueues m without blocking. When the send queue is full the peer
// is not keeping up: Send returns ErrSlowConsumer and closes the
// connection with code 4008, so that one slow client never stalls a
// broadcaster. After closing has started Send returns ErrClosed.
func (c *Conn) Send(m *Prepared) error {
	select {
	case <-c.closing:
		return ErrClosed
	default:
	}
	select {
	case c.queue <- m:
		return nil
	default:
	}
	cause := fmt.Errorf("%w: %w", ErrSlowConsumer, &CloseError{Code: CloseSlowConsumer, Reason: "slow consumer"})
	if !c.startClose(closeRequest{frame: closeFrame(CloseSlowConsumer, "slow consumer")}, cause, failGrace) {
		return ErrClosed
	}
	return ErrSlowConsumer
}

// WriteText enqueues a text message for this connection only, compressed
// according to the connection's Options. It does not block; see Send.
func (c *Conn) WriteText(b []byte) error {
	return c.Send(NewPrepared(Text, b, c.opts.CompressionThreshold, c.opts.CompressionLevel))
}

// Done is closed when the socket is closed and the writer goroutine has
// exited.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended: a *CloseError (sent or received),
// ErrHeartbeatTimeout, ErrSlowConsumer wrapped with a *CloseError 4008, or
// an I/O error. It is nil while the connection is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// LastSeen returns when the last frame of any kind, pongs included, was
// received from the peer (or the upgrade time if none was).
func (c *Conn) LastSeen() time.Time {
	return c.epoch.Add(time.Duration(c.lastSeen.Load()))
}

// Compressed reports whether permessage-deflate was negotiated.
func (c *Conn) Compressed() bool { return c.neg.deflate }

// Subprotocol returns the negotiated subprotocol, or "".
func (c *Conn) Subprotocol() string { return c.subprotocol }

// RemoteAddr returns the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Stats returns the frames and bytes written and the bytes read, counted
// as on the wire (headers and compressed payloads included).
func (c *Conn) Stats() (framesOut, bytesOut, bytesIn uint64) {
	return c.framesOut.Load(), c.bytesOut.Load(), c.bytesIn.Load()
}
