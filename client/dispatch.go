package client

import (
	"container/list"
	"context"
	"sync"

	"github.com/heraldrt/herald/protocol"
)

// dedupSize is how many recent msgIds the dispatcher remembers to drop
// redeliveries.
const dedupSize = 4096

// item is one thing for the dispatch goroutine: a state change, or a frame
// and the event it carries.
type item struct {
	isState bool
	state   State
	frame   []byte // raw, only when a frame handler is set
	ev      *Event
	ack     bool   // the event asks for an ack
	gen     uint64 // connection the frame came on
	note    *roomNote
	cost    int64 // what it counts in Client.queued
}

// roomNote tells the application about a room's recovery or gap.
type roomNote struct {
	room      string
	gap       bool // else a recovery
	recovered bool
}

// dispatch runs every handler, in order, until the queue is closed; then it
// closes done, the last thing the Client does.
func (c *Client) dispatch() {
	defer close(c.done)
	seen := newLRU(dedupSize)
	for it := range c.queue {
		if it.isState {
			if c.opts.onState != nil {
				c.opts.onState(it.state)
			}
			continue
		}
		c.dispatchItem(it, seen)
		c.queued.give(it.cost)
	}
}

// dispatchItem runs the handlers of one frame's item.
func (c *Client) dispatchItem(it item, seen *lru) {
	if it.frame != nil {
		c.opts.onFrame(it.frame)
	}
	if n := it.note; n != nil {
		switch {
		case n.gap && c.opts.onGap != nil:
			c.opts.onGap(n.room)
		case !n.gap && c.opts.onRecovery != nil:
			c.opts.onRecovery(n.room, n.recovered)
		}
	}
	if it.ev == nil {
		return
	}
	id := it.ev.MsgID
	if len(id) > protocol.MaxMsgIDLen {
		if !c.longMsgID.Swap(true) {
			c.opts.log.Warn("herald: msgId too long: neither remembered nor acknowledged (logged once)",
				"bytes", len(id), "limit", protocol.MaxMsgIDLen)
		}
		id = ""
	}
	if id == "" || seen.add(id) {
		c.deliver(*it.ev)
	}
	if it.ack && id != "" {
		// After the handlers: a crash before this point means the
		// server redelivers, which is what ack is for.
		c.acks.add(it.gen, it.ev.MsgID)
	}
}

func (c *Client) deliver(ev Event) {
	c.hmu.RLock()
	all, named := c.any, c.handlers[ev.Event]
	c.hmu.RUnlock()
	for _, fn := range all {
		fn(ev)
	}
	for _, fn := range named {
		fn(ev)
	}
}

// acker collects the msgIds to acknowledge on the current connection; the
// connection's writer takes them every interval, or when kicked because
// max are pending.
type acker struct {
	mu   sync.Mutex
	gen  uint64
	ids  []string
	max  int
	kick chan struct{}
}

func (a *acker) init(maxIDs int) {
	a.max = maxIDs
	a.kick = make(chan struct{}, 1)
}

// reset starts collecting for connection gen; ids of older connections are
// dropped, since the server forgets them with the connection.
func (a *acker) reset(gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen, a.ids = gen, nil
}

func (a *acker) add(gen uint64, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen != a.gen {
		return
	}
	a.ids = append(a.ids, id)
	if len(a.ids) >= a.max {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// take returns the ids to send on connection gen: all of them, or with
// fullOnly just whole batches of max, leaving the rest for the next tick.
func (a *acker) take(gen uint64, fullOnly bool) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen != a.gen {
		return nil
	}
	n := len(a.ids)
	if fullOnly {
		n -= n % a.max
	}
	ids := a.ids[:n:n]
	a.ids = append([]string(nil), a.ids[n:]...)
	return ids
}

// lru is a bounded set of recent keys; only the dispatch goroutine uses it.
type lru struct {
	size  int
	order *list.List // front: most recent
	keys  map[string]*list.Element
}

func newLRU(size int) *lru {
	return &lru{size: size, order: list.New(), keys: make(map[string]*list.Element, size)}
}

// add records k and reports whether it was new.
func (l *lru) add(k string) bool {
	if e, ok := l.keys[k]; ok {
		l.order.MoveToFront(e)
		return false
	}
	l.keys[k] = l.order.PushFront(k)
	if l.order.Len() > l.size {
		oldest := l.order.Back()
		l.order.Remove(oldest)
		delete(l.keys, oldest.Value.(string))
	}
	return true
}

// queueBytes counts the bytes of the frames waiting for the dispatch
// goroutine against a bound (WithQueueBytes): the queue's 1,024 places
// alone let a server that sends large frames faster than the handlers
// take them make the Client hold 1,024 times the read limit (2 GiB at
// the defaults). A frame that does not fit waits, and its reader with
// it, so that the server's send queue fills instead and the server
// disconnects the Client as a slow consumer (4008), as when the queue
// is full. One frame is let in whatever its size when nothing waits.
type queueBytes struct {
	mu   sync.Mutex
	used int64
	max  int64
	// room, when a reader waits, is closed by give to wake it.
	room chan struct{}
}

// take counts n bytes, waiting until they fit or ctx is done (then it
// reports false, counting nothing). waiting runs before the first wait.
func (q *queueBytes) take(ctx context.Context, n int64, waiting func(used int64)) bool {
	for i := 0; ; i++ {
		q.mu.Lock()
		if q.used == 0 || q.used+n <= q.max {
			q.used += n
			q.mu.Unlock()
			return true
		}
		if q.room == nil {
			q.room = make(chan struct{})
		}
		room, used := q.room, q.used
		q.mu.Unlock()
		if i == 0 {
			waiting(used)
		}
		select {
		case <-room:
		case <-ctx.Done():
			return false
		}
	}
}

// give returns n bytes counted by take, waking a reader that waits.
func (q *queueBytes) give(n int64) {
	if n == 0 {
		return
	}
	q.mu.Lock()
	q.used -= n
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	q.mu.Unlock()
}
