package transport

import (
	"time"
)

// closeFrame builds a complete close frame.
func closeFrame(code int, reason string) []byte {
	p := closePayload(code, reason)
	return appendFrame(make([]byte, 0, 2+len(p)), opClose, false, p)
}

// Close performs the closing handshake: it queues a close frame behind
// the messages already queued, waits up to 5 s for the peer's close reply
// and closes the socket. When no Read is in progress Close reads (and
// discards) incoming frames itself to see the reply; when one is, that
// Read sees it and returns. Close returns once Done is closed. It is
// idempotent: later calls only wait. The reason is truncated to 123 bytes
// on a UTF-8 boundary. A code no endpoint may send (1005, 1006, 1015 and
// the unassigned ones) goes out as a close frame without a status.
func (c *Conn) Close(code int, reason string) error {
	reason = truncateUTF8(reason, maxControlPayload-2)
	req := closeRequest{frame: closeFrame(code, reason), flush: true, waitPeer: true}
	if c.startClose(req, &CloseError{Code: code, Reason: reason}, closeGrace) && c.readMu.TryLock() {
		c.mu.Lock()
		deadline := c.closeDeadline()
		c.mu.Unlock()
		_ = c.nc.SetReadDeadline(deadline)
		c.reader()
		for c.r.err == nil {
			_, _, _ = c.readMessage()
		}
		c.dropReadBuffers()
		c.readMu.Unlock()
	}
	<-c.Done()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing.err
}

// Terminate ends the connection immediately without a close frame, for
// a peer that is gone (heartbeat timeout) or when there is no time for a
// handshake: the socket is closed, or, while a write is in progress on
// another goroutine, shut down at once and closed when that write
// returns. err is recorded as the cause unless one already is; nil
// records ErrClosed. Terminate is idempotent and does not wait for Done.
func (c *Conn) Terminate(err error) {
	if err == nil {
		err = ErrClosed
	}
	c.mu.Lock()
	cl := c.closingLocked()
	if cl.cause == nil {
		cl.cause = err
	}
	already := c.killed
	c.killed = true
	c.closeStarted = true
	claimed := !already && c.claimLocked()
	wake := cl.wake
	cl.wake = nil
	c.mu.Unlock()
	if already {
		return
	}
	if wake != nil {
		close(wake)
	}
	switch {
	case claimed:
		// Nobody was writing: finish here.
		c.finish()
	case c.fd >= 0:
		// The owner may be writing to the descriptor (see Conn.fd):
		// shut the socket down so that its write fails or any wait
		// returns, and let it finish, which closes the descriptor.
		_ = c.raw().shutdownBoth()
	default:
		// The owner's write fails on the closed socket and it finishes.
		c.closeSocket()
	}
}

// startClose begins closing with req unless closing has already started,
// and reports whether it did. cause is recorded; every socket write from
// now on, including one in flight, must finish within grace.
func (c *Conn) startClose(req closeRequest, cause error, grace time.Duration) bool {
	started, claimed := c.beginClose(req, cause, grace)
	if claimed {
		go c.closeSequence()
	}
	return started
}

// beginClose is startClose without starting the close sequence: claimed
// reports that the caller owns the write side and must run it.
func (c *Conn) beginClose(req closeRequest, cause error, grace time.Duration) (started, claimed bool) {
	c.mu.Lock()
	if c.closeStarted {
		c.mu.Unlock()
		return false, false
	}
	c.closeStarted = true
	cl := c.closingLocked()
	if cl.cause == nil {
		cl.cause = cause
	}
	cl.at = c.now() + int64(grace)
	_ = c.nc.SetWriteDeadline(c.closeDeadline())
	cl.req, cl.requested = req, true
	claimed = c.claimLocked()
	c.mu.Unlock()
	return true, claimed
}

// closeSocket closes the socket. It may run more than once (Terminate
// and finish, for a net.Conn): closing again only fails.
func (c *Conn) closeSocket() {
	_ = c.nc.Close()
	if c.raw() != nil {
		readPoller.forget(c)
	}
}

func (c *Conn) signalPeerClosed() {
	c.mu.Lock()
	c.peerGone = true
	var wake chan struct{}
	if cl := c.closing; cl != nil {
		wake, cl.wake = cl.wake, nil
	}
	c.mu.Unlock()
	if wake != nil {
		close(wake)
	}
}

// waitPeer waits until the peer's close or EOF has been seen, the
// connection is terminated, or the close deadline passes.
func (c *Conn) waitPeer() {
	c.mu.Lock()
	if c.peerGone || c.killed {
		c.mu.Unlock()
		return
	}
	cl := c.closingLocked()
	if cl.wake == nil {
		cl.wake = make(chan struct{})
	}
	wake := cl.wake
	wait := time.Until(c.closeDeadline())
	c.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-wake:
	case <-t.C:
	}
}

// finish runs once, when the last owner of the write side is done: it
// closes the socket and Done. The write side stays owned for good, so
// nothing writes after it.
func (c *Conn) finish() {
	c.mu.Lock()
	if c.finishing {
		c.mu.Unlock()
		return
	}
	c.finishing = true
	cl := c.closingLocked()
	if cl.cause == nil {
		cl.cause = ErrClosed
	}
	c.closeStarted = true
	c.owned = true
	c.sendQ, c.ctrlQ = nil, nil
	taken := c.unqueueLocked()
	evicted := cl.evicted
	c.mu.Unlock()
	c.opts.queues.give(taken)
	c.endPendingWrite() // the write side is this caller's now
	c.opts.queues.freed(evicted)
	if z := c.w.z; z != nil {
		c.opts.takeover.give(z.charged)
		c.w.z = nil
	}
	if c.opts.PingInterval > 0 {
		heartbeats.remove(c)
	}
	c.closeSocket()
	if c.readMu.TryLock() {
		// No reader is in progress, and none may ever come: give the
		// read buffers' charge back now, and end the read side as a
		// read of the closed socket would. A reader in progress gives
		// it back itself when it sees the end.
		if c.r.err == nil && c.holdsReadCharge() {
			c.r.err = c.Err()
			c.dropReadBuffers()
		}
		c.readMu.Unlock()
	}
	c.mu.Lock()
	c.finished = true
	done := c.closing.done
	c.mu.Unlock()
	if done != nil {
		close(done)
	}
	c.readable() // a pending NotifyReadable callback sees the end
}
