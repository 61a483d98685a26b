package transport

import (
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// writeState belongs to whoever owns the connection's write side (see
// Conn.owned): a flush worker, the connection's blocked-write goroutine
// or its close sequence, one at a time.
type writeState struct {
	pending *pendingWrite // what a non-blocking write left unwritten; nil if nothing
	data    []*Prepared   // spare queue, swapped with Conn.sendQ
	z       *deflateState // made at the first message this conn compresses itself
}

// pendingWrite is a batch the socket did not take at once, for the
// goroutine that waits for the peer (writeBlocked).
type pendingWrite struct {
	bufs   net.Buffers
	frames int   // frames in the batch, counted once it is written
	bytes  int64 // what it holds, counted in Options.MaxQueuedBytes until it is written
}

// newPendingWrite makes the pendingWrite of frames (n of them) and counts
// their bytes in the Upgrader's queued bytes.
func (c *Conn) newPendingWrite(frames [][]byte, n int) *pendingWrite {
	pw := &pendingWrite{bufs: append(net.Buffers(nil), frames...), frames: n}
	for _, f := range frames {
		pw.bytes += int64(len(f))
	}
	c.opts.queues.add(pw.bytes)
	return pw
}

// endPendingWrite drops the pending write, written or not.
func (c *Conn) endPendingWrite() {
	if c.w.pending != nil {
		c.opts.queues.give(c.w.pending.bytes)
		c.w.pending = nil
	}
}

// deflateState is the write side's own compressor, for server context
// takeover, where a connection's frames cannot be shared. Most connections
// never need one (messages under the threshold, or no takeover), so it is
// made on first use rather than held by every connection.
type deflateState struct {
	arena []byte // frames compressed by this conn, reset once per batch
	fw    *flate.Writer
	sw    sliceWriter
	// charged is what fw counts in Options.MaxTakeoverBytes; refused: fw
	// did not fit, so messages are compressed on their own.
	charged int64
	refused bool
}

// maxSpareQueue is the largest spare queue a connection keeps between
// turns; a longer one is left to the garbage collector so that an idle
// connection holds no large slices.
const maxSpareQueue = 64

// flushTurn is one turn of the connection on a flush worker: it takes
// everything queued and writes it with one non-blocking writev. What the
// socket does not accept is handed to a goroutine that waits for the
// peer (writeBlocked), so a worker never blocks on one slow client. The
// caller owns the write side; flushTurn passes ownership on or releases
// it. It returns how many frames the turn carried.
func (c *Conn) flushTurn(scratch *turnScratch) int {
	batch, write := c.takeTurn(scratch.batch[:0])
	if write {
		rest, written, err := writeNonBlocking(c.fd, batch, &scratch.iov)
		c.endTurn(len(batch), rest, written, err)
	}
	n := len(batch)
	clear(batch) // drop references to frames
	scratch.batch = batch[:0]
	return n
}

// takeTurn starts the connection's turn: it appends everything queued to
// batch and reports whether the caller is to write it to c.fd without
// waiting and then call endTurn. When it reports false the turn is over
// already: the connection was closing (the write side is released) or it
// has no descriptor of its own (the batch went to writeBlocked).
//
// The batch lives in the worker's scratch space: only what a socket does
// not take at once is copied to the connection (endTurn).
func (c *Conn) takeTurn(batch [][]byte) ([][]byte, bool) {
	c.mu.Lock()
	if c.killed || c.closing != nil && c.closing.requested {
		c.mu.Unlock()
		c.release()
		return batch, false
	}
	// No spare control queue: control frames come every few seconds at
	// most (a ping per heartbeat), so an allocation then costs less than
	// a slice held by every idle connection.
	data, ctrl := c.sendQ, c.ctrlQ
	c.ctrlQ = nil
	var taken int64
	switch {
	case c.held:
		data = nil // held data waits for Release
	case len(data) == 0:
		// Control frames only (a heartbeat's ping): no data came since
		// the last turn, so the two data queues the connection swaps go
		// too, and a connection that has gone quiet holds none (a burst
		// leaves up to 2 × maxSpareQueue slots). The next message makes
		// a new one: at most two allocations per heartbeat.
		c.sendQ, c.w.data, data = nil, nil, nil
	default:
		c.sendQ = c.w.data
		taken = c.unqueueLocked()
	}
	c.mu.Unlock()
	// The batch leaves the count: it is written now, or counted again as
	// a pending write when the socket does not take it all.
	c.opts.queues.give(taken)

	start := len(batch)
	batch = c.buildBatch(batch, data, ctrl)
	if pw := c.w.pending; pw != nil {
		// The 101 response of UpgradeHeld, not written yet: it goes
		// first, in one buffer with the turn's first frame (the
		// welcome fits in the room the response was made with), so
		// that one write carries both. No other turn runs while a
		// pending write from a blocked one exists, so this is it.
		resp := pw.bufs[0]
		if len(batch) > start {
			batch[start] = append(resp, batch[start]...)
		} else {
			batch = append(batch, resp)
		}
		c.endPendingWrite()
	}
	if c.fd < 0 {
		// No raw socket (TLS terminated in-process, a test pipe): every
		// write may block, so it gets its own goroutine.
		frames := batch[start:]
		c.w.pending = c.newPendingWrite(frames, len(frames))
		c.setBlocked(true)
		go c.writeBlocked()
		return batch, false
	}
	return batch, true
}

// endTurn ends a turn that takeTurn started, after a non-blocking write
// of its frames (n of them) wrote written bytes and left rest, with err
// as the write's error. Unwritten frames go to writeBlocked; a failed
// write terminates the connection.
func (c *Conn) endTurn(n int, rest [][]byte, written int, err error) {
	c.bytesOut.Add(uint64(written))
	switch {
	case err == nil && len(rest) == 0:
		c.framesOut.Add(uint64(n))
		c.release()
	case err == nil || errors.Is(err, errWouldBlock):
		c.w.pending = c.newPendingWrite(rest, n)
		c.setBlocked(true)
		go c.writeBlocked()
	default:
		c.writeFailed(err)
		c.release()
	}
}

// buildBatch appends the taken queues' frames to batch, control frames
// first, and keeps the data queue's slice as the spare.
func (c *Conn) buildBatch(batch [][]byte, data []*Prepared, ctrl [][]byte) [][]byte {
	if c.w.z != nil {
		c.w.z.arena = c.w.z.arena[:0]
	}
	batch = append(batch, ctrl...)
	for _, p := range data {
		batch = append(batch, c.frameFor(p))
	}
	clear(data)
	if data != nil {
		c.w.data = spare(data)
	}
	return batch
}

func spare[T any](s []T) []T {
	if cap(s) > maxSpareQueue {
		return nil
	}
	return s[:0]
}

// writeBlocked finishes a write the socket did not take at once, waiting
// for the peer for up to WriteTimeout, then gives the turn back.
func (c *Conn) writeBlocked() {
	err := c.writeBlocking(c.w.pending.bufs)
	if err == nil {
		c.framesOut.Add(uint64(c.w.pending.frames))
	}
	c.endPendingWrite()
	c.setBlocked(false)
	if err != nil {
		c.writeFailed(err)
	}
	c.release()
}

// setBlocked records that a write waits for the peer (c.w.pending), or
// no longer does. Meanwhile the connection is one the queue budget may
// close to make room (see QueueBudget.makeRoom).
func (c *Conn) setBlocked(b bool) {
	c.mu.Lock()
	c.blocked = b
	c.mu.Unlock()
	if b {
		c.opts.queues.track(c, c.w.pending.bytes)
	} else {
		c.opts.queues.untrack(c)
	}
}

// blockingChunk is how much one blocking write call may carry: each
// call gets its own WriteTimeout, so a slow peer that keeps reading is
// never cut off in the middle of a large batch.
const blockingChunk = 256 << 10

// writeBlocking writes bufs in calls of up to blockingChunk bytes (or one
// larger frame), each capped by WriteTimeout and, once closing, by the
// close deadline.
func (c *Conn) writeBlocking(bufs net.Buffers) error {
	// Leave no deadline behind: the next turn's non-blocking write would
	// fail on it once it has passed (only the close deadline stays).
	defer func() {
		c.mu.Lock()
		_ = c.nc.SetWriteDeadline(c.closeDeadline())
		c.mu.Unlock()
	}()
	for len(bufs) > 0 {
		n, size := 0, 0
		for n < len(bufs) && (n == 0 || size+len(bufs[n]) <= blockingChunk) {
			size += len(bufs[n])
			n++
		}
		chunk := bufs[:n:n]
		bufs = bufs[n:]
		deadline := time.Now().Add(c.opts.WriteTimeout)
		c.mu.Lock()
		if cd := c.closeDeadline(); !cd.IsZero() && cd.Before(deadline) {
			deadline = cd
		}
		_ = c.nc.SetWriteDeadline(deadline)
		c.mu.Unlock()
		var written int64
		var err error
		if s := c.raw(); s != nil {
			written, err = s.writeBuffers(chunk)
		} else {
			written, err = chunk.WriteTo(c.nc)
		}
		c.bytesOut.Add(uint64(written))
		if err != nil {
			return fmt.Errorf("transport: write: %w", err)
		}
	}
	return nil
}

// writeFailed terminates the connection after a failed write: the stream
// may end mid-frame.
func (c *Conn) writeFailed(err error) {
	c.Terminate(err)
}

// release ends the owner's turn. A kill or a close request takes over
// the write side; more queued frames mean another turn on the worker;
// otherwise the write side is free again.
func (c *Conn) release() {
	c.mu.Lock()
	switch {
	case c.killed:
		c.mu.Unlock()
		c.finish()
	case c.closing != nil && c.closing.requested:
		c.mu.Unlock()
		go c.closeSequence()
	case len(c.ctrlQ) > 0 || len(c.sendQ) > 0 && !c.held:
		c.mu.Unlock()
		c.shard.push(c)
	default:
		c.owned = false
		c.mu.Unlock()
	}
}

// claimLocked takes the write side if it is free and reports whether the
// caller now owns it. c.mu must be held.
func (c *Conn) claimLocked() bool {
	if c.owned {
		return false
	}
	c.owned = true
	return true
}

// sendControl queues a complete control frame (ping or pong) ahead of
// data. It is dropped once closing has started (no pings or pongs after
// a close frame) or when control frames are piling up: a pong only needs
// to answer the latest ping.
func (c *Conn) sendControl(f []byte) {
	c.mu.Lock()
	if c.closeStarted || len(c.ctrlQ) >= ctrlQueueSize {
		c.mu.Unlock()
		return
	}
	c.ctrlQ = append(c.ctrlQ, f)
	claimed := c.claimLocked()
	c.mu.Unlock()
	if claimed {
		c.shard.push(c)
	}
}

// heartbeat runs on the connection's timer. It sends a ping every
// PingInterval, skipping one while the previous ping is unanswered, and
// terminates the connection when nothing at all has come from the peer
// within PongTimeout of a ping. The timer is re-armed for whichever comes
// first: the next ping or the outstanding ping's deadline.
func (c *Conn) heartbeat() {
	c.mu.Lock()
	closing := c.closeStarted
	c.mu.Unlock()
	if closing {
		return
	}
	now := c.now()
	interval, timeout := int64(c.opts.PingInterval), int64(c.opts.PongTimeout)
	at := c.pingAt.Load()
	if at != 0 {
		switch {
		case c.lastSeen.Load() >= at:
			at = 0 // answered (any frame counts)
			c.pingAt.Store(0)
		case now >= at+timeout && c.UnreadBytes() > 0:
			// Bytes from the client wait in the socket: it is alive and
			// this process has not read them yet (a node short of CPU
			// reads late). Terminating it would turn an overload into a
			// reconnect storm; the next ping asks again.
			at = 0
			c.pingAt.Store(0)
		case now >= at+timeout:
			c.Terminate(ErrHeartbeatTimeout)
			return
		}
	}
	next := c.nextPing.Load()
	if next == 0 {
		next = interval // the first ping, one interval after the upgrade
	}
	if now >= next {
		if at == 0 {
			f := make([]byte, pingFrameSize)
			putServerHeader(f, opPing, false, 8)
			binary.BigEndian.PutUint64(f[2:], uint64(time.Now().UnixNano()))
			at = now
			c.pingAt.Store(at)
			c.sendControl(f)
		}
		next = now + interval
	}
	c.nextPing.Store(next)
	wake := next
	if at != 0 && at+timeout < wake {
		wake = at + timeout
	}
	heartbeats.schedule(c, time.Duration(max(wake-now, int64(time.Millisecond))))
}

// frameFor returns the bytes to write for p on this connection.
func (c *Conn) frameFor(p *Prepared) []byte {
	if c.neg.deflate&(deflateOn|deflateSmallWindow) != deflateOn || !p.compress {
		return p.plainFrame()
	}
	if c.neg.deflate&deflateServerContext == 0 {
		return p.deflateFrame()
	}
	// Context takeover: this conn's compressor state depends on every
	// message it sent before, so the shared bytes cannot be used. Frames
	// are appended to arena, which is reset once per batch.
	if c.w.z == nil {
		c.w.z = new(deflateState)
	}
	z := c.w.z
	if z.fw == nil {
		cost := writerCost(c.opts.CompressionLevel)
		if z.refused || !c.opts.takeover.take(cost) {
			// Compressed on its own, as without takeover: a peer that
			// allowed takeover decodes it all the same.
			z.refused = true
			return p.deflateFrame()
		}
		z.charged = cost
		z.fw, _ = flate.NewWriter(&z.sw, c.opts.CompressionLevel)
	}
	z.sw.b = z.sw.b[:0]
	deflateInto(z.fw, &z.sw, p.payload)
	start := len(z.arena)
	z.arena = appendFrame(z.arena, p.opcode(), true, z.sw.b)
	return z.arena[start:]
}

// closeSequence owns the write side until the end: it finishes a partial
// write, flushes what is queued when the close is graceful, writes the
// close frame, waits for the peer's reply when asked, and finishes the
// connection.
func (c *Conn) closeSequence() {
	defer c.finish()
	c.mu.Lock()
	req := c.closing.req
	killed := c.killed
	c.mu.Unlock()
	if killed {
		return
	}
	// A frame cut by a partial write must be completed first.
	if c.w.pending != nil {
		if err := c.writeBlocking(c.w.pending.bufs); err != nil {
			c.setCloseErr(err)
			return
		}
		c.endPendingWrite()
	}
	for req.flush {
		c.mu.Lock()
		data, ctrl := c.sendQ, c.ctrlQ
		if c.held {
			data = nil // never released: its first message was not sent
		}
		c.sendQ, c.ctrlQ = nil, nil
		taken := c.unqueueLocked()
		c.mu.Unlock()
		c.opts.queues.give(taken)
		if len(data)+len(ctrl) == 0 {
			break
		}
		batch := c.buildBatch(nil, data, ctrl)
		n := len(batch)
		err := c.writeBlocking(batch)
		if err != nil {
			c.setCloseErr(err)
			return
		}
		c.framesOut.Add(uint64(n))
	}
	if err := c.writeCloseFrame(req.frame); err != nil {
		c.setCloseErr(err)
		return
	}
	c.framesOut.Add(1)
	if !req.waitPeer {
		return
	}
	// Nothing is written after a close frame. Half-closing tells a peer
	// that waits for the server to close TCP first (RFC 6455 7.1.1) to go
	// ahead, while the read side stays open for its close reply.
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	c.waitPeer()
}

func (c *Conn) setCloseErr(err error) {
	c.mu.Lock()
	c.closing.err = err
	c.mu.Unlock()
}
