package transport

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/idle"
)

// ErrWouldBlock is returned by TryRead when the next message has not
// fully arrived; nothing of it has been consumed.
var ErrWouldBlock = errors.New("transport: no complete message available")

// States of Conn.notifyState.
const (
	notifyIdle    = iota // no callback pending
	notifyArmed          // waiting for the socket; the poller or finish runs the callback
	notifyRunning        // the callback has been started
)

// readBufferSize is the size of a connection's read buffer. It is taken
// from a pool while bytes are being read and returned when TryRead stops
// at a message boundary, so idle connections hold none.
const readBufferSize = 4096

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferSize) }}

// reader returns the connection's buffered reader, taking one from the
// pool if it holds none. readMu must be held.
func (c *Conn) reader() *bufio.Reader {
	if c.br == nil {
		c.br = readerPool.Get().(*bufio.Reader)
		c.br.Reset((*socketSource)(c))
	}
	return c.br
}

// releaseReader returns an empty read buffer to the pool, or drops it if
// growReader made it for one large frame, giving its bytes back to the
// read budget. readMu must be held.
func (c *Conn) releaseReader() {
	if c.br != nil && c.br.Buffered() == 0 {
		c.putReader()
	}
}

// putReader drops the read buffer whatever it holds: back to the pool,
// or, if growReader made it, its bytes back to the read budget. readMu
// must be held.
func (c *Conn) putReader() {
	c.br.Reset(nil)
	if n := c.br.Size(); n == readBufferSize {
		readerPool.Put(c.br)
	} else {
		c.opts.reading.give(int64(n))
	}
	c.br = nil
}

// dropReadBuffers drops every read buffer the connection holds once its
// read side has ended (or the connection has finished), giving their
// bytes back to the read budget: a client that dies halfway through a
// large frame or a fragmented message must not keep its charge. readMu
// must be held.
func (c *Conn) dropReadBuffers() {
	if c.br != nil {
		c.putReader()
	}
	if big := c.r.big; big != nil {
		big.frag = nil
		c.opts.reading.give(big.fragCharged + big.msgCharged)
		big.fragCharged, big.msgCharged = 0, 0
		if big.cbuf != nil {
			big.cbuf = nil // not pooled: it may be large
			c.opts.reading.give(big.cbufCharged)
			big.cbufCharged = 0
		}
		if z := big.z; z != nil && z.dict != nil {
			z.dict = nil
			c.opts.takeover.give(windowSize)
		}
	}
}

// holdsReadCharge reports whether the connection holds bytes counted in
// the read budget. readMu must be held.
func (c *Conn) holdsReadCharge() bool {
	if c.br != nil && c.br.Size() != readBufferSize {
		return true
	}
	big := c.r.big
	return big != nil && (big.fragCharged != 0 || big.cbufCharged != 0 || big.msgCharged != 0 || big.z != nil && big.z.dict != nil)
}

// growReader replaces the read buffer with one of size n, for a frame
// that does not fit in readBufferSize. What the old buffer held is read
// again first, ahead of any bytes left from the upgrade request. The new
// buffer is counted in the read budget: growReader returns nil, leaving
// the old one in place, when it does not fit. readMu must be held.
func (c *Conn) growReader(n int) *bufio.Reader {
	if !c.opts.reading.take(int64(n)) {
		return nil
	}
	old := c.br
	buffered, _ := old.Peek(old.Buffered())
	var rest []byte
	if c.prefix != nil {
		rest = *c.prefix
	}
	prefix := make([]byte, 0, len(buffered)+len(rest))
	prefix = append(append(prefix, buffered...), rest...)
	c.prefix = nil
	if len(prefix) > 0 {
		c.prefix = &prefix
	}
	c.putReader()
	c.br = bufio.NewReaderSize((*socketSource)(c), n)
	return c.br
}

// TryRead is Read for event-driven servers: it returns the next complete
// data message if it can be read without waiting, and ErrWouldBlock
// otherwise. A frame that has only partly arrived is kept in the
// connection's read buffer, unconsumed, until the rest comes; a frame
// larger than the buffer (readBufferSize) gets a buffer of its size
// once the first readBufferSize bytes of it have come, if it fits in the
// read budget (Options.MaxReadingBytes; else the connection is closed
// with 1013). Errors are those of Read. Use it with NotifyReadable; it must not run concurrently
// with Read.
func (c *Conn) TryRead() (MessageType, []byte, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.r.err != nil {
		return 0, nil, c.r.err
	}
	c.reader()
	c.r.nonblock = true
	typ, msg, err := c.readMessage()
	c.r.nonblock = false
	switch {
	case c.r.err != nil:
		// The read side has ended (which every connection's does, so
		// the buffer is not left to the collector once per connection).
		c.dropReadBuffers()
	case err != nil:
		c.releaseReader() // would block
	}
	return typ, msg, err
}

