// Package memory is the single-node Broker: publications are handed straight
// to the local Handler in the caller's goroutine, so a publisher's messages
// are delivered in order and a publish returns once every local member has
// the message queued. It starts no goroutines.
//
// Rooms given a history (SetHistory) keep their last messages in a ring
// of at most HistoryPolicy.Size; a message older than HistoryPolicy.TTL
// is gone. The history lives in this process only: every Broker (so
// every start of the process) has an epoch of its own, and offsets
// start at 1 in it. All rooms' history together is bounded in bytes
// (LimitHistory): over the bound, whole rooms are forgotten, and a room
// made again after that is in an epoch of its own.
package memory

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
)

// Broker is the in-memory engine. The zero value is not usable; call New.
type Broker struct {
	mu      sync.RWMutex
	handler broker.Handler
	rooms   map[string]struct{}
	closed  atomic.Bool

	epoch   string
	policy  broker.HistoryFunc // nil: no room keeps history
	histMu  sync.RWMutex
	history map[string]*ring
	now     func() time.Time

	// The bound of all rooms' history (see LimitHistory).
	histBytes    atomic.Int64  // what the rings count, see ring.bytes
	maxHistBytes atomic.Int64  // 0: DefaultMaxHistoryBytes
	evictions    atomic.Uint64 // rooms forgotten so far: the epoch's suffix
	onEvict      atomic.Pointer[func()]
}

// New returns an in-memory broker.
func New() *Broker {
	return &Broker{
		rooms:   make(map[string]struct{}),
		epoch:   rand.Text()[:12],
		history: make(map[string]*ring),
		now:     time.Now,
	}
}

var (
	_ broker.Broker    = (*Broker)(nil)
	_ broker.Historian = (*Broker)(nil)
)

// ring is one room's history: the newest messages, oldest first, at most
// size, and the offset of the newest one ever stored (offsets start at 1).
// A room's publications are stored and delivered under mu, so its
// members get them in offset order.
type ring struct {
	mu     sync.Mutex
	msgs   []stored // circular; len == size once full
	head   int      // index of the oldest message
	count  int
	last   uint64
	lastID string                     // the msgId of the message at last
	keys   map[string]*broker.Message // idempotency key -> kept message
	policy broker.HistoryPolicy

	epoch   string       // the Broker's, or another once rooms were forgotten
	bytes   int64        // what it counts in Broker.histBytes (see cost)
	lastAt  atomic.Int64 // Unix nanoseconds of the newest message stored
	evicted bool         // forgotten: no longer in Broker.history
	owner   *Broker
}

type stored struct {
	m  *broker.Message
	at time.Time
}

// SetHistory implements broker.Historian.
func (b *Broker) SetHistory(f broker.HistoryFunc) {
	b.mu.Lock()
	b.policy = f
	b.mu.Unlock()
}

// ringOf returns room's ring, created if create; nil for a room without
// history.
func (b *Broker) ringOf(room string, create bool) *ring {
	b.mu.RLock()
	f := b.policy
	b.mu.RUnlock()
	if f == nil {
		return nil
	}
	b.histMu.RLock()
	r := b.history[room]
	b.histMu.RUnlock()
	if r != nil {
		return r
	}
	if protocol.IsUserRoom(room) {
		return nil // user rooms never keep history, as on every engine
	}
	p := f(room)
	if p.Size <= 0 || !create {
		return nil
	}
	b.histMu.Lock()
	defer b.histMu.Unlock()
	if r := b.history[room]; r != nil {
		return r
	}
	r = &ring{policy: p, msgs: make([]stored, 0, min(p.Size, 64)), keys: make(map[string]*broker.Message), epoch: b.currentEpoch(), owner: b}
	r.bytes = ringOverhead + int64(len(room)) + storedSize*int64(cap(r.msgs))
	r.lastAt.Store(b.now().UnixNano())
	b.histBytes.Add(r.bytes)
	b.history[room] = r
	return r
}

