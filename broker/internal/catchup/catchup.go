// Package catchup gives a cluster engine gap repair for rooms with
// history: it sits between the engine's subscription readers and the
// Handler, hands each room's messages on in offset order, drops the
// ones already handed on (the seam between a catch-up and live
// delivery), and fills a gap (after a resubscribe, or a live message
// whose offset skips some) from the engine's history before any later
// message of the room. Rooms without history go straight through; after
// a resubscribe the Handler is told it may have missed their messages
// (broker.Handler.HandleGap).
package catchup

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
)

// SinceFunc reads a room's history (broker.Historian.Since).
type SinceFunc func(ctx context.Context, room string, pos broker.Position, limit int) ([]*broker.Message, broker.Position, error)

// CheckedSinceFunc is a SinceFunc that is also given the msgId of the
// message at pos, when the node had that message ("" otherwise), so an
// engine whose history can be rolled back (Redis restored from an older
// snapshot) can tell that the message now at pos.Offset is another one.
type CheckedSinceFunc func(ctx context.Context, room string, pos broker.Position, posID string, limit int) ([]*broker.Message, broker.Position, error)

// MaxHeld bounds the live messages a room holds while its gap is being
// filled; past it they are dropped and the gap is filled from history
// (which has them) or reported.
const MaxHeld = 10000

// pageSize is how many messages one Since call asks for.
const pageSize = 500

// Tracker is one engine's gap repair. Create it with New; Close stops
// its repairs.
type Tracker struct {
	h       broker.Handler
	since   CheckedSinceFunc
	history func(room string) bool
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	rooms map[string]*room
}

// room is the state of one subscribed room with history.
type room struct {
	mu sync.Mutex
	// pos is the newest message handed on (or, while soft, the room's
	// position when this node subscribed: messages up to it may still
	// arrive live and are handed on).
	pos broker.Position
	// posID is the msgId of the message at pos: of the message handed
	// on, or the one the engine gave with the position ("" when it gave
	// none).
	posID     string
	known     bool
	soft      bool
	repairing bool
	held      []*broker.Message
	overflow  bool
	gone      bool // unsubscribed
}

// New returns a Tracker handing messages to h. history reports whether
// a room keeps history; since reads it.
func New(h broker.Handler, history func(room string) bool, since SinceFunc, log *slog.Logger) *Tracker {
	return NewChecked(h, history, func(ctx context.Context, room string, pos broker.Position, _ string, limit int) ([]*broker.Message, broker.Position, error) {
		return since(ctx, room, pos, limit)
	}, log)
}

// NewChecked is New for an engine that checks the message at a
// position (see CheckedSinceFunc).
func NewChecked(h broker.Handler, history func(room string) bool, since CheckedSinceFunc, log *slog.Logger) *Tracker {
	ctx, cancel := context.WithCancel(context.Background())
	return &Tracker{h: h, since: since, history: history, log: log, ctx: ctx, cancel: cancel, rooms: make(map[string]*room)}
}

// Close stops repairs in flight and waits for them.
func (t *Tracker) Close() {
	t.cancel()
	t.wg.Wait()
}

func (t *Tracker) state(name string, create bool) *room {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rooms[name]
	if r == nil && create {
		r = &room{}
		t.rooms[name] = r
	}
	return r
}

