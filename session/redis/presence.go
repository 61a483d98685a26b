package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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
//
// A room hash has a TTL (Config.PresenceRoomTTL, 24h by default), so
// that a room that nobody lists any more does not keep the entries of
// dead nodes for ever. Each Presence counts its own entries by room and
// renews the TTL of the rooms where it has some from KeepAlive, every
// half of the TTL, so a quiet room whose members stay connected for
// days keeps its presence (and the per-user counts that cluster-wide
// connection caps read from the user rooms) without waiting for a join.
// The count costs a map entry per room with local entries (every user
// connected to the node has one: their user room).
type Presence struct {
	prefix  string
	client  rueidis.Client
	own     bool
	roomTTL time.Duration
	store   *Store // the Store it shares connections with (Store.Presence); nil from NewPresence

	mu    sync.Mutex
	rooms map[string]roomEntries // this Presence's entries by room
}

// roomEntries is how many entries a Presence has in a room and when it
// last set the room's TTL (Unix nanoseconds).
type roomEntries struct {
	n       int32
	renewed int64
}

var _ session.Presence = (*Presence)(nil)

// DefaultPresenceRoomTTL is the default Config.PresenceRoomTTL.
const DefaultPresenceRoomTTL = 24 * time.Hour

// renewBatch bounds the commands of one round trip of renewals.
const renewBatch = 512

// NewPresence connects a presence registry with the same configuration as
// a Store.
func NewPresence(cfg Config) (*Presence, error) {
	st, err := New(cfg)
	if err != nil {
		return nil, err
	}
	prefix := strings.TrimSuffix(st.prefix, "session:")
	ttl := cfg.PresenceRoomTTL
	if ttl <= 0 {
		ttl = DefaultPresenceRoomTTL
	}
	return &Presence{prefix: prefix, client: st.client, own: st.own, roomTTL: ttl, rooms: map[string]roomEntries{}}, nil
}

func (p *Presence) roomKey(room string) string { return p.prefix + "presence:{" + room + "}" }
func (p *Presence) nodeKey(node string) string { return p.prefix + "node:" + node }

// Presence returns a presence registry on st's connections (closing it
// leaves them to st), with rooms kept for roomTTL (0:
// DefaultPresenceRoomTTL). Unlike one from NewPresence it is a
// session.Opener: a new connection's session and presence entries go to
// Redis in one round trip, as do a join's, and a resume's with the take
// of what the session carried.
func (st *Store) Presence(roomTTL time.Duration) *Presence {
	if roomTTL <= 0 {
		roomTTL = DefaultPresenceRoomTTL
	}
	return &Presence{prefix: strings.TrimSuffix(st.prefix, "session:"), client: st.client, roomTTL: roomTTL,
		rooms: map[string]roomEntries{}, store: st}
}

var _ session.Opener = (*Presence)(nil)

// OpenStore implements session.Opener: the Store the Presence was made
// from, or nil for one from NewPresence (which has no Store to save to).
func (p *Presence) OpenStore() session.Store {
	if p.store == nil {
		return nil
	}
	return p.store
}

// Open implements session.Opener: Save and an Add for each room in one
// pipeline (on a Cluster, where the session and each room hash may live
// on different nodes: sent at once, a round trip each in parallel).
func (p *Presence) Open(ctx context.Context, s *session.Session, ttl time.Duration, rooms []string, node string) error {
	_, err := p.open(ctx, s, ttl, rooms, node, false)
	return err
}

// Reopen implements session.Opener: Open and TakePending in one
// pipeline, the take after the save. On a Cluster, where the session and
// its pending messages live on different slots, the take waits for the
// save: two round trips.
func (p *Presence) Reopen(ctx context.Context, s *session.Session, ttl time.Duration, rooms []string, node string) ([]session.Pending, error) {
	return p.open(ctx, s, ttl, rooms, node, true)
}

