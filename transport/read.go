package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// readState is owned by whoever holds Conn.readMu.
type readState struct {
	err error // sticky terminal error
	// watch is the context handling of Reads with a cancellable context,
	// made at the first one: most connections are read with TryRead, or
	// with a context that is never done.
	watch *readWatch

	midFrame   bool // part of a frame has been consumed
	nonblock   bool // in TryRead: do not wait at a frame boundary
	inMessage  bool // a message is being reassembled from fragments
	compressed bool // ... and it is compressed
	typ        MessageType
	// polled: the connection is registered with readPoller. Guarded by
	// readPoller.mu, not readMu; kept here where it costs no padding.
	polled     bool
	ctrlSecond uint16 // heartbeat clock second (mod 2^16) that ctrlCount counts

	size int64 // of the message so far
	// big is made at the first fragmented or compressed message: most
	// connections send single-frame messages only.
	big *bigMessage

	hdr       [maxHeaderLen]byte
	ctrlCount uint16 // pings and pongs received in ctrlSecond
}

// bigMessage is the reassembly state of fragmented and compressed
// messages.
type bigMessage struct {
	frag []byte  // uncompressed fragments, handed to the caller
	cbuf *[]byte // compressed payload, pooled
	// What frag and cbuf count in the read budget: their capacity when
	// over readBufferSize (see growHeld), else 0.
	fragCharged, cbufCharged int64
	// msgCharged is what the message last returned counts in the read
	// budget, kept until the next read: the caller handles the message
	// meanwhile, and an inflated one may be a whole ReadLimit made from
	// a few hundred bytes the client sent.
	msgCharged int64
	z          *inflateState // made at the first compressed message
	text       utf8Check     // the uncompressed text message's fragments so far
	// In TryRead, the part of the next text frame that has arrived while
	// the rest has not (see awaitFrame): arrived payload bytes of it are
	// checked, and arriving is the text's state after them.
	arriving utf8Check
	arrived  int
}

// readWatch lets a cancelled context end a blocking Read: the context's
// AfterFunc sets a past read deadline, which the next Read clears.
type readWatch struct {
	ctx context.Context // the current Read's, nil between Reads; reader only
	// mu orders the AfterFunc against the end of a Read: gen changes with
	// every Read, so a late AfterFunc leaves the deadline alone.
	mu          sync.Mutex
	gen         uint64
	deadlineSet bool
}

type frameHeader struct {
	fin, rsv1, rsv23, masked bool
	op                       byte
	length                   int64 // -1 when the 64-bit length has its MSB set
	key                      [4]byte
}

var compressedBufPool sync.Pool

// Read returns the next complete data message: reassembled from its
// fragments, decompressed, and, for Text, checked to be valid UTF-8. The
// returned slice belongs to the caller. Uncompressed text is checked as
// it arrives: once a message's bytes so far can no longer be valid UTF-8
// the connection is failed (1007) without waiting for the rest of it
// (RFC 6455 section 8.1); TryRead likewise checks the part of a frame
// that has come.
//
// Control frames are handled inside Read: pings are answered, and a close
// frame is echoed, the socket closed and the peer's *CloseError returned.
// A protocol violation sends the matching close frame and returns a
// *CloseError with that code. Once Read has returned such a terminal
// error it keeps returning it.
//
// Read must be called from a single goroutine. Cancelling ctx unblocks
// it: if no frame was partially read, Read returns ctx.Err() and the
// connection stays usable; otherwise the connection is terminated.
func (c *Conn) Read(ctx context.Context) (MessageType, []byte, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.r.err != nil {
		return 0, nil, c.r.err
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	w := c.r.watch
	if w == nil && ctx.Done() != nil {
		w = new(readWatch)
		c.r.watch = w
	}
	if w == nil {
		// No context was ever cancellable: no deadline to clear or set.
		c.reader()
		typ, msg, err := c.readMessage()
		if c.r.err != nil {
			c.dropReadBuffers()
		}
		return typ, msg, err
	}
	w.mu.Lock()
	w.gen++
	gen := w.gen
	if w.deadlineSet {
		_ = c.nc.SetReadDeadline(time.Time{})
		w.deadlineSet = false
	}
	w.mu.Unlock()

	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.gen == gen {
				_ = c.nc.SetReadDeadline(time.Unix(1, 0))
				w.deadlineSet = true
			}
		})
	}
	w.ctx = ctx
	c.reader()
	typ, msg, err := c.readMessage()
	w.ctx = nil
	if c.r.err != nil {
		c.dropReadBuffers()
	}
	if stop != nil {
		stop()
		w.mu.Lock()
		w.gen++ // a watcher that is still running must not touch the deadline
		w.mu.Unlock()
	}
	return typ, msg, err
}