// expire drops messages older than the TTL. Called with r.mu held.
func (r *ring) expire(now time.Time) {
	if r.policy.TTL <= 0 {
		return
	}
	for r.count > 0 {
		s := r.msgs[r.head]
		if now.Sub(s.at) < r.policy.TTL {
			return
		}
		r.drop()
	}
}

// drop removes the oldest message. Called with r.mu held.
func (r *ring) drop() {
	s := &r.msgs[r.head]
	if k := s.m.IdempotencyKey; k != "" && r.keys[k] == s.m {
		delete(r.keys, k)
	}
	r.account(-messageCost(s.m))
	*s = stored{}
	r.head = (r.head + 1) % len(r.msgs)
	r.count--
}

// add stores m as the newest message. Called with r.mu held.
func (r *ring) add(m *broker.Message, now time.Time) {
	if r.count == r.policy.Size {
		r.drop()
	}
	if len(r.msgs) < r.policy.Size && r.count == len(r.msgs) {
		// Still growing: make the ring contiguous from index 0, then append.
		if r.head != 0 {
			r.msgs = append(append(make([]stored, 0, cap(r.msgs)), r.msgs[r.head:]...), r.msgs[:r.head]...)
			r.head = 0
		}
		before := cap(r.msgs)
		r.msgs = append(r.msgs, stored{m: m, at: now})
		r.account(storedSize * int64(cap(r.msgs)-before))
	} else {
		r.msgs[(r.head+r.count)%len(r.msgs)] = stored{m: m, at: now}
	}
	r.count++
	r.lastID = m.MsgID
	r.account(messageCost(m))
	r.lastAt.Store(now.UnixNano())
	if m.IdempotencyKey != "" {
		r.keys[m.IdempotencyKey] = m
	}
}

// Since implements broker.Historian.
func (b *Broker) Since(_ context.Context, room string, pos broker.Position, limit int) ([]*broker.Message, broker.Position, error) {
	if b.closed.Load() {
		return nil, broker.Position{}, broker.ErrClosed
	}
	cur := broker.Position{Epoch: b.currentEpoch()}
	r := b.ringOf(room, false)
	if r == nil {
		if pos == (broker.Position{}) || pos.Offset == 0 && pos.Epoch == cur.Epoch {
			return nil, cur, nil
		}
		return nil, cur, fmt.Errorf("%w: room %q has no history at %d of epoch %q", broker.ErrUnrecoverable, room, pos.Offset, pos.Epoch)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expire(b.now())
	cur.Offset, cur.MsgID, cur.Epoch = r.last, r.lastID, r.epoch
	if pos == (broker.Position{}) {
		return nil, cur, nil
	}
	if pos.Epoch != r.epoch {
		return nil, cur, fmt.Errorf("%w: epoch %q is not the current %q", broker.ErrUnrecoverable, pos.Epoch, r.epoch)
	}
	if pos.Offset > r.last {
		return nil, cur, fmt.Errorf("%w: offset %d is past the newest, %d", broker.ErrUnrecoverable, pos.Offset, r.last)
	}
	want := r.last - pos.Offset
	if want > uint64(r.count) {
		return nil, cur, fmt.Errorf("%w: messages after %d are no longer kept", broker.ErrUnrecoverable, pos.Offset)
	}
	// A position's message, when still kept, must be the one it names
	// (this history is never rolled back: a mismatch is a client's error).
	if pos.MsgID != "" && pos.Offset > 0 && want < uint64(r.count) {
		if m := r.msgs[(r.head+r.count-1-int(want))%len(r.msgs)].m; m.MsgID != pos.MsgID {
			return nil, cur, fmt.Errorf("%w: the message at %d is %q, not %q", broker.ErrUnrecoverable, pos.Offset, m.MsgID, pos.MsgID)
		}
	}
	n := int(want)
	if limit > 0 && n > limit {
		n = limit
	}
	out := make([]*broker.Message, n)
	first := r.count - int(want)
	for i := range out {
		m := *r.msgs[(r.head+first+i)%len(r.msgs)].m
		out[i] = &m
	}
	return out, cur, nil
}

// Start implements broker.Broker.
func (b *Broker) Start(_ context.Context, h broker.Handler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handler = h
	return nil
}

// Publish implements broker.Broker. Rooms without local interest are
// dropped here, exactly as a cluster engine would not route them to a node
// that has no member; user rooms always reach the Handler.
func (b *Broker) Publish(_ context.Context, m *broker.Message) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if r := b.ringOf(m.Room, true); r != nil {
		return b.publishStored(m, r)
	}
	b.mu.RLock()
	h := b.handler
	_, ok := b.rooms[m.Room]
	b.mu.RUnlock()
	if (ok || protocol.IsUserRoom(m.Room)) && h != nil {
		h.HandleMessage(m)
	}
	return nil
}

