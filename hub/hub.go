package hub

import (
	"context"
	"errors"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
)

const numShards = 64

// prefetchSink keeps the prefetch reads observable.
var prefetchSink atomic.Int64

// Member is a local recipient of room messages, typically one connection.
type Member interface {
	// Deliver queues d for sending without blocking. A member that cannot
	// keep up handles that itself (it disconnects as a slow consumer).
	Deliver(d *Delivery)
}

// Sender queues a prepared frame to one connection without blocking;
// *transport.Conn is one.
type Sender interface {
	Send(p *transport.Prepared) error
}

// DirectMember is a Member whose messages that ask for no acknowledgement
// need none of its own logic: the hub queues their frame, in the member's
// codec, straight to its Sender. A broadcast then touches only the
// connection it writes to, not the member's own state, which matters
// when one message goes to thousands of members. Direct is called once,
// at Join.
type DirectMember interface {
	Member
	Direct() (Sender, Codec)
}

// Prefetcher is an optional Sender method: Prefetch reads the state Send
// will need, so that the hub can bring the next few members' state into
// the CPU cache together rather than waiting for each in turn. The
// returned value is meaningless; it keeps the read from being optimised
// away. *transport.Conn implements it.
type Prefetcher interface {
	Prefetch() int
}

// entry is what a room holds for a member: its direct path, if any.
// Whether send is a Prefetcher is asked at each fan-out (a type
// assertion with a per-site cache) rather than kept, which would add 16
// bytes to every membership of every connection.
type entry struct {
	send  Sender
	codec Codec
}

// prefetchWindow is how many members' state is requested at once.
const prefetchWindow = 8

// Config configures a Hub.
type Config struct {
	// Broker carries publications between nodes. Required.
	Broker broker.Broker
	// CompressionThreshold and CompressionLevel are passed to every prepared
	// frame (see transport.NewPrepared).
	CompressionThreshold int
	CompressionLevel     int
	// OnFanout, if set, is called after each local fan-out that reached at
	// least one member, with the delivery, the number of members reached and
	// how long queuing took.
	OnFanout func(d *Delivery, members int, took time.Duration)
	// OnControl, if set, receives cluster-wide control messages.
	OnControl func(c *broker.Control)
	// OnGap, if set, receives the rooms of which this node may have missed
	// messages that history cannot give back (see broker.Handler).
	OnGap func(rooms []string)
	// OnControlGap, if set, is called when this node may have missed
	// control messages (see broker.ControlGapHandler). It must not block.
	OnControlGap func()
}

// ErrNotMember is returned by Leave for a member that is not in the room.
var ErrNotMember = errors.New("hub: not a member of the room")

// Hub is a node's room registry. Create it with New.
type Hub struct {
	cfg    Config
	seed   maphash.Seed
	shards [numShards]shard
	// subMu serialises interest changes per room (by the same hash as the
	// shards), so Subscribe/Unsubscribe calls for one room never race.
	subMu [numShards]sync.Mutex
}

type shard struct {
	mu    sync.RWMutex
	rooms map[string]*memberSet
	// User rooms ("user:<id>", one per connection) are kept by user id
	// rather than as rooms: the key is the id string the member already
	// holds, and a user with one local connection (the usual case) costs
	// one map slot instead of a room name, a member set and its slice.
	// A user with several local connections has them in usersMany
	// instead of users; never in both.
	users     map[string]Member
	usersMany map[string][]Member
}

// memberSet is a room's local members: a slice, which fan-out walks, and
// which Join and Leave scan to find a member. Past smallRoom members an
// index keeps them O(1).
type memberSet struct {
	members []roomMember
	index   map[Member]int // position in members; nil while small
}

type roomMember struct {
	m Member
	e entry
}

// smallRoom is the size past which a room gets an index. The index adds
// ≈ 33 B per member to the slice's ≈ 81 (TestRoomMembershipCost);
// without it a leave and a join in a room of 256 take 1–2 µs together
// against ≈ 0.2 µs (BenchmarkLeaveJoin), in one of 1,024 ≈ 4.5 µs.
const smallRoom = 256

func (r *memberSet) find(m Member) int {
	if r.index != nil {
		if i, ok := r.index[m]; ok {
			return i
		}
		return -1
	}
	for i := range r.members {
		if r.members[i].m == m {
			return i
		}
	}
	return -1
}

func (r *memberSet) add(m Member, e entry) {
	r.members = append(r.members, roomMember{m, e})
	switch {
	case r.index != nil:
		r.index[m] = len(r.members) - 1
	case len(r.members) > smallRoom:
		r.index = make(map[Member]int, len(r.members))
		for i, rm := range r.members {
			r.index[rm.m] = i
		}
	}
}

// remove takes out the member at i; the last member moves into its place.
func (r *memberSet) remove(i int) {
	last := len(r.members) - 1
	if r.index != nil {
		delete(r.index, r.members[i].m)
		if i != last {
			r.index[r.members[last].m] = i
		}
	}
	r.members[i] = r.members[last]
	r.members[last] = roomMember{}
	r.members = r.members[:last]
	if r.index != nil && len(r.members) <= smallRoom/2 {
		r.index = nil
	}
}