// Subscribed records room's position when this node subscribed (after
// the engine confirmed the subscription), so that a resubscribe before
// its first message can still be caught up. It costs one Since call, for
// rooms with history only; a failure leaves the room without a position
// (a later gap is then reported rather than filled).
func (t *Tracker) Subscribed(ctx context.Context, name string) {
	if protocol.IsUserRoom(name) || !t.history(name) {
		return
	}
	r := t.state(name, true)
	_, cur, err := t.since(ctx, name, broker.Position{}, "", 0)
	if err != nil {
		t.log.Warn("catch-up: cannot read the position of a room", "room", name, "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.known && !r.gone {
		r.pos, r.posID, r.known, r.soft = broker.Position{Offset: cur.Offset, Epoch: cur.Epoch}, cur.MsgID, true, true
	}
}

// Unsubscribed forgets room.
func (t *Tracker) Unsubscribed(name string) {
	t.mu.Lock()
	r := t.rooms[name]
	delete(t.rooms, name)
	t.mu.Unlock()
	if r != nil {
		r.mu.Lock()
		r.gone, r.held = true, nil
		r.mu.Unlock()
	}
}

// Deliver hands a live message on, in offset order.
func (t *Tracker) Deliver(m *broker.Message) {
	if m.Offset == 0 || protocol.IsUserRoom(m.Room) {
		t.h.HandleMessage(m)
		return
	}
	r := t.state(m.Room, false)
	if r == nil {
		// Not tracked (a room without history, or unsubscribed while
		// in flight): nothing to order against.
		t.h.HandleMessage(m)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return
	}
	if r.repairing {
		r.hold(m)
		return
	}
	switch {
	case !r.known:
		r.pos, r.posID, r.known = pos(m), m.MsgID, true
		t.h.HandleMessage(m)
	case m.Epoch == r.pos.Epoch && m.Offset <= r.pos.Offset:
		if r.soft {
			// Published after the subscription but before its position
			// was read: not yet handed on.
			t.h.HandleMessage(m)
			return
		}
		// Already handed on (the seam of a catch-up): drop.
	case m.Epoch == r.pos.Epoch && m.Offset == r.pos.Offset+1:
		r.pos, r.posID, r.soft = pos(m), m.MsgID, false
		t.h.HandleMessage(m)
	default:
		// A gap: this message skips some, or is of another epoch.
		r.hold(m)
		t.startRepair(m.Room, r, true)
	}
}

func pos(m *broker.Message) broker.Position { return broker.Position{Offset: m.Offset, Epoch: m.Epoch} }

// hold keeps m until the repair in flight ends. Called with r.mu held.
func (r *room) hold(m *broker.Message) {
	if len(r.held) >= MaxHeld {
		r.overflow = true
		return
	}
	r.held = append(r.held, m)
}

// Resubscribed is called when the engine's subscriptions to rooms came
// back after a break: every room with history is caught up from where
// this node left it; the others are reported to the Handler as gaps.
func (t *Tracker) Resubscribed(rooms []string) {
	var gaps []string
	for _, name := range rooms {
		if protocol.IsUserRoom(name) {
			continue
		}
		if !t.history(name) {
			gaps = append(gaps, name)
			continue
		}
		r := t.state(name, false)
		if r == nil {
			gaps = append(gaps, name)
			continue
		}
		r.mu.Lock()
		switch {
		case r.gone || r.repairing:
		case !r.known:
			gaps = append(gaps, name)
		default:
			t.startRepair(name, r, false)
		}
		r.mu.Unlock()
	}
	if len(gaps) > 0 {
		t.h.HandleGap(gaps)
	}
}

// startRepair starts filling room's gap; skip tells that a live message
// skipped offsets (which may only be overtaking its predecessors, from
// another publisher) rather than a resubscribe. Called with r.mu held.
func (t *Tracker) startRepair(name string, r *room, skip bool) {
	if t.ctx.Err() != nil {
		return
	}
	r.repairing = true
	t.wg.Add(1)
	go t.repair(name, r, skip)
}

// overtakeGrace is how long a room whose live message skipped offsets
// waits for the missing ones to arrive live before it reads history:
// two publishers' messages may reach a node out of offset order (on
// NATS, whose live messages are sent after they are stored), and
// reading history for each such swap would cost round trips.
const overtakeGrace = 5 * time.Millisecond

// drainHeld hands on the held messages that follow r.pos without a gap
// and reports whether none is left. Called with r.mu held.
func (t *Tracker) drainHeld(r *room) bool {
	// The room's epoch first, by offset; others after, as they came.
	var same, other []*broker.Message
	for _, m := range r.held {
		if m.Epoch == r.pos.Epoch {
			same = append(same, m)
		} else {
			other = append(other, m)
		}
	}
	slices.SortStableFunc(same, func(a, b *broker.Message) int { return cmp.Compare(a.Offset, b.Offset) })
	r.held = append(append(r.held[:0], same...), other...)
	i := 0
	for ; i < len(r.held); i++ {
		m := r.held[i]
		if m.Epoch == r.pos.Epoch && m.Offset <= r.pos.Offset {
			continue
		}
		if m.Epoch == r.pos.Epoch && m.Offset == r.pos.Offset+1 {
			r.pos, r.posID, r.soft = pos(m), m.MsgID, false
			t.h.HandleMessage(m)
			continue
		}
		break
	}
	r.held = append(r.held[:0], r.held[i:]...)
	return len(r.held) == 0 && !r.overflow
}

// retryDelay spaces out Since calls that failed for a reason other than
// lost history (the engine is down): the room holds its live messages
// meanwhile, up to MaxHeld.
const retryDelay = 100 * time.Millisecond

// repair fills room's gap from history, then hands on what was held.
func (t *Tracker) repair(name string, r *room, skip bool) {
	defer t.wg.Done()
	if skip {
		timer := time.NewTimer(overtakeGrace)
		select {
		case <-timer.C:
		case <-t.ctx.Done():
			timer.Stop()
			return
		}
		r.mu.Lock()
		if !r.gone && t.drainHeld(r) {
			r.repairing = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
	reported := false
	for {
		r.mu.Lock()
		from, fromID, gone := r.pos, r.posID, r.gone
		r.mu.Unlock()
		if gone || t.ctx.Err() != nil {
			return
		}
		ms, cur, err := t.since(t.ctx, name, from, fromID, pageSize)
		if err != nil && !errors.Is(err, broker.ErrUnrecoverable) {
			t.log.Warn("catch-up: history unreadable, retrying", "room", name, "err", err)
			timer := time.NewTimer(retryDelay)
			select {
			case <-timer.C:
			case <-t.ctx.Done():
				timer.Stop()
				return
			}
			continue
		}
		r.mu.Lock()
		if r.gone {
			r.mu.Unlock()
			return
		}
		if err != nil {
			if !reported {
				// Told first, and not under r.mu (the Handler may call
				// back into the engine); then read again.
				reported = true
				r.mu.Unlock()
				t.log.Info("catch-up: gap cannot be filled", "room", name, "from", from, "to", cur, "err", err)
				t.h.HandleGap([]string{name})
				continue
			}
			if cur.Epoch != from.Epoch && cur.Epoch != "" {
				// The history was lost and began again: what the new
				// epoch holds is still to be handed on, from its start.
				// Held messages of other epochs are of the lost history,
				// in the gap just reported; kept, they would never drain
				// and the repair would read the history without end.
				r.pos, r.posID, r.soft = broker.Position{Epoch: cur.Epoch}, "", false
				r.held = slices.DeleteFunc(r.held, func(m *broker.Message) bool { return m.Epoch != cur.Epoch })
				r.mu.Unlock()
				continue
			}
			// Trimmed or expired: hand on what was held, in order.
			r.pos, r.posID, r.soft = broker.Position{Offset: cur.Offset, Epoch: cur.Epoch}, cur.MsgID, false
			for _, m := range r.held {
				t.h.HandleMessage(m)
				if m.Epoch != r.pos.Epoch || m.Offset > r.pos.Offset {
					r.pos, r.posID = pos(m), m.MsgID
				}
			}
			r.held, r.overflow, r.repairing = nil, false, false
			r.mu.Unlock()
			return
		}
		for _, m := range ms {
			if m.Epoch == r.pos.Epoch && m.Offset == r.pos.Offset+1 {
				r.pos, r.posID, r.soft = pos(m), m.MsgID, false
				t.h.HandleMessage(m)
			}
		}
		if len(ms) == pageSize || r.overflow {
			// More to read before the held messages (which history has
			// too, if some were dropped).
			if r.overflow {
				r.held, r.overflow = nil, false
			}
			r.mu.Unlock()
			continue
		}
		// Hand on what was held, in order; a gap among them needs
		// another round.
		if !t.drainHeld(r) {
			r.mu.Unlock()
			continue
		}
		r.held, r.repairing = nil, false
		r.mu.Unlock()
		return
	}
}