// readMessage reads frames until a data message is complete or the
// connection fails. The message it returned before is no longer the
// caller's to handle: its charge is given back first.
func (c *Conn) readMessage() (MessageType, []byte, error) {
	if big := c.r.big; big != nil && big.msgCharged != 0 {
		c.opts.reading.give(big.msgCharged)
		big.msgCharged = 0
	}
	for {
		if c.r.nonblock {
			if err := c.awaitFrame(); err != nil {
				return 0, nil, c.payloadFailed(err)
			}
		}
		h, err := c.readHeader()
		if err != nil {
			return 0, nil, c.readFailed(err)
		}
		c.lastSeen.Store(c.now())
		if code, reason := c.checkHeader(&h); code != 0 {
			return 0, nil, c.fail(code, reason)
		}

		if h.op >= opClose {
			if h.op != opClose && c.controlFlood() {
				return 0, nil, c.fail(ClosePolicyViolation, "too many control frames")
			}
			// Control frames are rare (a pong per heartbeat): their
			// payload is not worth a buffer in every connection.
			var payload []byte
			if h.length > 0 {
				payload = make([]byte, h.length)
			}
			if err := c.readPayload(payload, h.key); err != nil {
				return 0, nil, c.readFailed(err)
			}
			if err := c.handleControl(h.op, payload); err != nil {
				return 0, nil, err
			}
			continue
		}

		if h.op != opContinuation {
			c.r.inMessage = true
			c.r.typ = MessageType(h.op)
			c.r.compressed = h.rsv1
			c.r.size = 0
		}
		if h.length > c.opts.ReadLimit-c.r.size { // no overflow: both are in [0, limit]
			return 0, nil, c.fail(CloseMessageTooBig, c.tooBigReason())
		}
		c.r.size += h.length

		// Uncompressed text is checked as it arrives (see readText).
		text := c.r.typ == Text && !c.r.compressed

		// Fast path: a whole uncompressed message in one frame is read
		// straight into the slice returned to the caller.
		if h.op != opContinuation && h.fin && !h.rsv1 {
			// Read waits for the payload in msg: count a large one in
			// the read budget meanwhile (TryRead has it all already).
			var charge int64
			if !c.r.nonblock && h.length > readBufferSize {
				if !c.opts.reading.take(h.length) {
					return 0, nil, c.readsFull()
				}
				charge = h.length
			}
			msg := make([]byte, h.length)
			if text {
				var u utf8Check
				if err = c.readText(msg, h.key, &u); err == nil && !u.complete() {
					err = errInvalidUTF8
				}
			} else {
				err = c.readPayload(msg, h.key)
			}
			if c.r.big != nil {
				c.r.big.arrived = 0
			}
			if err != nil {
				c.opts.reading.give(charge)
				return 0, nil, c.payloadFailed(err)
			}
			if charge != 0 {
				// It counts while the caller handles it, as TryRead's
				// grown read buffer does until the next read.
				if c.r.big == nil {
					c.r.big = new(bigMessage)
				}
				c.r.big.msgCharged = charge
			}
			c.r.inMessage = false
			return c.r.typ, msg, nil
		}

		if c.r.big == nil {
			c.r.big = new(bigMessage)
		}
		big := c.r.big
		var buf []byte
		charged := &big.fragCharged
		if c.r.compressed {
			if big.cbuf == nil {
				if p, ok := compressedBufPool.Get().(*[]byte); ok {
					big.cbuf = p
					// A large pooled buffer counts as one grown here.
					if n := int64(cap(*p)); n > readBufferSize {
						if c.opts.reading.take(n) {
							big.cbufCharged = n
						} else {
							*p = nil
						}
					}
				} else {
					big.cbuf = new([]byte)
				}
				*big.cbuf = (*big.cbuf)[:0]
			}
			buf = *big.cbuf
			charged = &big.cbufCharged
		} else {
			buf = big.frag
		}
		start := len(buf)
		buf, ok := c.growHeld(buf, int(h.length), charged)
		if !ok {
			return 0, nil, c.readsFull()
		}
		if text {
			err = c.readText(buf[start:], h.key, &big.text)
		} else {
			err = c.readPayload(buf[start:], h.key)
		}
		big.arrived = 0
		if c.r.compressed {
			*big.cbuf = buf
		} else {
			big.frag = buf
		}
		if err != nil {
			return 0, nil, c.payloadFailed(err)
		}
		if !h.fin {
			continue
		}

		c.r.inMessage = false
		if !c.r.compressed {
			msg := big.frag
			big.frag = nil
			big.msgCharged, big.fragCharged = big.fragCharged, 0
			if text && !big.text.complete() {
				return 0, nil, c.fail(CloseInvalidPayload, "invalid UTF-8")
			}
			return c.r.typ, msg, nil
		}
		if big.z == nil {
			big.z = new(inflateState)
		}
		z := big.z
		var dict []byte
		if c.neg.deflate&deflateClientContext != 0 {
			dict = z.dict
		}
		msg, ierr := inflate(&z.src, *big.cbuf, dict, c.opts.ReadLimit, c.opts.reading, &big.msgCharged)
		if cap(*big.cbuf) <= 1<<20 {
			compressedBufPool.Put(big.cbuf)
		}
		big.cbuf = nil
		c.opts.reading.give(big.cbufCharged)
		big.cbufCharged = 0
		switch ierr {
		case nil:
		case errTooBig:
			return 0, nil, c.fail(CloseMessageTooBig, c.tooBigReason())
		case errReadsFull:
			return 0, nil, c.readsFull()
		default:
			return 0, nil, c.fail(CloseInvalidPayload, ierr.Error())
		}
		if c.neg.deflate&deflateClientContext != 0 {
			if z.dict == nil {
				if !c.opts.takeover.take(windowSize) {
					return 0, nil, c.failCause(CloseTryAgainLater, "server busy: too much compression state", ErrReadsFull)
				}
				z.dict = make([]byte, 0, windowSize)
			}
			z.dict = slideWindow(z.dict, msg)
		}
		if c.r.typ == Text && !utf8.Valid(msg) {
			return 0, nil, c.fail(CloseInvalidPayload, "invalid UTF-8")
		}
		return c.r.typ, msg, nil
	}
}