// publishStored stores m in r (or in the room's new ring, if r was
// forgotten meanwhile) and delivers it, both under the ring's mu so that
// the room's members get its messages in offset order; then it keeps all
// rooms' history within its bound.
func (b *Broker) publishStored(m *broker.Message, r *ring) error {
	for {
		r.mu.Lock()
		if !r.evicted {
			break
		}
		r.mu.Unlock()
		if r = b.ringOf(m.Room, true); r == nil { // the policy changed
			return b.Publish(context.Background(), m)
		}
	}
	err := b.storeAndDeliver(r, m)
	r.mu.Unlock()
	if b.histBytes.Load() > b.historyLimit() {
		b.evict(r)
	}
	return err
}

// storeAndDeliver is publishStored's work under r.mu.
func (b *Broker) storeAndDeliver(r *ring, m *broker.Message) error {
	now := b.now()
	r.expire(now)
	if k := m.IdempotencyKey; k != "" {
		if prev := r.keys[k]; prev != nil {
			m.MsgID, m.Offset, m.Epoch = prev.MsgID, prev.Offset, prev.Epoch
			return nil
		}
	}
	r.last++
	m.Offset, m.Epoch = r.last, r.epoch
	keep := *m
	r.add(&keep, now)
	b.mu.RLock()
	h := b.handler
	_, ok := b.rooms[m.Room]
	b.mu.RUnlock()
	if (ok || protocol.IsUserRoom(m.Room)) && h != nil {
		h.HandleMessage(m)
	}
	return nil
}

// Subscribe implements broker.Broker; user rooms need no subscription.
func (b *Broker) Subscribe(_ context.Context, room string) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if protocol.IsUserRoom(room) {
		return nil
	}
	b.mu.Lock()
	b.rooms[room] = struct{}{}
	b.mu.Unlock()
	return nil
}

// Unsubscribe implements broker.Broker.
func (b *Broker) Unsubscribe(_ context.Context, room string) error {
	if protocol.IsUserRoom(room) {
		return nil
	}
	b.mu.Lock()
	delete(b.rooms, room)
	b.mu.Unlock()
	return nil
}

// PublishControl implements broker.Broker.
func (b *Broker) PublishControl(_ context.Context, c *broker.Control) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	b.mu.RLock()
	h := b.handler
	b.mu.RUnlock()
	if h != nil {
		h.HandleControl(c)
	}
	return nil
}

// Health implements broker.Broker; memory is always healthy until closed.
func (b *Broker) Health(context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return nil
}

// Close implements broker.Broker.
func (b *Broker) Close() error {
	b.closed.Store(true)
	return nil
}

// Subscribed reports whether the node currently has interest in room
// (always, for a user room). It exists for tests of the Hub's interest
// tracking.
func (b *Broker) Subscribed(room string) bool {
	if protocol.IsUserRoom(room) {
		return true
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.rooms[room]
	return ok
}