// New returns a Hub. Call it before Broker.Start and pass the Hub as the
// broker's Handler.
func New(cfg Config) *Hub {
	h := &Hub{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].rooms = make(map[string]*memberSet)
		h.shards[i].users = make(map[string]Member)
		h.shards[i].usersMany = make(map[string][]Member)
	}
	return h
}

func (h *Hub) index(room string) int {
	return int(maphash.String(h.seed, room) % numShards)
}

// userOf returns the user id of a user room, and whether room is one.
func userOf(room string) (string, bool) { return protocol.UserOfRoom(room) }

// Join adds m to room, subscribing the node to the room first if m is its
// first local member (user rooms need no subscription; see JoinUser). It
// reports false if m was already a member.
func (h *Hub) Join(ctx context.Context, room string, m Member) (bool, error) {
	return h.join(ctx, room, m, true)
}

// JoinIndirect is Join for a member that must see every message of room
// in its Deliver, never on the direct path (see DirectMember): a
// connection that replays the room's history holds live messages back
// until the replay is done, and drops those the replay already sent.
func (h *Hub) JoinIndirect(ctx context.Context, room string, m Member) (bool, error) {
	return h.join(ctx, room, m, false)
}

func (h *Hub) join(ctx context.Context, room string, m Member, direct bool) (bool, error) {
	if user, ok := userOf(room); ok {
		return h.JoinUser(user, m), nil
	}
	i := h.index(room)
	h.subMu[i].Lock()
	defer h.subMu[i].Unlock()
	s := &h.shards[i]

	s.mu.RLock()
	r, exists := s.rooms[room]
	already := exists && r.find(m) >= 0
	s.mu.RUnlock()
	if already {
		return false, nil
	}
	if !exists {
		if err := h.cfg.Broker.Subscribe(ctx, room); err != nil {
			return false, err
		}
	}
	var e entry
	if dm, ok := m.(DirectMember); ok && direct {
		e.send, e.codec = dm.Direct()
	}
	s.mu.Lock()
	if r = s.rooms[room]; r == nil {
		r = &memberSet{}
		s.rooms[room] = r
	}
	r.add(m, e)
	s.mu.Unlock()
	return true, nil
}

