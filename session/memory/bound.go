package memory

// DefaultMaxSessionBytes bounds the sessions a Store holds, unless
// LimitSessions sets another bound.
const DefaultMaxSessionBytes = 256 << 20

// sessionOverhead is what a session costs besides its strings: the
// entry, the map's slot and its share of the empty ones, a room list's
// string headers counted apart.
const sessionOverhead = 160

// evictSample is how many sessions an eviction looks at to pick one.
const evictSample = 16

// LimitSessions bounds the bytes of the sessions the store holds (their
// ids, users, tokens and room names, and a fixed overhead each), which
// include those of ended connections kept for their resume until their
// TTL: a client that joins 128 rooms of long names and drops its
// connection, over and over, leaves 35 KB each, and nothing else bounds
// how many. A Save that takes the store over the bound first forgets
// other sessions, expired ones first, then, of a sample of 16, the one
// closest to its expiry (a live connection's session is refreshed, so
// an ended one's comes first); a client that comes back for such a
// session starts a new one. onEvict, if not nil, runs for each (with the
// store's lock held: it must not call the store). Default
// DefaultMaxSessionBytes; maxBytes <= 0 keeps the current bound.
func (st *Store) LimitSessions(maxBytes int64, onEvict func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if maxBytes > 0 {
		st.maxSessionBytes = maxBytes
	}
	st.onEvict = onEvict
}

// SessionBytes returns the bytes the stored sessions count against
// LimitSessions' bound, expired ones not yet swept included.
func (st *Store) SessionBytes() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.sessionBytes
}

// cost is what session id with e counts in sessionBytes.
func (e *entry) cost(id string) int64 {
	n := sessionOverhead + len(id) + len(e.user) + len(e.conn) + len(e.resumeToken) + 16*len(e.rooms)
	for _, r := range e.rooms {
		n += len(r)
	}
	return int64(n)
}

// evictLocked forgets sessions other than keep until the store is within
// its bound or holds keep alone. st.mu must be held.
func (st *Store) evictLocked(keep string, now int64) {
	limit := st.maxSessionBytes
	if limit <= 0 {
		limit = DefaultMaxSessionBytes
	}
	for st.sessionBytes > limit && len(st.sessions) > 1 {
		var victim string
		var soonest int64
		seen := 0
		for id, e := range st.sessions { // Go starts a map's range at random
			if id == keep {
				continue
			}
			if victim == "" || e.expires < soonest {
				victim, soonest = id, e.expires
			}
			if seen++; seen == evictSample || soonest < now {
				break
			}
		}
		if victim == "" {
			return
		}
		st.deleteLocked(victim)
		if p := st.pending[victim]; p != nil {
			st.dropPendingLocked(victim, p)
		}
		if st.onEvict != nil {
			st.onEvict()
		}
	}
}