func (c *Conn) tooBigReason() string {
	return "message too big: limit " + strconv.FormatInt(c.opts.ReadLimit, 10) + " bytes"
}

// readsFull fails the connection whose read buffer did not fit in the
// read budget (Options.MaxReadingBytes).
func (c *Conn) readsFull() error {
	return c.failCause(CloseTryAgainLater, "server busy: too many large messages being read", ErrReadsFull)
}

// errReadsFull is awaitFrame's: the frame's buffer did not fit in the
// read budget.
var errReadsFull = errors.New("read budget full")

// payloadFailed handles an error from reading a data frame's payload, or
// from awaitFrame waiting for one.
func (c *Conn) payloadFailed(err error) error {
	switch err {
	case errInvalidUTF8:
		return c.fail(CloseInvalidPayload, "invalid UTF-8")
	case errReadsFull:
		return c.readsFull()
	}
	return c.readFailed(err)
}

// growHeld extends an assembly buffer b by n bytes, reallocating when
// needed. A new buffer over readBufferSize is counted in the read budget
// at its capacity, replacing what *charged says the old one counted; it
// reports false, leaving b as it was, when the new one does not fit.
func (c *Conn) growHeld(b []byte, n int, charged *int64) ([]byte, bool) {
	if cap(b)-len(b) < n {
		size := len(b) + n + len(b)/2
		var charge int64
		if size > readBufferSize {
			charge = int64(size)
			if !c.opts.reading.take(charge) {
				return b, false
			}
		}
		c.opts.reading.give(*charged)
		*charged = charge
		nb := make([]byte, len(b), size)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n], true
}

