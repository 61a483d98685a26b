package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"unsafe"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
)

// maxPipelinedPublishes and maxPipelinedPublishBytes bound a
// connection's publications that the broker has not confirmed yet, in
// messages and in bytes (see pubSize; one publication larger than the
// byte bound is still taken when none is pending). At either bound the
// connection's reads wait, which pushes back on the client through TCP.
// The node's pipelines together hold at most Config.MaxNodePublishBytes:
// a publication that arrives while they are at it is refused with
// overloaded.
const (
	maxPipelinedPublishes    = 128
	maxPipelinedPublishBytes = 1 << 20
)

// pubOverhead is what a queued publication holds besides its strings and
// data: the message and its queue entry.
const pubOverhead = int64(unsafe.Sizeof(broker.Message{}) + unsafe.Sizeof(pendingPublish{}))

// pubSize is what a publication of request id holds while it is queued:
// the bytes it owns (the decoded request's id, room, event and data, its
// message id and idempotency key) and pubOverhead. The correlation id and
// user id are the connection's own strings, not copies.
func pubSize(id json.RawMessage, m *broker.Message) int64 {
	return int64(len(id)+len(m.Room)+len(m.Event)+len(m.Data)+len(m.MsgID)+len(m.IdempotencyKey)) + pubOverhead
}

// A publish pipeline lets one connection publish faster than one message
// per broker round trip. With an engine whose Publish waits for a server
// (Redis: broker.BatchPublisher), the read side checks a publication and
// queues it here instead of waiting for the broker; one goroutine per
// connection, running only while something is queued, sends whatever has
// queued meanwhile in one round trip and answers each request in order.
// Any other request waits until the publications before it are answered,
// so a client still gets its replies, and its effects, in request order.
//
// Without it, a connection's next frame was read only once the broker
// had confirmed the last publication: a client publishing from one
// connection to a Redis-backed node got at most one message per round
// trip, and a round trip to a busy node took a few milliseconds.
type pubPipeline struct {
	mu      sync.Mutex
	cond    sync.Cond // broadcast when a batch is answered and when the sender stops
	queue   []pendingPublish
	sending int   // publications taken by the sender and not answered yet
	bytes   int64 // pubSize of the publications queued or being sent
	running bool  // the sender goroutine runs
}

// pendingPublish is a checked publication waiting for the broker.
type pendingPublish struct {
	id   json.RawMessage // the request's id, for the reply
	msg  *broker.Message
	size int64 // pubSize
}

// pipeline returns c's publish pipeline, made on first use. Connections
// that never publish through one hold none.
func (c *conn) pipeline() *pubPipeline {
	s := c.s
	s.pipesMu.Lock()
	defer s.pipesMu.Unlock()
	p := s.pipes[c]
	if p == nil {
		p = &pubPipeline{}
		p.cond.L = &p.mu
		s.pipes[c] = p
	}
	return p
}

// pipelinePublish queues m, a checked publication of request id, after
// waiting while the connection is at maxPipelinedPublishes or
// maxPipelinedPublishBytes unconfirmed. While the node's pipelines hold
// Config.MaxNodePublishBytes, it answers the request with overloaded
// instead (after the publications before it, in request order).
func (c *conn) pipelinePublish(id json.RawMessage, m *broker.Message) {
	s := c.s
	size := pubSize(id, m)
	p := c.pipeline()
	p.mu.Lock()
	for p.running && (len(p.queue)+p.sending >= maxPipelinedPublishes ||
		p.bytes > 0 && p.bytes+size > maxPipelinedPublishBytes) {
		p.cond.Wait()
	}
	if s.publishBytes.Load() >= s.cfg.MaxNodePublishBytes {
		// The node may pass its bound by the publications being queued
		// at this moment, never more.
		p.mu.Unlock()
		s.countLimit(limitNodePublishBytes)
		c.awaitPublishes()
		c.sendError(id, protocol.CodeOverloaded, "message not published: the node holds too many publications waiting for the broker; retry shortly")
		return
	}
	p.queue = append(p.queue, pendingPublish{id: id, msg: m, size: size})
	p.bytes += size
	s.publishBytes.Add(size)
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		go c.sendPublishes(p)
	}
}

// awaitPublishes returns once every publication c has queued is
// answered. The read side calls it before any other request, and
// cleanup before the connection's state goes away.
func (c *conn) awaitPublishes() {
	s := c.s
	if s.batcher == nil {
		return
	}
	s.pipesMu.Lock()
	p := s.pipes[c]
	s.pipesMu.Unlock()
	if p == nil {
		return
	}
	p.mu.Lock()
	for p.running {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// forgetPipeline drops c's pipeline; cleanup calls it after
// awaitPublishes, once nothing can be queued.
func (c *conn) forgetPipeline() {
	if c.s.batcher == nil {
		return
	}
	c.s.pipesMu.Lock()
	delete(c.s.pipes, c)
	c.s.pipesMu.Unlock()
}

// sendPublishes is the pipeline's sender: it hands everything queued to
// the broker in one batch, answers each request, and repeats until the
// queue is empty.
func (c *conn) sendPublishes(p *pubPipeline) {
	var (
		batch []pendingPublish
		msgs  []*broker.Message
		errs  []error
	)
	defer func() {
		if v := recover(); v != nil {
			// As in serveReads: a bug of ours costs this connection only.
			c.s.log.ErrorContext(c.ctx(), "panic while publishing", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !c.link.Abort(transport.CloseInternalError, "internal error", errInternal) {
				c.link.Terminate(errInternal)
			}
			p.mu.Lock()
			clear(p.queue)
			c.s.publishBytes.Add(-p.bytes)
			p.queue, p.sending, p.bytes, p.running = p.queue[:0], 0, 0, false
			p.cond.Broadcast()
			p.mu.Unlock()
		}
	}()
	for {
		p.mu.Lock()
		if len(p.queue) == 0 {
			p.running = false
			p.cond.Broadcast()
			p.mu.Unlock()
			return
		}
		batch, p.queue = p.queue, batch[:0]
		p.sending = len(batch)
		p.mu.Unlock()

		msgs = msgs[:0]
		for _, pp := range batch {
			msgs = append(msgs, pp.msg)
		}
		errs = slices.Grow(errs[:0], len(msgs))[:len(msgs)]
		clear(errs)
		c.s.publishBatch(c.ctx(), msgs, errs)
		var answered int64
		for i, pp := range batch {
			c.publishResult(pp.id, pp.msg, errs[i])
			answered += pp.size
		}
		clear(batch)
		clear(msgs)

		p.mu.Lock()
		p.sending = 0
		p.bytes -= answered
		c.s.publishBytes.Add(-answered)
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// publishBatch is publish for messages made by newMessage, through an
// engine that takes them in one round trip; errs[i] is what publish
// would have returned for msgs[i].
func (s *Server) publishBatch(ctx context.Context, msgs []*broker.Message, errs []error) {
	if s.closed.Load() {
		for i := range errs {
			errs[i] = ErrClosed
		}
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.BackendTimeout)
	defer cancel()
	s.batcher.PublishBatch(ctx, msgs, errs)
	for i, err := range errs {
		errs[i] = s.publishErr(ctx, err)
	}
}