// Buffered reports whether the connection holds bytes it has received
// and not yet returned (what came after the upgrade request, or the
// rest of an earlier read), or its read side has ended: then TryRead
// has something to return. Without either, a server that has just
// upgraded can call NotifyReadable at once: a TryRead first would only
// find the socket empty, at the cost of a system call.
func (c *Conn) Buffered() bool {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	return c.r.err != nil || c.prefix != nil || (c.br != nil && c.br.Buffered() > 0)
}

// NotifyReadable arranges for f to run once, on another goroutine (a
// runner of the package's, which may have run other callbacks), when
// the connection next has bytes to read or has ended (TryRead then
// returns the error). Between calls the connection holds no goroutine
// and no read buffer: sockets are watched by one epoll instance per
// process. Call it after TryRead returned ErrWouldBlock; f typically
// calls TryRead until ErrWouldBlock and then NotifyReadable again.
//
// It returns false when the connection cannot be watched (not a TCP or
// Unix socket on Linux, e.g. TLS terminated in-process); the caller then
// reads with Read on a goroutine of its own.
func (c *Conn) NotifyReadable(f func()) bool {
	if !pollSupported || c.raw() == nil {
		return false
	}
	c.notifyFn = f
	c.notifyState.Store(notifyArmed)
	if err := readPoller.arm(c); err != nil {
		if c.closingStarted() {
			// The socket is (being) closed: finish runs f once Done is
			// closed, or has already, in which case this does.
			if c.hasFinished() {
				c.readable()
			}
			return true
		}
		c.notifyState.Store(notifyIdle)
		return false
	}
	if c.hasFinished() {
		// finish ran before the state was armed and could not start f.
		c.readable()
	}
	return true
}

// readable starts the pending callback, at most once per NotifyReadable.
func (c *Conn) readable() {
	if c.notifyState.CompareAndSwap(notifyArmed, notifyRunning) {
		runCallback(c.notifyFn)
	}
}

// callbackIdle is how long a callback runner waits for its next
// callback: the runners not needed for a whole callbackIdle end at its
// end (idle.Pool), so a runner left without callbacks ends after
// callbackIdle to twice that.
const callbackIdle = 200 * time.Millisecond

// callbacks hands NotifyReadable callbacks to idle runners; a nil one
// ends the runner that takes it.
var callbacks = make(chan func())

// runners ends the runners not needed for callbackIdle.
var runners = idle.Pool{Period: callbackIdle, End: endRunner}

// endRunner ends an idle runner, if one waits.
func endRunner() bool {
	select {
	case callbacks <- nil:
		return true
	default:
		return false
	}
}

// runCallback runs f on an idle runner, or on a new one when none is
// idle. Runners are background goroutines (see runtime.go) that run
// callbacks one after another and end once not needed for callbackIdle:
// a goroutine per callback grew a new stack each time (the callback of
// a connection that ends runs the server's whole cleanup), about a
// twentieth of the CPU of a connect under churn; a runner keeps the
// stack it grew.
func runCallback(f func()) {
	select {
	case callbacks <- f:
	default:
		backgroundStarted()
		runners.Started()
		go runCallbacks(f)
	}
}

// runCallbacks runs f, then the callbacks it is handed, until it is
// handed nil (runners or releaseRunners). It waits in a plain receive: a
// select with an idle timer of its own cost a few per cent of a connect
// under churn.
func runCallbacks(f func()) {
	defer backgroundDone()
	defer runners.Exited()
	for f != nil {
		f()
		runners.Waiting()
		f = <-callbacks
		runners.Woken()
	}
}

// releaseRunners ends the runners that are idle, so that the last
// Upgrader's Close does not wait out their callbackIdle: a 3 s drain
// spent 0.2 s of the tenth it keeps for stopping on it.
func releaseRunners() {
	for endRunner() {
	}
}

// socketSource is what the read buffer reads from: the bytes that came
// with the upgrade request, then the socket. In TryRead at a frame
// boundary it does not wait: an empty socket is errWouldBlock.
// It is the connection itself, under a type of its own so that Conn
// need not have a Read method of this shape.
type socketSource Conn

func (s *socketSource) Read(p []byte) (int, error) {
	c := (*Conn)(s)
	if c.prefix != nil {
		n := copy(p, *c.prefix)
		if rest := (*c.prefix)[n:]; len(rest) > 0 {
			*c.prefix = rest
		} else {
			c.prefix = nil
		}
		return n, nil
	}
	if s := c.raw(); s != nil && c.r.nonblock && !c.r.midFrame {
		n, err := s.readNow(p)
		if err == nil && n == 0 {
			return 0, io.EOF
		}
		if err != nil && !errors.Is(err, errWouldBlock) {
			err = &net.OpError{Op: "read", Net: "tcp", Err: err}
		}
		return n, err
	}
	return c.nc.Read(p)
}
