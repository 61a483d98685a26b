package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/heraldrt/herald/session"
	"github.com/heraldrt/herald/session/memory"
)

// Presence is a Redis-backed session.Presence.
//
// Each room is one hash, <prefix>:presence:{<room>}, whose fields are
// "<node>/<conn>" and values the user; each node holds a lease key,
// <prefix>:node:<node>, that KeepAlive renews with a TTL. List reads the
// room's hash and counts only entries of nodes whose lease is alive, and
// deletes the entries of dead nodes as it goes, so a SIGKILLed node's
// connections disappear from presence as soon as its lease lapses.
//
// Cost: Add and Remove are one HSET (+PEXPIRE) or HDEL; List is one HGETALL
// plus one EXISTS per distinct node in the room (pipelined).
type Presence struct {
	prefix string
	client rueidis.Client
	own    bool
}

var _ session.Presence = (*Presence)(nil)

// presenceRoomTTL bounds how long a room hash nobody lists can keep dead
// nodes' entries.
const presenceRoomTTL = 24 * time.Hour

// NewPresence connects a presence registry with the same configuration as
// a Store.
func NewPresence(cfg Config) (*Presence, error) {
	st, err := New(cfg)
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(st.prefix, "session:")
	return &Presence{prefix: prefix, client: st.client, own: true}, nil
}

func (p *Presence) roomKey(room string) string { return p.prefix + "presence:{" + room + "}" }
func (p *Presence) nodeKey(node string) string { return p.prefix + "node:" + node }

// Add implements session.Presence.
func (p *Presence) Add(ctx context.Context, room, node, conn, user string) error {
	key := p.roomKey(room)
	b := p.client.B()
	for _, r := range p.client.DoMulti(ctx,
		b.Hset().Key(key).FieldValue().FieldValue(node+"/"+conn, user).Build(),
		b.Pexpire().Key(key).Milliseconds(presenceRoomTTL.Milliseconds()).Build(),
	) {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redis presence: add: %w", err)
		}
	}
	return nil
}

// Remove implements session.Presence.
func (p *Presence) Remove(ctx context.Context, room, node, conn string) error {
	if err := p.client.Do(ctx, p.client.B().Hdel().Key(p.roomKey(room)).Field(node+"/"+conn).Build()).Error(); err != nil {
		return fmt.Errorf("redis presence: remove: %w", err)
	}
	return nil
}

// List implements session.Presence.
func (p *Presence) List(ctx context.Context, room string) ([]session.PresenceEntry, error) {
	key := p.roomKey(room)
	fields, err := p.client.Do(ctx, p.client.B().Hgetall().Key(key).Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("redis presence: list: %w", err)
	}
	nodes := map[string]bool{}
	for f := range fields {
		node, _, _ := strings.Cut(f, "/")
		nodes[node] = false
	}
	names := make([]string, 0, len(nodes))
	cmds := make(rueidis.Commands, 0, len(nodes))
	for n := range nodes {
		names = append(names, n)
		cmds = append(cmds, p.client.B().Exists().Key(p.nodeKey(n)).Build())
	}
	for i, r := range p.client.DoMulti(ctx, cmds...) {
		alive, err := r.AsInt64()
		if err != nil {
			return nil, fmt.Errorf("redis presence: lease: %w", err)
		}
		nodes[names[i]] = alive == 1
	}
	counts := map[string]int{}
	var dead []string
	for f, user := range fields {
		node, _, _ := strings.Cut(f, "/")
		if nodes[node] {
			counts[user]++
		} else {
			dead = append(dead, f)
		}
	}
	if len(dead) > 0 {
		// Best effort: a failure here only delays the cleanup.
		_ = p.client.Do(ctx, p.client.B().Hdel().Key(key).Field(dead...).Build()).Error()
	}
	return memory.Entries(counts), nil
}

// KeepAlive implements session.Presence.
func (p *Presence) KeepAlive(ctx context.Context, node string, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("redis presence: lease ttl must be positive")
	}
	err := p.client.Do(ctx, p.client.B().Set().Key(p.nodeKey(node)).Value("1").Px(ttl).Build()).Error()
	if err != nil {
		return fmt.Errorf("redis presence: keepalive: %w", err)
	}
	return nil
}

// Close implements session.Presence.
func (p *Presence) Close() error {
	if p.own {
		p.client.Close()
	}
	return nil
}
