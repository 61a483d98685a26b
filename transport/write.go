package transport

import (
	"compress/flate"
	"encoding/binary"
	"fmt"
	"net"
	"time"
)

// writeState is owned by the writer goroutine.
type writeState struct {
	batch [][]byte    // backing array for bufs, reused every batch
	bufs  net.Buffers // the batch being written; consumed by WriteTo
	arena []byte      // frames compressed by this conn (context takeover)
	fw    *flate.Writer
	sw    sliceWriter
	ping  [pingFrameSize]byte
	err   error // the write error that ended the connection
}

// writeLoop is the connection's only goroutine. It owns every socket
// write: it batches queued frames into one writev, sends heartbeats and
// performs the close sequence, then closes the socket and Done.
func (c *Conn) writeLoop() {
	defer c.finish()

	var tick <-chan time.Time
	if c.opts.PingInterval > 0 {
		t := time.NewTicker(c.opts.PingInterval)
		defer t.Stop()
		tick = t.C
	}
	pongTimer := time.NewTimer(time.Hour)
	pongTimer.Stop()
	defer pongTimer.Stop()
	var pingAt int64
	pingOutstanding := false

	for {
		c.w.arena = c.w.arena[:0] // the previous batch is written
		// A close request overtakes queued data (it flushes it itself
		// when graceful).
		select {
		case <-c.kill:
			return
		case req := <-c.closeReq:
			c.writeClose(req)
			return
		default:
		}

		select {
		case <-c.kill:
			return
		case req := <-c.closeReq:
			c.writeClose(req)
			return
		case f := <-c.ctrl:
			c.w.batch = append(c.w.batch[:0], f)
			if !c.writeBatch(len(f), 1) {
				return
			}
		case p := <-c.queue:
			// select picks at random among ready cases: a control frame
			// (pong) queued before this message must still go first.
			c.w.batch = c.w.batch[:0]
			n, size := 0, 0
			for more := true; more && n < maxBatchItems; {
				select {
				case cf := <-c.ctrl:
					c.w.batch = append(c.w.batch, cf)
					n, size = n+1, size+len(cf)
				default:
					more = false
				}
			}
			f := c.frameFor(p)
			c.w.batch = append(c.w.batch, f)
			if !c.writeBatch(size+len(f), n+1) {
				return
			}
		case <-tick:
			// Ping every interval; skip only while the previous ping is
			// still unanswered (its timer decides the connection's fate).
			if pingOutstanding && c.lastSeen.Load() < pingAt {
				continue
			}
			pingAt = c.now()
			b := c.w.ping[:]
			putServerHeader(b, opPing, false, 8)
			binary.BigEndian.PutUint64(b[2:], uint64(time.Now().UnixNano()))
			c.w.batch = append(c.w.batch[:0], b)
			if !c.writeBatch(len(b), 1) {
				return
			}
			pingOutstanding = true
			pongTimer.Reset(c.opts.PongTimeout)
		case <-pongTimer.C:
			pingOutstanding = false
			if c.lastSeen.Load() < pingAt {
				c.Terminate(ErrHeartbeatTimeout)
				return
			}
		}
	}
}

// frameFor returns the bytes to write for p on this connection.
func (c *Conn) frameFor(p *Prepared) []byte {
	if !c.neg.deflate || !p.compress {
		return p.plainFrame()
	}
	if !c.neg.serverContext {
		return p.deflateFrame()
	}
	// Context takeover: this conn's compressor state depends on every
	// message it sent before, so the shared bytes cannot be used. Frames
	// are appended to arena, which the caller resets once per batch.
	if c.w.fw == nil {
		c.w.fw, _ = flate.NewWriter(&c.w.sw, c.opts.CompressionLevel)
	}
	c.w.sw.b = c.w.sw.b[:0]
	deflateInto(c.w.fw, &c.w.sw, p.payload)
	start := len(c.w.arena)
	c.w.arena = appendFrame(c.w.arena, p.opcode(), true, c.w.sw.b)
	return c.w.arena[start:]
}

// writeBatch adds whatever else is queued, without blocking, to the batch
// that c.w.batch starts with (n items, size bytes) and writes it all with
// one writev. Control frames go first. It reports false when the
// connection is finished.
func (c *Conn) writeBatch(size, n int) bool {
	for n < maxBatchItems && size < maxBatchBytes {
		var f []byte
		select {
		case f = <-c.ctrl:
		default:
			select {
			case p := <-c.queue:
				f = c.frameFor(p)
			default:
			}
		}
		if f == nil {
			break
		}
		c.w.batch = append(c.w.batch, f)
		size += len(f)
		n++
	}
	return c.flush(n) == nil
}

// flush writes c.w.batch (n frames) to the socket. A failed write
// terminates the connection: the stream may end mid-frame.
func (c *Conn) flush(n int) error {
	c.w.bufs = c.w.batch
	deadline := time.Now().Add(c.opts.WriteTimeout)
	c.mu.Lock()
	if !c.closeDeadline.IsZero() && c.closeDeadline.Before(deadline) {
		deadline = c.closeDeadline
	}
	_ = c.nc.SetWriteDeadline(deadline)
	c.mu.Unlock()
	written, err := c.w.bufs.WriteTo(c.nc)
	clear(c.w.batch) // drop references to frames already sent
	c.w.batch = c.w.batch[:0]
	c.bytesOut.Add(uint64(written))
	if err != nil {
		err = fmt.Errorf("transport: write: %w", err)
		c.w.err = err
		c.Terminate(err)
		return err
	}
	c.framesOut.Add(uint64(n))
	return nil
}

// writeClose performs the writer's part of closing.
func (c *Conn) writeClose(req closeRequest) {
	if req.flush {
		for {
			select {
			case p := <-c.queue:
				c.w.arena = c.w.arena[:0]
				f := c.frameFor(p)
				c.w.batch = append(c.w.batch[:0], f)
				if !c.writeBatch(len(f), 1) {
					c.setCloseErr(c.w.err)
					return
				}
				continue
			default:
			}
			break
		}
	}
	c.w.batch = append(c.w.batch[:0], req.frame)
	if err := c.flush(1); err != nil {
		c.setCloseErr(err)
		return
	}
	if !req.waitPeer {
		return
	}
	// Nothing is written after a close frame. Half-closing tells a peer
	// that waits for the server to close TCP first (RFC 6455 7.1.1) to go
	// ahead, while the read side stays open for its close reply.
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	c.mu.Lock()
	wait := time.Until(c.closeDeadline)
	c.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-c.peerClosed:
	case <-c.kill:
	case <-t.C:
	}
}

func (c *Conn) setCloseErr(err error) {
	c.mu.Lock()
	c.closeErr = err
	c.mu.Unlock()
}