// awaitFrame, in TryRead, makes sure the next frame has fully arrived
// before any of it is consumed: it reads what the socket has without
// waiting, and while the frame is incomplete it returns errWouldBlock,
// leaving the part that came in the read buffer for the next readable
// notification. A client that stops halfway through a frame therefore
// holds no goroutine, only its read buffer. A frame larger than the
// read buffer (up to ReadLimit) moves, once the buffer is full, to a
// buffer of the frame's size, taken back when it has been read. A
// header that readMessage refuses (a protocol violation, or a message
// over ReadLimit) does not wait for its payload: readMessage fails it at
// once.
func (c *Conn) awaitFrame() error {
	br := c.reader()
	p, err := br.Peek(2)
	if err != nil {
		return err
	}
	need := frameHeaderSize(p[1])
	if p, err = br.Peek(need); err != nil {
		return err
	}
	length := framePayloadLen(p)
	// A header that readMessage will refuse is refused now, not once a
	// payload that will never be read has arrived (a client that sent a
	// bad header and waits would otherwise get no close code at all).
	h := frameHeader{
		fin: p[0]&finBit != 0, rsv1: p[0]&rsv1Bit != 0, rsv23: p[0]&(rsv2Bit|rsv3Bit) != 0,
		op: p[0] & 0x0f, masked: p[1]&maskBit != 0, length: int64(length),
	}
	if code, _ := c.checkHeader(&h); code != 0 {
		return nil
	}
	if size := c.r.size; h.op < opClose {
		if h.op != opContinuation {
			size = 0 // a new message
		}
		if h.length > c.opts.ReadLimit-size {
			return nil // readMessage closes with 1009
		}
	}
	// The part of a text frame that has come is checked while the rest
	// has not: text that can no longer be valid UTF-8 fails the
	// connection at once, as in Read.
	text := !h.rsv1 && length > 0 &&
		(h.op == opText || h.op == opContinuation && c.r.typ == Text && !c.r.compressed)
	var key [4]byte
	copy(key[:], p[need-4:need])
	if length > uint64(br.Size()-need) {
		// Wait for a full buffer before making a larger one, so that a
		// client must send something to make the server hold more.
		if _, err := br.Peek(br.Size()); err != nil {
			if text && !c.checkArrivingText(br, need, key, h.op == opContinuation) {
				return errInvalidUTF8
			}
			return err
		}
		if br = c.growReader(need + int(length)); br == nil {
			return errReadsFull
		}
	}
	if _, err = br.Peek(need + int(length)); err != nil {
		if text && !c.checkArrivingText(br, need, key, h.op == opContinuation) {
			return errInvalidUTF8
		}
		return err
	}
	return nil
}

// checkArrivingText checks the payload bytes of the awaited text frame
// that the read buffer holds (after its header of hdrLen bytes) and that
// earlier calls did not check, and reports whether the message's text is
// still a prefix of valid UTF-8.
func (c *Conn) checkArrivingText(br *bufio.Reader, hdrLen int, key [4]byte, continuation bool) bool {
	n := br.Buffered() - hdrLen
	if c.r.big == nil {
		c.r.big = new(bigMessage)
	}
	big := c.r.big
	if n <= big.arrived {
		return true
	}
	if big.arrived == 0 {
		big.arriving = utf8Check{}
		if continuation {
			big.arriving = big.text
		}
	}
	b, _ := br.Peek(hdrLen + n)
	b = b[hdrLen+big.arrived:]
	// The buffer must stay masked: unmask a copy, a piece at a time.
	var buf [256]byte
	pos := big.arrived
	for len(b) > 0 {
		k := copy(buf[:], b)
		pos = maskBytes(key, pos, buf[:k])
		if !big.arriving.feed(buf[:k]) {
			return false
		}
		b = b[k:]
	}
	big.arrived = n
	return true
}

