package memory

import (
	"context"
	"slices"
	"time"

	"github.com/heraldrt/herald/session"
)

var _ session.PendingStore = (*Store)(nil)

// pendingEntry is a session's pending messages (see session.PendingStore).
type pendingEntry struct {
	msgs    []session.Pending
	expires int64 // Unix nanoseconds
}

// AddPending implements session.PendingStore.
func (st *Store) AddPending(_ context.Context, id string, msgs []session.Pending, max int, ttl time.Duration) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pending == nil {
		st.pending = make(map[string]*pendingEntry)
	}
	e := st.pending[id]
	if e == nil || st.now().UnixNano() > e.expires {
		e = &pendingEntry{}
		st.pending[id] = e
	}
	for _, m := range msgs {
		e.msgs = append(e.msgs, session.Pending{MsgID: m.MsgID, Frame: slices.Clone(m.Frame)})
	}
	if max > 0 && len(e.msgs) > max {
		e.msgs = slices.Clone(e.msgs[len(e.msgs)-max:])
	}
	e.expires = st.now().Add(ttl).UnixNano()
	return nil
}

// TakePending implements session.PendingStore.
func (st *Store) TakePending(_ context.Context, id string) ([]session.Pending, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.pending[id]
	delete(st.pending, id)
	if e == nil || st.now().UnixNano() > e.expires {
		return nil, nil
	}
	return e.msgs, nil
}

// sweepPendingLocked drops expired pending messages. st.mu must be held.
func (st *Store) sweepPendingLocked(now int64) {
	for id, e := range st.pending {
		if now > e.expires {
			delete(st.pending, id)
		}
	}
}
