package backend

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/internal/id"
)

// Event types of the events hook.
const (
	EventConnected    = "connected"
	EventDisconnected = "disconnected"
	EventPresence     = "presence"
)

// Event is one webhook event. ID is its idempotency key: an event may be
// posted more than once (at least once), always with the same ID.
type Event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Time is when it happened, in Unix milliseconds; absent on a
	// disconnected event another node sent for a node that died (Lost).
	Time int64  `json:"time,omitempty"`
	Node string `json:"node"`
	Conn Conn   `json:"conn"`
	// Code and Reason: the close code and reason of a disconnected event.
	Code   int    `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Lost marks a disconnected event sent by another node because the
	// node that held the connection died.
	Lost bool `json:"lost,omitempty"`
	// Room and Action ("join": the user's first connection in the room,
	// "leave": its last one left) of a presence event.
	Room   string `json:"room,omitempty"`
	Action string `json:"action,omitempty"`
}

// EventsRequest is the body of POST /events: a node's events in order.
type EventsRequest struct {
	Events []json.RawMessage `json:"events"`
}

// lostReason is the reason of the disconnected event sent for a
// connection whose node died.
const lostReason = "node lost"

// dispatcher posts a queue's events to the backend in order, at least
// once, with backoff, and keeps the queue's lease.
type dispatcher struct {
	p    *Proxy
	q    Queue
	node string

	wake    chan struct{} // a push or takeover: look at the queue now
	closing chan struct{} // Close began: stop once the queue is empty
	stop    chan struct{} // stop now
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	runDone chan struct{} // closed when run returns
	once    sync.Once
	empty   bool // the queue was empty when run ended (read after wg.Wait)
}

func newDispatcher(p *Proxy, q Queue) *dispatcher {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dispatcher{p: p, q: q, node: p.cfg.NodeName, wake: make(chan struct{}, 1),
		closing: make(chan struct{}), stop: make(chan struct{}), runDone: make(chan struct{}), ctx: ctx, cancel: cancel}
	d.wg.Add(2)
	go d.run()
	go d.maintain()
	return d
}

func (d *dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// pollInterval is how often an empty queue is read again without a wake
// (a shared queue may get events this node did not push).
const pollInterval = 250 * time.Millisecond

func (d *dispatcher) run() {
	defer d.wg.Done()
	defer close(d.runDone)
	var failing time.Time // when the head batch first failed
	backoff := 100 * time.Millisecond
	for {
		batch, err := d.q.Peek(d.ctx, d.p.cfg.EventsBatch)
		if err != nil {
			if d.ctx.Err() != nil {
				return
			}
			d.p.log.Warn("events queue read failed", "err", err)
			if !d.sleep(time.Second) {
				return
			}
			continue
		}
		if len(batch) == 0 {
			select {
			case <-d.closing:
				d.empty = true
				return
			default:
			}
			select {
			case <-d.wake:
			case <-time.After(pollInterval):
			case <-d.closing:
			case <-d.stop:
				return
			}
			continue
		}
		err = d.p.call(d.ctx, HookEvents, "", &EventsRequest{Events: rawEvents(batch)}, nil)
		if err == nil {
			if err := d.q.Ack(d.ctx, len(batch)); err != nil {
				d.p.log.Warn("events queue ack failed; the batch will be posted again", "err", err)
			}
			d.p.m.eventsSent.Add(float64(len(batch)))
			failing, backoff = time.Time{}, 100*time.Millisecond
			continue
		}
		if d.ctx.Err() != nil {
			return
		}
		now := time.Now()
		if failing.IsZero() {
			failing = now
		}
		if now.Sub(failing) > d.p.cfg.EventsMaxAge {
			d.p.log.Error("events given up: the backend did not take them in time", "events", len(batch), "for", now.Sub(failing).String(), "err", err)
			d.p.m.eventsGivenUp.WithLabelValues("max_age").Add(float64(len(batch)))
			_ = d.q.Ack(d.ctx, len(batch))
			failing, backoff = time.Time{}, 100*time.Millisecond
			continue
		}
		if !d.sleep(backoff) {
			return
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func rawEvents(batch [][]byte) []json.RawMessage {
	out := make([]json.RawMessage, len(batch))
	for i, b := range batch {
		out[i] = b
	}
	return out
}

// sleep waits for d or a stop; it reports false on a stop.
func (d *dispatcher) sleep(dur time.Duration) bool {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-d.stop:
		return false
	}
}

func (d *dispatcher) maintain() {
	defer d.wg.Done()
	t := time.NewTicker(d.p.cfg.LeaseTTL / 4)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(d.ctx, d.p.cfg.LeaseTTL/4)
		n, err := d.q.Maintain(ctx)
		cancel()
		switch {
		case err != nil && d.ctx.Err() == nil:
			d.p.log.Warn("events queue lease renewal failed", "err", err)
		case n > 0:
			d.p.log.Info("took over a dead node's webhook events", "events", n)
			d.signal()
		}
		ctx, cancel = context.WithTimeout(d.ctx, d.p.cfg.LeaseTTL/4)
		if l, err := d.q.Len(ctx); err == nil {
			d.p.m.eventsQueued.Set(float64(l))
		}
		if qb, ok := d.q.(QueueBytes); ok {
			if n, err := qb.Bytes(ctx); err == nil {
				d.p.m.eventsBytes.Set(float64(n))
			}
		}
		cancel()
		select {
		case <-t.C:
		case <-d.stop:
			return
		}
	}
}

func (d *dispatcher) close(ctx context.Context) error {
	var err error
	d.once.Do(func() {
		close(d.closing)
		// run returns once the queue is empty; maintain keeps the lease
		// until then.
		select {
		case <-d.runDone:
		case <-ctx.Done():
		}
		close(d.stop)
		d.cancel()
		d.wg.Wait()
		if mq, ok := d.q.(*MemoryQueue); ok {
			if n, _ := mq.Len(ctx); n > 0 {
				d.p.log.Error("events given up at shutdown", "events", n)
				d.p.m.eventsGivenUp.WithLabelValues("shutdown").Add(float64(n))
			}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		err = d.q.Close(cctx, d.empty)
	})
	return err
}

// pushTimeout bounds a push to the queue on a connection's behalf.
const pushTimeout = 2 * time.Second

func (d *dispatcher) push(ctx context.Context, e QueuedEvent) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pushTimeout)
	defer cancel()
	if err := d.q.Push(ctx, e); err != nil {
		reason := "queue_error"
		if errors.Is(err, ErrQueueFull) {
			reason = "queue_full"
		}
		d.p.m.eventsGivenUp.WithLabelValues(reason).Inc()
		d.p.log.ErrorContext(ctx, "webhook event given up", "reason", reason, "err", err, "conn_id", e.ConnID)
		return
	}
	d.signal()
}

func (d *dispatcher) connected(ctx context.Context, c *herald.ConnInfo) error {
	conn := connOf(ctx, c)
	body := mustJSON(Event{ID: c.ID + "/" + EventConnected, Type: EventConnected, Time: c.ConnectedAt.UnixMilli(), Node: d.node, Conn: conn})
	lost := mustJSON(Event{ID: c.ID + "/" + EventDisconnected, Type: EventDisconnected, Node: d.node, Conn: conn,
		Code: 1006, Reason: lostReason, Lost: true})
	d.push(ctx, QueuedEvent{Body: body, ConnID: c.ID, Open: lost})
	return nil
}

func (d *dispatcher) disconnected(ctx context.Context, c *herald.ConnInfo, code int, reason string) {
	body := mustJSON(Event{ID: c.ID + "/" + EventDisconnected, Type: EventDisconnected, Time: time.Now().UnixMilli(), Node: d.node,
		Conn: connOf(ctx, c), Code: code, Reason: reason})
	d.push(ctx, QueuedEvent{Body: body, ConnID: c.ID, Closed: true})
}

func (d *dispatcher) presence(ctx context.Context, c *herald.ConnInfo, room string, joined bool) {
	action := "leave"
	if joined {
		action = "join"
	}
	body := mustJSON(Event{ID: c.ID + "/" + EventPresence + "/" + id.New(8), Type: EventPresence, Time: time.Now().UnixMilli(), Node: d.node,
		Conn: connOf(ctx, c), Room: room, Action: action})
	d.push(ctx, QueuedEvent{Body: body, ConnID: c.ID})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