// open is Open, and Reopen when take is set.
func (p *Presence) open(ctx context.Context, s *session.Session, ttl time.Duration, rooms []string, node string, take bool) ([]session.Pending, error) {
	if p.store == nil {
		return nil, errors.New("redis presence: open: no session store (made by NewPresence)")
	}
	save, err := p.store.saveCmds(s, ttl)
	if err != nil {
		return nil, err
	}
	var add rueidis.Commands
	for _, room := range rooms {
		add = append(add, p.addCmds(room, node, s.Conn, s.UserID)...)
	}
	var takeCmds rueidis.Commands
	if take {
		takeCmds = p.store.takeCmds(s.ID)
	}
	var addRes, saveRes, takeRes []rueidis.RedisResult
	if p.client.Mode() == rueidis.ClientModeCluster {
		// A Cluster client refuses a MULTI block and another slot's
		// commands in one DoMulti: the adds go out at once, on their
		// slots' nodes, beside the save and then the take.
		done := make(chan struct{})
		go func() {
			defer close(done)
			if len(add) > 0 {
				addRes = p.client.DoMulti(ctx, add...)
			}
		}()
		saveRes = p.client.DoMulti(ctx, save...)
		if take && saveRes[len(saveRes)-1].Error() == nil {
			takeRes = p.client.DoMulti(ctx, takeCmds...)
		}
		<-done
	} else {
		// One connection: Redis runs them in this order.
		cmds := make(rueidis.Commands, 0, len(add)+len(save)+len(takeCmds))
		cmds = append(append(append(cmds, add...), save...), takeCmds...)
		res := p.client.DoMulti(ctx, cmds...)
		addRes, saveRes, takeRes = res[:len(add)], res[len(add):len(add)+len(save)], res[len(add)+len(save):]
	}
	for _, r := range saveRes {
		if err := r.Error(); err != nil {
			return nil, fmt.Errorf("redis session store: save %s: %w", s.ID, err)
		}
	}
	for i, room := range rooms {
		if err := p.added(room, addRes[2*i:2*i+2]); err != nil {
			return nil, err
		}
	}
	if !take {
		return nil, nil
	}
	return taken(s.ID, takeRes)
}

func (p *Presence) addCmds(room, node, conn, user string) rueidis.Commands {
	key := p.roomKey(room)
	b := p.client.B()
	return rueidis.Commands{
		b.Hset().Key(key).FieldValue().FieldValue(node+"/"+conn, user).Build(),
		b.Pexpire().Key(key).Milliseconds(p.roomTTL.Milliseconds()).Build(),
	}
}

// Add implements session.Presence.
func (p *Presence) Add(ctx context.Context, room, node, conn, user string) error {
	return p.added(room, p.client.DoMulti(ctx, p.addCmds(room, node, conn, user)...))
}

// added counts the entry that addCmds' results res show added.
func (p *Presence) added(room string, res []rueidis.RedisResult) error {
	for _, r := range res {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redis presence: add: %w", err)
		}
	}
	now := time.Now().UnixNano()
	added, _ := res[0].AsInt64() // 0: the entry was there already
	p.mu.Lock()
	e := p.rooms[room]
	e.n += int32(added)
	e.renewed = now
	if e.n > 0 {
		p.rooms[room] = e
	}
	p.mu.Unlock()
	return nil
}

// Remove implements session.Presence.
func (p *Presence) Remove(ctx context.Context, room, node, conn string) error {
	removed, err := p.client.Do(ctx, p.client.B().Hdel().Key(p.roomKey(room)).Field(node+"/"+conn).Build()).AsInt64()
	if err != nil {
		return fmt.Errorf("redis presence: remove: %w", err)
	}
	if removed > 0 {
		p.mu.Lock()
		if e, ok := p.rooms[room]; ok {
			if e.n--; e.n <= 0 {
				delete(p.rooms, room)
			} else {
				p.rooms[room] = e
			}
		}
		p.mu.Unlock()
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
	return p.renewRooms(ctx)
}

// renewRooms renews the TTL of the room hashes where this Presence has
// entries and last did so half a room TTL ago or more.
func (p *Presence) renewRooms(ctx context.Context) error {
	now := time.Now()
	due := now.Add(-p.roomTTL / 2).UnixNano()
	p.mu.Lock()
	var rooms []string
	for room, e := range p.rooms {
		if e.renewed <= due {
			rooms = append(rooms, room)
		}
	}
	p.mu.Unlock()
	ms := p.roomTTL.Milliseconds()
	for len(rooms) > 0 {
		batch := rooms[:min(len(rooms), renewBatch)]
		rooms = rooms[len(batch):]
		cmds := make(rueidis.Commands, 0, len(batch))
		for _, room := range batch {
			cmds = append(cmds, p.client.B().Pexpire().Key(p.roomKey(room)).Milliseconds(ms).Build())
		}
		for _, r := range p.client.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return fmt.Errorf("redis presence: renew room ttl: %w", err)
			}
		}
		p.mu.Lock()
		for _, room := range batch {
			if e, ok := p.rooms[room]; ok {
				e.renewed = now.UnixNano()
				p.rooms[room] = e
			}
		}
		p.mu.Unlock()
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
