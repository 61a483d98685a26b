// Package memory is the single-node session.Store. Expired sessions are
// invisible at once and reclaimed by a janitor goroutine that Close stops.
package memory

import (
	"context"
	"crypto/subtle"
	"slices"
	"sync"
	"time"

	"github.com/heraldrt/herald/session"
)

// Store is an in-memory session store. Create it with New.
type Store struct {
	mu       sync.Mutex
	sessions map[string]*entry
	// node is the node of the first session saved: on one node, every
	// session's. Sessions of another node have theirs in nodes, by id,
	// so that an entry need not hold a node of its own.
	node  string
	nodes map[string]string
	// pending holds sessions' pending messages (see pending.go); nil
	// until the first.
	pending map[string]*pendingEntry
	// pendingBytes is what pending holds; maxPendingBytes its bound
	// (LimitPending; 0: DefaultMaxPendingBytes).
	pendingBytes, maxPendingBytes int64
	// sessionBytes is what sessions hold (entry.cost); maxSessionBytes
	// its bound (LimitSessions; 0: DefaultMaxSessionBytes).
	sessionBytes, maxSessionBytes int64
	onEvict                       func()
	now                           func() time.Time

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// entry is a session as kept here: the id is the map key, the node is
// the Store's (see Store.node) and the times are Unix nanoseconds (0 for
// the zero time), 96 bytes (112 with the node). The single-node default
// keeps one per connection, behind a pointer: a map's slots are sized for
// their values and about 40 % of them stand empty on average (groups fill to
// 7/8, then the table doubles). Measured with 7,000 to 20,000 sessions of
// one room each: 210-239 bytes per session with the entry in the slot,
// 158-172 with a pointer there; with 10,000, 168 with a 112-byte entry,
// 152 with this one, 136 with the room list kept rather than copied.
type entry struct {
	user, conn, resumeToken        string
	rooms                          []string
	connectedAt, lastSeen, expires int64
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func (e *entry) session(id, node string) *session.Session {
	return &session.Session{
		ID: id, UserID: e.user, Node: node, Conn: e.conn, ResumeToken: e.resumeToken,
		Rooms:       slices.Clone(e.rooms),
		ConnectedAt: fromUnixNano(e.connectedAt), LastSeen: fromUnixNano(e.lastSeen),
	}
}

var (
	_ session.Store       = (*Store)(nil)
	_ session.ConnDeleter = (*Store)(nil)
)

// New returns a store whose janitor sweeps expired sessions every interval
// (default one minute when interval <= 0).
func New(interval time.Duration) *Store {
	if interval <= 0 {
		interval = time.Minute
	}
	st := &Store{
		sessions: make(map[string]*entry),
		nodes:    make(map[string]string),
		now:      time.Now,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	go st.janitor(interval)
	return st
}

func (st *Store) janitor(interval time.Duration) {
	defer close(st.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
			now := st.now().UnixNano()
			st.mu.Lock()
			for id, e := range st.sessions {
				if now > e.expires {
					st.deleteLocked(id)
				}
			}
			st.sweepPendingLocked(now)
			st.mu.Unlock()
		}
	}
}

// Save implements session.Store.
func (st *Store) Save(_ context.Context, s *session.Session, ttl time.Duration) error {
	e := entry{
		user: s.UserID, conn: s.Conn, resumeToken: s.ResumeToken,
		rooms:       s.Rooms, // kept, not copied: see session.Store.Save
		connectedAt: unixNano(s.ConnectedAt), lastSeen: unixNano(s.LastSeen),
		expires: st.now().Add(ttl).UnixNano(),
	}
	st.mu.Lock()
	if old := st.sessions[s.ID]; old != nil {
		st.sessionBytes -= old.cost(s.ID)
		*old = e
	} else {
		st.sessions[s.ID] = &e
	}
	st.sessionBytes += e.cost(s.ID)
	st.evictLocked(s.ID, e.expires-int64(ttl))
	if len(st.sessions) == 1 && len(st.nodes) == 0 {
		st.node = s.Node // the first session, or the only one left
	}
	if s.Node == st.node {
		delete(st.nodes, s.ID)
	} else {
		st.nodes[s.ID] = s.Node
	}
	st.mu.Unlock()
	return nil
}

// nodeLocked returns the node of session id. st.mu must be held.
func (st *Store) nodeLocked(id string) string {
	if n, ok := st.nodes[id]; ok {
		return n
	}
	return st.node
}

// deleteLocked forgets session id. st.mu must be held.
func (st *Store) deleteLocked(id string) {
	if e := st.sessions[id]; e != nil {
		st.sessionBytes -= e.cost(id)
	}
	delete(st.sessions, id)
	delete(st.nodes, id)
}

// Get implements session.Store.
func (st *Store) Get(_ context.Context, id string) (*session.Session, error) {
	now := st.now().UnixNano()
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.sessions[id]
	if e == nil || now > e.expires {
		return nil, session.ErrNotFound
	}
	return e.session(id, st.nodeLocked(id)), nil
}

// Touch implements session.Store.
func (st *Store) Touch(_ context.Context, id string, lastSeen time.Time, ttl time.Duration) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.sessions[id]
	now := st.now()
	if e == nil || now.UnixNano() > e.expires {
		return session.ErrNotFound
	}
	e.lastSeen = unixNano(lastSeen)
	e.expires = now.Add(ttl).UnixNano()
	return nil
}

// Resume implements session.Store.
func (st *Store) Resume(_ context.Context, id, user, token, next string) (*session.Session, error) {
	now := st.now().UnixNano()
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.sessions[id]
	if e == nil || now > e.expires {
		return nil, session.ErrNotFound
	}
	if subtle.ConstantTimeCompare([]byte(e.resumeToken), []byte(token)) != 1 || e.user != user {
		return nil, session.ErrMismatch
	}
	st.sessionBytes += int64(len(next) - len(e.resumeToken))
	e.resumeToken = next
	return e.session(id, st.nodeLocked(id)), nil
}

// Delete implements session.Store.
func (st *Store) Delete(_ context.Context, id string) error {
	st.mu.Lock()
	st.deleteLocked(id)
	if e := st.pending[id]; e != nil {
		st.dropPendingLocked(id, e) // its pending messages go with it
	}
	st.mu.Unlock()
	return nil
}

// DeleteConn implements session.ConnDeleter: Delete, if the session
// exists and is conn's.
func (st *Store) DeleteConn(_ context.Context, id, conn string) (bool, error) {
	now := st.now().UnixNano()
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.sessions[id]
	if e == nil || now > e.expires || e.conn != conn {
		return false, nil
	}
	st.deleteLocked(id)
	if p := st.pending[id]; p != nil {
		st.dropPendingLocked(id, p)
	}
	return true, nil
}

// Len returns the number of stored sessions, expired or not yet swept.
func (st *Store) Len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.sessions)
}

// Close stops the janitor and waits for it.
func (st *Store) Close() error {
	st.once.Do(func() { close(st.stop) })
	<-st.done
	return nil
}