// controlFlood counts a ping or pong against ControlFrameRate and
// reports whether the peer has gone over it.
func (c *Conn) controlFlood() bool {
	if c.opts.ControlFrameRate < 0 {
		return false
	}
	if sec := uint16(c.now() / int64(time.Second)); sec != c.r.ctrlSecond {
		c.r.ctrlSecond, c.r.ctrlCount = sec, 0
	}
	c.r.ctrlCount++
	return int(c.r.ctrlCount) > c.opts.ControlFrameRate
}

// readHeader reads one frame header. midFrame becomes true once its first
// byte has been consumed.
func (c *Conn) readHeader() (frameHeader, error) {
	var h frameHeader
	b0, err := c.reader().ReadByte()
	if err != nil {
		return h, err
	}
	c.r.midFrame = true
	b := c.r.hdr[:]
	if _, err := io.ReadFull(c.br, b[:1]); err != nil {
		return h, err
	}
	b1 := b[0]
	n := 1
	h.fin = b0&finBit != 0
	h.rsv1 = b0&rsv1Bit != 0
	h.rsv23 = b0&(rsv2Bit|rsv3Bit) != 0
	h.op = b0 & 0x0f
	h.masked = b1&maskBit != 0
	extra := 0
	switch l := b1 & 0x7f; l {
	case 126:
		extra = 2
	case 127:
		extra = 8
	default:
		h.length = int64(l)
	}
	if h.masked {
		extra += 4
	}
	if extra > 0 {
		if _, err := io.ReadFull(c.br, b[:extra]); err != nil {
			return h, err
		}
	}
	n += extra
	switch b1 & 0x7f {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(b))
		b = b[2:]
	case 127:
		v := binary.BigEndian.Uint64(b)
		if v>>63 != 0 {
			h.length = -1
		} else {
			h.length = int64(v)
		}
		b = b[8:]
	}
	if h.masked {
		copy(h.key[:], b[:4])
	}
	c.bytesIn.Add(uint64(1 + n))
	if h.length == 0 {
		c.r.midFrame = false
	}
	return h, nil
}

// checkHeader applies RFC 6455 section 5 and RFC 7692 rules and returns
// a close code and reason for a violation, or 0.
func (c *Conn) checkHeader(h *frameHeader) (int, string) {
	if h.rsv23 {
		return CloseProtocolError, "RSV2 or RSV3 set"
	}
	if !h.masked {
		return CloseProtocolError, "unmasked client frame"
	}
	if h.length < 0 {
		return CloseProtocolError, "invalid frame length"
	}
	switch h.op {
	case opClose, opPing, opPong:
		if !h.fin {
			return CloseProtocolError, "fragmented control frame"
		}
		if h.length > maxControlPayload {
			return CloseProtocolError, "control frame too long"
		}
		if h.rsv1 {
			return CloseProtocolError, "RSV1 set on control frame"
		}
	case opContinuation:
		if !c.r.inMessage {
			return CloseProtocolError, "continuation without a message"
		}
		if h.rsv1 {
			return CloseProtocolError, "RSV1 set on continuation frame"
		}
	case opText, opBinary:
		if c.r.inMessage {
			return CloseProtocolError, "new message inside a fragmented message"
		}
		if h.rsv1 && c.neg.deflate == 0 {
			return CloseProtocolError, "RSV1 set without permessage-deflate"
		}
	default:
		return CloseProtocolError, "unknown opcode " + strconv.Itoa(int(h.op))
	}
	return 0, ""
}

// errInvalidUTF8 is a text payload that is not valid UTF-8.
var errInvalidUTF8 = errors.New("invalid UTF-8")

