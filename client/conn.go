package client

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/protocol"
)

// writeTimeout bounds one frame write; a peer that takes longer is treated
// as gone.
const writeTimeout = 10 * time.Second

// conn is one WebSocket connection. Its reader and writer goroutines are
// owned by the supervisor (run), which waits for both before dialing again.
type conn struct {
	c        *Client
	ws       *websocket.Conn
	gen      uint64
	welcome  protocol.Welcome
	out      chan []byte        // frames for the writer
	shutdown chan time.Duration // server_shutdown's retryAfter, from the reader
	lastSeen *atomic.Int64      // Unix ns of the last frame or ping received
	started  time.Time

	wg       sync.WaitGroup
	done     chan struct{} // closed when the connection failed or closed
	failOnce sync.Once
	err      error // why; written once before done is closed
}

// fail records why the connection ended and wakes everyone waiting on it.
func (cn *conn) fail(err error) {
	cn.failOnce.Do(func() {
		cn.err = err
		close(cn.done)
	})
}

// send queues b for the writer.
func (cn *conn) send(ctx context.Context, b []byte) error {
	select {
	case cn.out <- b:
		return nil
	case <-cn.done:
		return ErrDisconnected
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readLoop reads frames until the connection fails: replies go straight to
// the request waiting for them, everything else to the dispatch goroutine.
func (cn *conn) readLoop() {
	defer cn.wg.Done()
	c := cn.c
	for {
		typ, b, err := cn.ws.Read(context.Background())
		if err != nil {
			cn.fail(err)
			return
		}
		cn.lastSeen.Store(time.Now().UnixNano())
		if typ != websocket.MessageText {
			c.opts.log.Warn("herald: ignoring a binary frame")
			continue
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			c.opts.log.Warn("herald: ignoring a frame that is not JSON", "err", err)
			continue
		}
		it := item{gen: cn.gen}
		if c.opts.onFrame != nil {
			it.frame = b
		}
		switch f.Type {
		case protocol.TypeReply:
			c.resolve(f.id(), result{data: f.Data})
		case protocol.TypeError:
			var e protocol.ErrorFrame
			_ = json.Unmarshal(b, &e)
			if id := f.id(); id != "" {
				c.resolve(id, result{err: &ServerError{Code: e.Code, Message: e.Message}})
			} else {
				c.opts.log.Warn("herald: server error", "code", e.Code, "message", e.Message)
			}
		case protocol.TypeEvent:
			ev := &f.Event
			it.ev = &Event{Room: ev.Room, Event: ev.Event, Data: ev.Data, MsgID: ev.MsgID, TS: ev.TS, From: ev.From,
				Offset: ev.Offset, Epoch: ev.Epoch}
			it.ack = ev.Ack
			if ev.Offset != 0 {
				c.advance(ev.Room, position{ev.Offset, ev.Epoch, ev.MsgID}, false)
			}
		case protocol.TypeGap:
			it.note = &roomNote{room: f.Room, gap: true}
		case protocol.TypeServerShutdown:
			var sd protocol.ServerShutdown
			_ = json.Unmarshal(b, &sd)
			select {
			case cn.shutdown <- time.Duration(sd.RetryAfterMs) * time.Millisecond:
			default:
			}
		}
		if it.frame == nil && it.ev == nil && it.note == nil {
			continue
		}
		it.cost = int64(len(b))
		if it.frame != nil && it.ev != nil {
			it.cost *= 2 // the frame, and the event's data copied from it
		}
		if !c.queued.take(c.ctx, it.cost, func(used int64) {
			c.opts.log.Warn("herald: handlers are behind; reading paused until they catch up",
				"queued_bytes", used, "frame_bytes", len(b))
		}) {
			continue // closing, as below
		}
		select {
		case c.queue <- it:
		case <-c.ctx.Done():
			// Closing: nobody will dispatch it. Keep reading so the
			// close handshake completes.
			c.queued.give(it.cost)
		}
	}
}

// writeLoop writes queued frames and flushes acknowledgements until the
// connection fails.
func (cn *conn) writeLoop() {
	defer cn.wg.Done()
	c := cn.c
	t := time.NewTicker(c.opts.ackEvery)
	defer t.Stop()
	for {
		var err error
		select {
		case b := <-cn.out:
			err = cn.write(b)
		case <-t.C:
			err = cn.flushAcks(false)
		case <-c.acks.kick:
			err = cn.flushAcks(true)
		case <-cn.done:
			return
		}
		if err != nil {
			cn.fail(err)
			return
		}
	}
}

func (cn *conn) write(b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return cn.ws.Write(ctx, websocket.MessageText, b)
}

// flushAcks sends the msgIds acknowledged on this connection so far, in
// frames of at most the batch size; with fullOnly, only full frames.
func (cn *conn) flushAcks(fullOnly bool) error {
	ids := cn.c.acks.take(cn.gen, fullOnly)
	for len(ids) > 0 {
		n := min(len(ids), cn.c.acks.max)
		b, err := protocol.Marshal(protocol.Request{Type: protocol.TypeAck, MsgIDs: ids[:n]})
		if err != nil {
			return err
		}
		if err := cn.write(b); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// resolve hands a reply or error to the request with that id, if it still
// waits.
func (c *Client) resolve(id string, r result) {
	c.mu.Lock()
	ch, ok := c.pending[id]
	c.mu.Unlock()
	if !ok {
		return
	}
	select {
	case ch <- r:
	default:
	}
}
