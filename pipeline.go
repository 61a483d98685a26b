package herald

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/transport"
)

// maxPipelinedPublishes bounds a connection's publications that the
// broker has not confirmed yet. At the bound the connection's reads wait,
// which pushes back on the client through TCP.
const maxPipelinedPublishes = 128

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
	sending int  // publications taken by the sender and not answered yet
	running bool // the sender goroutine runs
}

// pendingPublish is a checked publication waiting for the broker.
type pendingPublish struct {
	id  json.RawMessage // the request's id, for the reply
	msg *broker.Message
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

// pipelinePublish queues m, a checked publication of request id, and
// waits while the connection has maxPipelinedPublishes unconfirmed.
func (c *conn) pipelinePublish(id json.RawMessage, m *broker.Message) {
	p := c.pipeline()
	p.mu.Lock()
	for p.running && len(p.queue)+p.sending >= maxPipelinedPublishes {
		p.cond.Wait()
	}
	p.queue = append(p.queue, pendingPublish{id: id, msg: m})
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
			p.queue, p.sending, p.running = p.queue[:0], 0, false
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
		for i, pp := range batch {
			c.publishResult(pp.id, pp.msg, errs[i])
		}
		clear(batch)
		clear(msgs)

		p.mu.Lock()
		p.sending = 0
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
