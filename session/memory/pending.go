package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/heraldrt/herald/session"
)

var _ session.PendingStore = (*Store)(nil)

// DefaultMaxPendingBytes bounds the pending messages a Store holds for
// all its sessions together, unless LimitPending sets another bound.
const DefaultMaxPendingBytes = 256 << 20

// ErrPendingFull is returned by AddPending when the messages would take
// the store over its bound (LimitPending): they are not stored, and the
// session records that their rooms lost messages (session.Pending.Lost).
var ErrPendingFull = errors.New("memory: pending messages at the store's bound")

// pendingEntry is a session's pending messages (see session.PendingStore).
type pendingEntry struct {
	msgs    []session.Pending
	bytes   int64 // pendingSize of msgs
	expires int64 // Unix nanoseconds
	// lost counts, by room, the messages the store dropped from this
	// session to stay within its bounds ("" for all rooms: once more than
	// maxLossRooms rooms lost some, or one of its messages without a room
	// was lost, the rest is counted there): TakePending returns them as loss
	// records (session.Pending.Lost) before the messages. At most
	// maxLossRooms short entries, not counted in pendingBytes.
	lost map[string]int
}

// maxLossRooms is how many rooms a session's loss records name before
// they become one record for all its rooms, so that they stay few.
const maxLossRooms = 64

// recordLoss counts msgs as lost by e.
func (e *pendingEntry) recordLoss(msgs []session.Pending) {
	if len(msgs) == 0 {
		return
	}
	if e.lost == nil {
		e.lost = make(map[string]int)
	}
	for _, m := range msgs {
		e.lost[m.Room]++
	}
	// A record for all rooms covers every other.
	if _, all := e.lost[""]; (all && len(e.lost) > 1) || len(e.lost) > maxLossRooms {
		all := 0
		for _, n := range e.lost {
			all += n
		}
		clear(e.lost)
		e.lost[""] = all
	}
}

// pendingSize is what a pending message holds in the store.
func pendingSize(m session.Pending) int64 { return int64(len(m.MsgID) + len(m.Frame)) }

// LimitPending bounds the bytes of the pending messages the store holds
// for all sessions together (message ids and frames): AddPending refuses,
// with ErrPendingFull, messages that would take it over maxBytes. The
// messages of a connection that ends stay here until a connection takes
// them or the session expires; without a bound, clients that leave
// unacknowledged messages behind and come back as new sessions would
// grow the store without end. Default DefaultMaxPendingBytes; maxBytes
// <= 0 restores it.
func (st *Store) LimitPending(maxBytes int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.maxPendingBytes = maxBytes
}

// PendingBytes returns the bytes of the pending messages the store holds
// (LimitPending).
func (st *Store) PendingBytes() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pendingBytes
}

// AddPending implements session.PendingStore. It keeps at most max
// messages per session (the newest), returning a *session.PendingDropped
// when it drops older ones, and refuses, with ErrPendingFull, messages
// that would take the store over its bound (LimitPending). Either way the
// session keeps a record of each room's loss, which TakePending returns
// (session.Pending.Lost), so the connection that resumes it can tell its
// client.
func (st *Store) AddPending(_ context.Context, id string, msgs []session.Pending, max int, ttl time.Duration) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pending == nil {
		st.pending = make(map[string]*pendingEntry)
	}
	limit := st.maxPendingBytes
	if limit <= 0 {
		limit = DefaultMaxPendingBytes
	}
	var add int64
	for _, m := range msgs {
		add += pendingSize(m)
	}
	e := st.pending[id]
	if e != nil && st.now().UnixNano() > e.expires {
		st.dropPendingLocked(id, e)
		e = nil
	}
	if e == nil {
		e = &pendingEntry{}
		st.pending[id] = e
	}
	e.expires = st.now().Add(ttl).UnixNano()
	if st.pendingBytes+add > limit {
		e.recordLoss(msgs)
		return fmt.Errorf("%w: %d bytes held, %d more, bound %d", ErrPendingFull, st.pendingBytes, add, limit)
	}
	for _, m := range msgs {
		e.msgs = append(e.msgs, session.Pending{MsgID: m.MsgID, Frame: slices.Clone(m.Frame), Room: m.Room})
	}
	e.bytes += add
	st.pendingBytes += add
	if max > 0 && len(e.msgs) > max {
		old := e.msgs[:len(e.msgs)-max]
		for _, m := range old {
			e.bytes -= pendingSize(m)
			st.pendingBytes -= pendingSize(m)
		}
		e.recordLoss(old)
		e.msgs = slices.Clone(e.msgs[len(e.msgs)-max:])
		return &session.PendingDropped{Messages: len(old)}
	}
	return nil
}

// dropPendingLocked forgets session id's pending messages e. st.mu must
// be held.
func (st *Store) dropPendingLocked(id string, e *pendingEntry) {
	delete(st.pending, id)
	st.pendingBytes -= e.bytes
}

// TakePending implements session.PendingStore. Among the messages come
// the session's loss records (session.Pending.Lost), first.
func (st *Store) TakePending(_ context.Context, id string) ([]session.Pending, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.pending[id]
	if e == nil {
		return nil, nil
	}
	st.dropPendingLocked(id, e)
	if st.now().UnixNano() > e.expires {
		return nil, nil
	}
	if len(e.lost) == 0 {
		return e.msgs, nil
	}
	out := make([]session.Pending, 0, len(e.lost)+len(e.msgs))
	for room, n := range e.lost {
		out = append(out, session.Pending{Room: room, Lost: n})
	}
	slices.SortFunc(out, func(a, b session.Pending) int { return strings.Compare(a.Room, b.Room) })
	return append(out, e.msgs...), nil
}

// sweepPendingLocked drops expired pending messages. st.mu must be held.
func (st *Store) sweepPendingLocked(now int64) {
	for id, e := range st.pending {
		if now > e.expires {
			st.dropPendingLocked(id, e)
		}
	}
}
