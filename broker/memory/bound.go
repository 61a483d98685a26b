package memory

import (
	"strconv"

	"github.com/heraldrt/herald/broker"
)

// DefaultMaxHistoryBytes bounds all rooms' history in a Broker, unless
// LimitHistory sets another bound.
const DefaultMaxHistoryBytes = 256 << 20

const (
	// ringOverhead is what a room with history costs besides its name and
	// its slots: the ring, its idempotency map and the history map's slot.
	ringOverhead = 256
	// storedSize is one slot of a ring (a message pointer and a time).
	storedSize = 32
	// messageOverhead is a kept message's struct (broker.Message is in
	// the 160 B size class) and its idempotency key's map entry, if any.
	messageOverhead = 160
	keyOverhead     = 48
)

// evictSample is how many rooms an eviction looks at to pick one.
const evictSample = 16

// LimitHistory bounds the bytes of all rooms' history (the messages kept,
// their slots, and a fixed overhead per room): each room's ring is bounded
// by its policy's Size, but where clients may publish to rooms a pattern
// matches they can make rooms without end, and a room whose messages all
// expired still holds its ring. A publish that takes the total over the
// bound forgets other rooms' history: of a sample of 16 rooms, the one
// whose newest message is the oldest, until the total is within the bound;
// then, if the publishing room alone is over it, that room's oldest
// messages. A recovering join from a forgotten message is told it was not
// recovered (broker.ErrUnrecoverable: the member gets a gap), never replayed
// a wrong run: a room made again after rooms were forgotten is in an epoch
// of its own. onEvict, if not nil, runs once for each room forgotten and
// each message trimmed so (with no lock held that a Publish needs: it may
// count, not publish). maxBytes <= 0 keeps the current bound (default
// DefaultMaxHistoryBytes).
func (b *Broker) LimitHistory(maxBytes int64, onEvict func()) {
	if maxBytes > 0 {
		b.maxHistBytes.Store(maxBytes)
	}
	if onEvict != nil {
		b.onEvict.Store(&onEvict)
	} else {
		b.onEvict.Store(nil)
	}
}

// HistoryBytes returns what all rooms' history counts against
// LimitHistory's bound, expired messages not yet dropped included.
func (b *Broker) HistoryBytes() int64 { return b.histBytes.Load() }

func (b *Broker) historyLimit() int64 {
	if n := b.maxHistBytes.Load(); n > 0 {
		return n
	}
	return DefaultMaxHistoryBytes
}

// currentEpoch is the epoch of a ring made now: the Broker's, and, once
// rooms were forgotten, a suffix that counts them, so that a forgotten
// room made again never gives its offsets to other messages in the epoch
// its members hold positions in.
func (b *Broker) currentEpoch() string {
	if n := b.evictions.Load(); n > 0 {
		return b.epoch + "." + strconv.FormatUint(n, 10)
	}
	return b.epoch
}

// messageCost is what a kept message counts in the bound.
func messageCost(m *broker.Message) int64 {
	n := messageOverhead + len(m.Room) + len(m.Event) + len(m.Data) + len(m.MsgID) + len(m.CorrelationID) + len(m.From)
	if m.IdempotencyKey != "" {
		n += keyOverhead + len(m.IdempotencyKey)
	}
	return int64(n)
}

// account adds delta to what r counts, and to the Broker's total. Called
// with r.mu held; a forgotten ring no longer counts in the total.
func (r *ring) account(delta int64) {
	r.bytes += delta
	if !r.evicted {
		r.owner.histBytes.Add(delta)
	}
}

// evict forgets rooms other than keep, then keep's oldest messages, until
// all rooms' history is within its bound. No ring's mu may be held.
func (b *Broker) evict(keep *ring) {
	limit := b.historyLimit()
	var onEvict func()
	if f := b.onEvict.Load(); f != nil {
		onEvict = *f
	}
	for b.histBytes.Load() > limit {
		b.histMu.Lock()
		var victim *ring
		var victimRoom string
		seen := 0
		for room, r := range b.history { // Go starts a map's range at random
			if r == keep {
				continue
			}
			if victim == nil || r.lastAt.Load() < victim.lastAt.Load() {
				victim, victimRoom = r, room
			}
			if seen++; seen == evictSample {
				break
			}
		}
		if victim == nil {
			b.histMu.Unlock()
			break
		}
		// Rings made from now on are in the next epoch: the room may be
		// made again, with offsets from 1.
		b.evictions.Add(1)
		delete(b.history, victimRoom)
		victim.mu.Lock()
		victim.evicted = true
		b.histBytes.Add(-victim.bytes)
		victim.mu.Unlock()
		b.histMu.Unlock()
		if onEvict != nil {
			onEvict()
		}
	}
	// keep alone is over the bound: its oldest messages go, the newest
	// stays (a position before it is then unrecoverable, as when the
	// ring's Size is passed).
	keep.mu.Lock()
	trimmed := 0
	for b.histBytes.Load() > limit && keep.count > 1 && !keep.evicted {
		keep.drop()
		trimmed++
	}
	keep.mu.Unlock()
	for ; trimmed > 0 && onEvict != nil; trimmed-- {
		onEvict()
	}
}
