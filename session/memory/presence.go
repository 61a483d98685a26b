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
	rooms map[string]map[string]string // room → node/conn → user
}

var _ session.Presence = (*Presence)(nil)

// NewPresence returns an empty presence registry.
func NewPresence() *Presence { return &Presence{rooms: map[string]map[string]string{}} }

// Add implements session.Presence.
func (p *Presence) Add(_ context.Context, room, node, conn, user string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.rooms[room]
	if m == nil {
		m = map[string]string{}
		p.rooms[room] = m
	}
	m[node+"/"+conn] = user
	return nil
}

// Remove implements session.Presence.
func (p *Presence) Remove(_ context.Context, room, node, conn string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.rooms[room]; m != nil {
		delete(m, node+"/"+conn)
		if len(m) == 0 {
			delete(p.rooms, room)
		}
	}
	return nil
}

// List implements session.Presence.
func (p *Presence) List(_ context.Context, room string) ([]session.PresenceEntry, error) {
	p.mu.Lock()
	counts := map[string]int{}
	for _, user := range p.rooms[room] {
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