// JoinUser adds m to the user room of user (protocol.UserRoomPrefix + user)
// and reports false if m was already in it. Every node receives every
// user room's messages without subscribing (see package broker), so this
// never calls the broker. The hub keeps user as a map key: pass the
// string the member holds anyway rather than one built for the call.
func (h *Hub) JoinUser(user string, m Member) bool {
	s := &h.shards[h.index(user)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if many, ok := s.usersMany[user]; ok {
		if slices.Contains(many, m) {
			return false
		}
		s.usersMany[user] = append(many, m)
		return true
	}
	one, ok := s.users[user]
	switch {
	case !ok:
		s.users[user] = m
	case one == m:
		return false
	default:
		delete(s.users, user)
		s.usersMany[user] = []Member{one, m}
	}
	return true
}

// LeaveUser removes m from the user room of user, or returns ErrNotMember.
func (h *Hub) LeaveUser(user string, m Member) error {
	s := &h.shards[h.index(user)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if one, ok := s.users[user]; ok {
		if one != m {
			return ErrNotMember
		}
		delete(s.users, user)
		return nil
	}
	many := s.usersMany[user]
	i := slices.Index(many, m)
	if i < 0 {
		return ErrNotMember
	}
	many = slices.Delete(many, i, i+1)
	if len(many) == 1 {
		delete(s.usersMany, user)
		s.users[user] = many[0]
	} else {
		s.usersMany[user] = many
	}
	return nil
}

// Leave removes m from room and unsubscribes the node when the room has no
// local member left. The member is removed even if unsubscribing fails.
func (h *Hub) Leave(ctx context.Context, room string, m Member) error {
	if user, ok := userOf(room); ok {
		return h.LeaveUser(user, m)
	}
	i := h.index(room)
	h.subMu[i].Lock()
	defer h.subMu[i].Unlock()
	s := &h.shards[i]

	s.mu.Lock()
	r := s.rooms[room]
	at := -1
	if r != nil {
		at = r.find(m)
	}
	if at < 0 {
		s.mu.Unlock()
		return ErrNotMember
	}
	r.remove(at)
	empty := len(r.members) == 0
	if empty {
		delete(s.rooms, room)
	}
	s.mu.Unlock()
	if empty {
		return h.cfg.Broker.Unsubscribe(ctx, room)
	}
	return nil
}

// Publish hands m to the broker, which delivers it to every node with
// members in m.Room (this one included). An error means nobody got it.
func (h *Hub) Publish(ctx context.Context, m *broker.Message) error {
	return h.cfg.Broker.Publish(ctx, m)
}

// HandleMessage implements broker.Handler: it queues m to every local
// member of its room, encoding it at most once per codec.
func (h *Hub) HandleMessage(m *broker.Message) {
	start := time.Now()
	d := &Delivery{Msg: m, threshold: h.cfg.CompressionThreshold, level: h.cfg.CompressionLevel}
	if user, ok := userOf(m.Room); ok {
		h.deliverUser(user, d, start)
		return
	}
	s := &h.shards[h.index(m.Room)]
	s.mu.RLock()
	var members []roomMember
	if r := s.rooms[m.Room]; r != nil {
		members = r.members
	}
	n := len(members)
	// Direct members go out in windows: first every member's state is
	// requested, so the cache misses overlap, then each is sent to.
	var window [prefetchWindow]entry
	w, sink := 0, 0
	sendWindow := func() {
		for i := range window[:w] {
			if pf, ok := window[i].send.(Prefetcher); ok {
				sink += pf.Prefetch()
			}
		}
		for i := range window[:w] {
			_ = window[i].send.Send(d.Frame(window[i].codec)) // a slow consumer closes itself
			window[i] = entry{}
		}
		w = 0
	}
	direct := !m.Ack
	for i := range members {
		if e := members[i].e; direct && e.send != nil {
			window[w] = e
			if w++; w == prefetchWindow {
				sendWindow()
			}
			continue
		}
		members[i].m.Deliver(d)
	}
	sendWindow()
	prefetchSink.Store(int64(sink))
	s.mu.RUnlock()
	if h.cfg.OnFanout != nil && n > 0 {
		h.cfg.OnFanout(d, n, time.Since(start))
	}
}

// deliverUser queues d to the local connections of user. A user has a
// few at most, so they go through Deliver rather than the direct path.
func (h *Hub) deliverUser(user string, d *Delivery, start time.Time) {
	n := h.userMembers(user, func(m Member) { m.Deliver(d) })
	if h.cfg.OnFanout != nil && n > 0 {
		h.cfg.OnFanout(d, n, time.Since(start))
	}
}

// userMembers calls f for each local member of user's room, under the
// shard's read lock, and returns how many there are.
func (h *Hub) userMembers(user string, f func(Member)) int {
	s := &h.shards[h.index(user)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if one, ok := s.users[user]; ok {
		if f != nil {
			f(one)
		}
		return 1
	}
	many := s.usersMany[user]
	if f != nil {
		for _, m := range many {
			f(m)
		}
	}
	return len(many)
}

// HandleControl implements broker.Handler.
func (h *Hub) HandleControl(c *broker.Control) {
	if h.cfg.OnControl != nil {
		h.cfg.OnControl(c)
	}
}

// HandleGap implements broker.Handler: it passes rooms to Config.OnGap.
func (h *Hub) HandleGap(rooms []string) {
	if h.cfg.OnGap != nil {
		h.cfg.OnGap(rooms)
	}
}

// HandleControlGap implements broker.ControlGapHandler: it calls
// Config.OnControlGap.
func (h *Hub) HandleControlGap() {
	if h.cfg.OnControlGap != nil {
		h.cfg.OnControlGap()
	}
}

// Members returns the number of local members of room.
func (h *Hub) Members(room string) int {
	if user, ok := userOf(room); ok {
		return h.userMembers(user, nil)
	}
	s := &h.shards[h.index(room)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.rooms[room]; r != nil {
		return len(r.members)
	}
	return 0
}

// EachMember calls f for every local member of room, in no particular
// order, while holding the room's shard for reading: f must be quick and
// must not call the Hub.
func (h *Hub) EachMember(room string, f func(Member)) {
	if user, ok := userOf(room); ok {
		h.userMembers(user, f)
		return
	}
	s := &h.shards[h.index(room)]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.rooms[room]; r != nil {
		for i := range r.members {
			f(r.members[i].m)
		}
	}
}

// Rooms returns the number of rooms with at least one local member.
func (h *Hub) Rooms() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		n += len(s.rooms) + len(s.users) + len(s.usersMany)
		s.mu.RUnlock()
	}
	return n
}

// RoomNames returns up to limit names of rooms with local members that
// start with prefix, sorted, user rooms included ("user:<id>"). It visits
// every shard: for inspection (the admin console), not for hot paths.
func (h *Hub) RoomNames(prefix string, limit int) []string {
	var names []string
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for room := range s.rooms {
			if strings.HasPrefix(room, prefix) {
				names = append(names, room)
			}
		}
		for u := range s.users {
			if room := protocol.UserRoomPrefix + u; strings.HasPrefix(room, prefix) {
				names = append(names, room)
			}
		}
		for u := range s.usersMany {
			if room := protocol.UserRoomPrefix + u; strings.HasPrefix(room, prefix) {
				names = append(names, room)
			}
		}
		s.mu.RUnlock()
	}
	slices.Sort(names)
	if len(names) > limit {
		names = names[:limit]
	}
	return names
}
