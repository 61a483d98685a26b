package memory

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/heraldrt/herald/session"
)

// Presence is the single-node session.Presence: one process, so no leases
// are needed (KeepAlive is a no-op) and a crash takes the data with it.
type Presence struct {
	mu    sync.Mutex
	rooms map[string]presenceRoom
}

// presenceRoom holds a room's connections: a short slice while the room is
// small (every connection's own user room has one), a map past
// presenceSliceMax. Most rooms are small, and a map costs several hundred
// bytes even for one entry.
type presenceRoom struct {
	few  []presenceEntry
	many map[presenceKey]string // → user
}

type presenceKey struct{ node, conn string }

type presenceEntry struct {
	presenceKey
	user string
}

const presenceSliceMax = 8

var _ session.Presence = (*Presence)(nil)

// NewPresence returns an empty presence registry.
func NewPresence() *Presence { return &Presence{rooms: map[string]presenceRoom{}} }

// Add implements session.Presence.
func (p *Presence) Add(_ context.Context, room, node, conn, user string) error {
	k := presenceKey{node, conn}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rooms[room]
	switch {
	case r.many != nil:
		r.many[k] = user
	default:
		for i := range r.few {
			if r.few[i].presenceKey == k {
				r.few[i].user = user
				return nil
			}
		}
		if len(r.few) < presenceSliceMax {
			r.few = append(r.few, presenceEntry{k, user})
			break
		}
		r.many = make(map[presenceKey]string, 2*presenceSliceMax)
		for _, e := range r.few {
			r.many[e.presenceKey] = e.user
		}
		r.many[k] = user
		r.few = nil
	}
	p.rooms[room] = r
	return nil
}

// Remove implements session.Presence.
func (p *Presence) Remove(_ context.Context, room, node, conn string) error {
	k := presenceKey{node, conn}
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.rooms[room]
	if !ok {
		return nil
	}
	if r.many != nil {
		delete(r.many, k)
		if len(r.many) == 0 {
			delete(p.rooms, room)
		}
		return nil
	}
	for i := range r.few {
		if r.few[i].presenceKey == k {
			last := len(r.few) - 1
			r.few[i] = r.few[last]
			r.few[last] = presenceEntry{}
			r.few = r.few[:last]
			break
		}
	}
	if len(r.few) == 0 {
		delete(p.rooms, room)
	} else {
		p.rooms[room] = r
	}
	return nil
}

// List implements session.Presence.
func (p *Presence) List(_ context.Context, room string) ([]session.PresenceEntry, error) {
	p.mu.Lock()
	counts := map[string]int{}
	r := p.rooms[room]
	for _, e := range r.few {
		counts[e.user]++
	}
	for _, user := range r.many {
		counts[user]++
	}
	p.mu.Unlock()
	return Entries(counts), nil
}

// Entries turns per-user connection counts into a sorted list; engines
// share it.
func Entries(counts map[string]int) []session.PresenceEntry {
	out := make([]session.PresenceEntry, 0, len(counts))
	for u, n := range counts {
		out = append(out, session.PresenceEntry{User: u, Connections: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out
}

// KeepAlive implements session.Presence; a single node needs no lease.
func (p *Presence) KeepAlive(context.Context, string, time.Duration) error { return nil }

// Close implements session.Presence.
func (p *Presence) Close() error { return nil }