// readText is readPayload for uncompressed text: each piece is checked
// with u as it comes from the socket, so that text that can no longer be
// valid UTF-8 fails the connection at once (RFC 6455 section 8.1), not
// when the rest of a large or slow frame has come. It returns
// errInvalidUTF8 then.
func (c *Conn) readText(p []byte, key [4]byte, u *utf8Check) error {
	pos := 0
	for len(p) > 0 {
		n, err := c.br.Read(p)
		c.bytesIn.Add(uint64(n))
		if n > 0 {
			pos = maskBytes(key, pos, p[:n])
			if !u.feed(p[:n]) {
				return errInvalidUTF8
			}
			p = p[n:]
		}
		if err != nil && len(p) > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	c.r.midFrame = false
	return nil
}

func (c *Conn) readPayload(p []byte, key [4]byte) error {
	if len(p) == 0 {
		return nil
	}
	n, err := io.ReadFull(c.br, p)
	c.bytesIn.Add(uint64(n))
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	maskBytes(key, 0, p)
	c.r.midFrame = false
	return nil
}

func (c *Conn) handleControl(op byte, payload []byte) error {
	switch op {
	case opPing:
		// Dropped once closing has started: no pongs after a close frame.
		c.sendControl(appendFrame(make([]byte, 0, 2+len(payload)), opPong, false, payload))
	case opPong:
		// lastSeen is already updated.
	case opClose:
		code, reason := CloseNoStatus, ""
		switch {
		case len(payload) == 1:
			return c.fail(CloseProtocolError, "invalid close frame")
		case len(payload) >= 2:
			code = int(binary.BigEndian.Uint16(payload))
			if !validReceivedCloseCode(code) {
				return c.fail(CloseProtocolError, "invalid close code "+strconv.Itoa(code))
			}
			if !utf8.Valid(payload[2:]) {
				return c.fail(CloseInvalidPayload, "invalid UTF-8")
			}
			reason = string(payload[2:])
		}
		ce := &CloseError{Code: code, Reason: reason}
		c.signalPeerClosed()
		// Echo the code; when we started the handshake this is the
		// reply and the close sequence is waiting for signalPeerClosed.
		// This goroutine waits for the end anyway: when the write side
		// is free it writes the echo and closes itself, rather than
		// start a goroutine (which grows a stack of its own) and wake.
		if _, claimed := c.beginClose(closeRequest{frame: closeFrame(code, "")}, ce, failGrace); claimed {
			c.closeSequence()
		}
		<-c.Done()
		c.r.err = ce
		return ce
	}
	return nil
}

// fail fails the connection after a protocol violation: the write side
// writes what the application queued before it (replies to the peer's
// earlier, valid messages; within failGrace) and a close frame with code,
// while this goroutine discards whatever the peer still sends, so that
// closing the socket does not reset it before the peer has read the
// close frame.
func (c *Conn) fail(code int, reason string) error {
	return c.failCause(code, reason, nil)
}

// failCause is fail with a cause that Err wraps together with the
// *CloseError, as Abort's.
func (c *Conn) failCause(code int, reason string, cause error) error {
	var ce error = &CloseError{Code: code, Reason: reason}
	if cause != nil {
		ce = fmt.Errorf("%w: %w", cause, ce)
	}
	c.r.err = ce
	if c.startClose(closeRequest{frame: closeFrame(code, reason), flush: true, waitPeer: true}, ce, failGrace) {
		c.mu.Lock()
		deadline := c.closeDeadline()
		c.mu.Unlock()
		_ = c.nc.SetReadDeadline(deadline)
		c.r.nonblock = false
		_, _ = io.Copy(io.Discard, c.reader())
		c.signalPeerClosed()
	} else {
		c.Terminate(ce)
	}
	<-c.Done()
	return ce
}

// readCtx returns the context of the Read in progress if it can be
// cancelled, else nil. Reader only.
func (c *Conn) readCtx() context.Context {
	if c.r.watch == nil {
		return nil
	}
	return c.r.watch.ctx
}

// readFailed handles an error from the socket.
func (c *Conn) readFailed(err error) error {
	if errors.Is(err, errWouldBlock) && !c.r.midFrame {
		return ErrWouldBlock
	}
	if ctx := c.readCtx(); ctx != nil && ctx.Err() != nil {
		if !c.r.midFrame {
			return ctx.Err()
		}
		err = fmt.Errorf("read cancelled mid-frame: %w", ctx.Err())
	}
	c.Terminate(fmt.Errorf("transport: read: %w", err))
	c.signalPeerClosed()
	c.r.err = c.Err()
	return c.r.err
}
