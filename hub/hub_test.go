package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/memory"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
)

// jsonCodec is a minimal codec for tests.
type jsonCodec struct{ encodes *atomic.Int64 }

func (jsonCodec) Slot() int { return 1 }

func (c jsonCodec) Encode(m *broker.Message) (transport.MessageType, []byte) {
	c.encodes.Add(1)
	b, _ := json.Marshal(m)
	return transport.Text, append(make([]byte, transport.FrameHeadroom), b...)
}

type member struct {
	codec jsonCodec
	mu    sync.Mutex
	got   []*transport.Prepared
}

func (m *member) Deliver(d *hub.Delivery) {
	p := d.Frame(m.codec)
	m.mu.Lock()
	m.got = append(m.got, p)
	m.mu.Unlock()
}

func newHub(t testing.TB) (*hub.Hub, *memory.Broker) {
	t.Helper()
	b := memory.New()
	h := hub.New(hub.Config{Broker: b})
	if err := b.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	return h, b
}

func TestInterestFollowsMembership(t *testing.T) {
	t.Parallel()
	h, b := newHub(t)
	ctx := context.Background()
	enc := &atomic.Int64{}
	m1, m2 := &member{codec: jsonCodec{enc}}, &member{codec: jsonCodec{enc}}

	if b.Subscribed("r") {
		t.Fatal("subscribed before any join")
	}
	if ok, err := h.Join(ctx, "r", m1); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, _ := h.Join(ctx, "r", m1); ok {
		t.Fatal("second join of the same member reported as new")
	}
	_, _ = h.Join(ctx, "r", m2)
	if !b.Subscribed("r") || h.Members("r") != 2 || h.Rooms() != 1 {
		t.Fatalf("subscribed=%v members=%d rooms=%d", b.Subscribed("r"), h.Members("r"), h.Rooms())
	}
	_ = h.Leave(ctx, "r", m1)
	if !b.Subscribed("r") {
		t.Fatal("unsubscribed while a member remains")
	}
	_ = h.Leave(ctx, "r", m2)
	if b.Subscribed("r") || h.Rooms() != 0 {
		t.Fatal("still subscribed after the last member left")
	}
	if err := h.Leave(ctx, "r", m2); !errors.Is(err, hub.ErrNotMember) {
		t.Fatalf("leave of a non-member: %v", err)
	}
}

func TestFanoutEncodesOnce(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t)
	ctx := context.Background()
	enc := &atomic.Int64{}
	var ms []*member
	for i := 0; i < 50; i++ {
		m := &member{codec: jsonCodec{enc}}
		ms = append(ms, m)
		_, _ = h.Join(ctx, "r", m)
	}
	for i := 0; i < 3; i++ {
		if err := h.Publish(ctx, &broker.Message{Room: "r", Event: "e", MsgID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if enc.Load() != 3 {
		t.Fatalf("encoded %d times for 3 messages to 50 members", enc.Load())
	}
	for i, m := range ms {
		if len(m.got) != 3 || m.got[0] != ms[0].got[0] {
			t.Fatalf("member %d got %d frames (or different bytes)", i, len(m.got))
		}
	}
}

func TestConcurrentJoinLeaveKeepsInterestConsistent(t *testing.T) {
	t.Parallel()
	h, b := newHub(t)
	ctx := context.Background()
	enc := &atomic.Int64{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &member{codec: jsonCodec{enc}}
			for i := 0; i < 200; i++ {
				room := fmt.Sprintf("r%d", i%4)
				if _, err := h.Join(ctx, room, m); err != nil {
					t.Error(err)
				}
				if err := h.Publish(ctx, &broker.Message{Room: room, Event: "e"}); err != nil {
					t.Error(err)
				}
				if err := h.Leave(ctx, room, m); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 4; i++ {
		room := fmt.Sprintf("r%d", i)
		if b.Subscribed(room) || h.Members(room) != 0 {
			t.Fatalf("%s: subscribed=%v members=%d after everyone left", room, b.Subscribed(room), h.Members(room))
		}
	}
}

// directMember takes messages without acks through its Sender and the
// rest through Deliver.
type directMember struct {
	member
	sent []*transport.Prepared
}

func (m *directMember) Send(p *transport.Prepared) error {
	m.mu.Lock()
	m.sent = append(m.sent, p)
	m.mu.Unlock()
	return nil
}

func (m *directMember) Direct() (hub.Sender, hub.Codec) { return m, m.codec }

func TestDirectMembers(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t)
	ctx := context.Background()
	enc := &atomic.Int64{}
	direct := &directMember{member: member{codec: jsonCodec{enc}}}
	plain := &member{codec: jsonCodec{enc}}
	for _, m := range []hub.Member{direct, plain} {
		if _, err := h.Join(ctx, "r", m); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Publish(ctx, &broker.Message{Room: "r", Event: "e", MsgID: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Publish(ctx, &broker.Message{Room: "r", Event: "e", MsgID: "2", Ack: true}); err != nil {
		t.Fatal(err)
	}
	if len(direct.sent) != 1 || len(direct.got) != 1 {
		t.Fatalf("direct member: %d sent directly, %d delivered; want 1 and 1 (the acked one)", len(direct.sent), len(direct.got))
	}
	if len(plain.got) != 2 {
		t.Fatalf("plain member got %d, want 2", len(plain.got))
	}
	if direct.sent[0] != plain.got[0] {
		t.Fatal("the direct path did not share the encoded frame")
	}
	if enc.Load() != 2 {
		t.Fatalf("encoded %d times for 2 messages", enc.Load())
	}
}

// TestMembershipAcrossSizes joins and leaves members across the size at
// which a room gets an index, and checks that exactly the current members
// get each message, and that OnFanout reports how many they were.
func TestMembershipAcrossSizes(t *testing.T) {
	t.Parallel()
	// A user room takes the hub's user index, the other the room sets.
	for _, room := range []string{"r", "user:alice"} {
		t.Run(room, func(t *testing.T) {
			t.Parallel()
			testMembershipAcrossSizes(t, room)
		})
	}
}

func testMembershipAcrossSizes(t *testing.T, room string) {
	b := memory.New()
	cb := &countingBroker{Broker: b}
	var fanouts []int
	var mu sync.Mutex
	h := hub.New(hub.Config{Broker: cb, OnFanout: func(_ *hub.Delivery, n int, _ time.Duration) {
		mu.Lock()
		fanouts = append(fanouts, n)
		mu.Unlock()
	}})
	if err := b.Start(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enc := &atomic.Int64{}
	// Enough members to pass the size at which a room gets its index,
	// and to leave until it drops it again.
	n := 2*hub.SmallRoom + 4
	var ms []*member
	for range n {
		ms = append(ms, &member{codec: jsonCodec{enc}})
	}
	near := func(k int) bool { // a count worth a check
		for _, edge := range []int{1, hub.SmallRoom / 2, hub.SmallRoom, n} {
			if k >= edge-2 && k <= edge+2 {
				return true
			}
		}
		return k%37 == 0
	}
	in := map[*member]bool{}
	check := func(step string) {
		t.Helper()
		for _, m := range ms {
			m.mu.Lock()
			m.got = nil
			m.mu.Unlock()
		}
		if err := h.Publish(ctx, &broker.Message{Room: room, Event: "e", MsgID: step}); err != nil {
			t.Fatal(err)
		}
		for i, m := range ms {
			if want := 0; in[m] {
				want = 1
				if len(m.got) != want {
					t.Fatalf("%s: member %d got %d messages, want %d", step, i, len(m.got), want)
				}
			} else if len(m.got) != 0 {
				t.Fatalf("%s: non-member %d got %d messages", step, i, len(m.got))
			}
		}
		if got := h.Members(room); got != len(in) {
			t.Fatalf("%s: Members = %d, want %d", step, got, len(in))
		}
		seen := map[hub.Member]int{}
		h.EachMember(room, func(m hub.Member) { seen[m]++ })
		for m, n := range seen {
			if !in[m.(*member)] || n != 1 {
				t.Fatalf("%s: EachMember gave a member %d times (member: %v)", step, n, in[m.(*member)])
			}
		}
		if len(seen) != len(in) {
			t.Fatalf("%s: EachMember gave %d members, want %d", step, len(seen), len(in))
		}
		mu.Lock()
		last := fanouts[len(fanouts)-1]
		mu.Unlock()
		if last != len(in) {
			t.Fatalf("%s: OnFanout reported %d members, want %d", step, last, len(in))
		}
	}
	for i, m := range ms {
		if ok, err := h.Join(ctx, room, m); !ok || err != nil {
			t.Fatalf("join %d: %v %v", i, ok, err)
		}
		in[m] = true
		if near(len(in)) {
			check(fmt.Sprintf("after %d joins", i+1))
		}
	}
	if ok, _ := h.Join(ctx, room, ms[5]); ok {
		t.Fatal("second join of a member reported true")
	}
	if h.Rooms() != 1 {
		t.Fatalf("Rooms = %d, want 1", h.Rooms())
	}
	if subs, want := cb.subscribes.Load(), int64(1); protocol.IsUserRoom(room) {
		if subs != 0 {
			t.Fatalf("%d subscriptions for a user room", subs)
		}
	} else if subs != want {
		t.Fatalf("%d subscriptions, want %d", subs, want)
	}
	// Leave in a scrambled order (first, last and middle members move
	// about), all but five.
	for k := range n - 5 {
		i := (k * 7919) % n
		if err := h.Leave(ctx, room, ms[i]); err != nil {
			t.Fatalf("leave %d: %v", i, err)
		}
		delete(in, ms[i])
		if near(len(in)) {
			check(fmt.Sprintf("after leaving %d", i))
		}
	}
	if err := h.Leave(ctx, room, ms[0]); !errors.Is(err, hub.ErrNotMember) {
		t.Fatalf("leave of a non-member: %v", err)
	}
	for i := range ms {
		_ = h.Leave(ctx, room, ms[i])
	}
	if h.Rooms() != 0 || h.Members(room) != 0 {
		t.Fatalf("after everyone left: Rooms = %d, Members = %d", h.Rooms(), h.Members(room))
	}
}

// TestUserRoomsKeptByUser checks JoinUser and LeaveUser with one and
// several connections per user, that messages reach only that user's
// members, and that no user room costs a subscription.
func TestUserRoomsKeptByUser(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t)
	ctx := context.Background()
	enc := &atomic.Int64{}
	a1, a2, bob := &member{codec: jsonCodec{enc}}, &member{codec: jsonCodec{enc}}, &member{codec: jsonCodec{enc}}
	got := func(m *member) int {
		m.mu.Lock()
		defer m.mu.Unlock()
		n := len(m.got)
		m.got = nil
		return n
	}
	send := func(user string, want ...int) {
		t.Helper()
		if err := h.Publish(ctx, &broker.Message{Room: "user:" + user, Event: "e"}); err != nil {
			t.Fatal(err)
		}
		for i, m := range []*member{a1, a2, bob} {
			if n := got(m); n != want[i] {
				t.Fatalf("to %s: member %d got %d, want %d", user, i, n, want[i])
			}
		}
	}
	if !h.JoinUser("alice", a1) || !h.JoinUser("bob", bob) {
		t.Fatal("first joins reported false")
	}
	if h.JoinUser("alice", a1) {
		t.Fatal("joining twice reported true")
	}
	send("alice", 1, 0, 0)
	send("bob", 0, 0, 1)
	send("carol", 0, 0, 0)
	if !h.JoinUser("alice", a2) || h.JoinUser("alice", a2) {
		t.Fatal("second connection: first join false or repeated join true")
	}
	send("alice", 1, 1, 0)
	if h.Members("user:alice") != 2 || h.Rooms() != 2 {
		t.Fatalf("Members = %d, Rooms = %d; want 2, 2", h.Members("user:alice"), h.Rooms())
	}
	if err := h.LeaveUser("alice", bob); !errors.Is(err, hub.ErrNotMember) {
		t.Fatalf("leave by a non-member: %v", err)
	}
	if err := h.LeaveUser("alice", a1); err != nil {
		t.Fatal(err)
	}
	send("alice", 0, 1, 0)
	if err := h.LeaveUser("alice", a1); !errors.Is(err, hub.ErrNotMember) {
		t.Fatalf("second leave: %v", err)
	}
	if !h.JoinUser("alice", a1) {
		t.Fatal("rejoin reported false")
	}
	send("alice", 1, 1, 0)
	for _, m := range []*member{a1, a2} {
		if err := h.LeaveUser("alice", m); err != nil {
			t.Fatal(err)
		}
	}
	send("alice", 0, 0, 0)
	if h.Members("user:alice") != 0 || h.Rooms() != 1 {
		t.Fatalf("Members = %d, Rooms = %d; want 0, 1", h.Members("user:alice"), h.Rooms())
	}
}

// countingBroker counts the Subscribe calls it passes on.
type countingBroker struct {
	*memory.Broker
	subscribes atomic.Int64
}

func (b *countingBroker) Subscribe(ctx context.Context, room string) error {
	b.subscribes.Add(1)
	return b.Broker.Subscribe(ctx, room)
}

// TestUserRoomsConcurrent joins and leaves several connections of the
// same users while messages to them are delivered: under -race this
// checks the user index's locking, and at the end every user room is
// empty and every member got only its own user's messages.
func TestUserRoomsConcurrent(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t)
	ctx := context.Background()
	enc := &atomic.Int64{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("u%d", g%3) // three users, several connections each
			m := &member{codec: jsonCodec{enc}}
			for i := range 200 {
				if !h.JoinUser(user, m) {
					t.Errorf("%s: join %d reported false", user, i)
				}
				if err := h.Publish(ctx, &broker.Message{Room: "user:" + user, Event: user}); err != nil {
					t.Error(err)
				}
				if err := h.LeaveUser(user, m); err != nil {
					t.Errorf("%s: leave %d: %v", user, i, err)
				}
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			if len(m.got) < 200 {
				t.Errorf("%s: a member got %d of its own 200 messages", user, len(m.got))
			}
			for _, p := range m.got {
				if !strings.Contains(string(p.Payload()), `"event":"`+user+`"`) {
					t.Errorf("%s: got another user's message %s", user, p.Payload())
					return
				}
			}
		}()
	}
	wg.Wait()
	for u := range 3 {
		if n := h.Members(fmt.Sprintf("user:u%d", u)); n != 0 {
			t.Errorf("user u%d: %d members after everyone left", u, n)
		}
	}
	if h.Rooms() != 0 {
		t.Errorf("Rooms = %d after everyone left", h.Rooms())
	}
}

// TestUserRoomCost checks that a user with one connection costs the hub
// about one map slot: no room name, member set or slice of its own.
func TestUserRoomCost(t *testing.T) {
	h, _ := newHub(t)
	const n = 10000
	users := make([]string, n)
	ms := make([]*member, n)
	for i := range users {
		users[i] = fmt.Sprintf("user-%08d", i)
		ms[i] = &member{}
	}
	per := heapGrowth(func() {
		for i := range users {
			h.JoinUser(users[i], ms[i])
		}
	}) / n
	runtime.KeepAlive(h)
	t.Logf("%.0f bytes per user", per)
	// A map slot of a string key and an interface is 32 bytes, up to
	// twice that with the table's spare room; a room name, member set
	// and one-member slice would add 112.
	if per > 90 {
		t.Fatalf("%.0f bytes per user room, want at most 90", per)
	}
	runtime.KeepAlive(users)
	runtime.KeepAlive(ms)
}

// TestRoomMembershipCost checks that a membership of a room below
// SmallRoom costs its slot in the room's slice (48 bytes, and the
// slice's spare capacity), with no index beside it.
func TestRoomMembershipCost(t *testing.T) {
	h, _ := newHub(t)
	ctx := context.Background()
	const rooms, members = 100, 200
	ms := make([]*member, members)
	names := make([]string, rooms)
	for i := range ms {
		ms[i] = &member{}
	}
	for i := range names {
		names[i] = fmt.Sprintf("room-%03d", i)
	}
	per := heapGrowth(func() {
		for _, room := range names {
			for _, m := range ms {
				if _, err := h.Join(ctx, room, m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}) / (rooms * members)
	runtime.KeepAlive(h)
	t.Logf("%.0f bytes per membership (rooms of %d)", per, members)
	// 48 bytes and the slice's spare capacity (81 bytes measured); an
	// index would add about 30 more (114 measured with one past 8
	// members).
	if per > 95 {
		t.Fatalf("%.0f bytes per membership, want at most 95", per)
	}
	runtime.KeepAlive(ms)
}

// heapGrowth returns by how much f grows the live heap, from collection
// to collection. What f builds must stay reachable after it returns.
func heapGrowth(f func()) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return float64(after.HeapAlloc) - float64(before.HeapAlloc)
}

func TestRoomNames(t *testing.T) {
	h, _ := newHub(t)
	ctx := context.Background()
	for _, room := range []string{"lobby", "lab", "ops", "user:ada"} {
		if _, err := h.Join(ctx, room, &member{}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, prefix string
		limit        int
		want         []string
	}{
		{"all, sorted, user rooms included", "", 10, []string{"lab", "lobby", "ops", "user:ada"}},
		{"prefix", "l", 10, []string{"lab", "lobby"}},
		{"user rooms", "user:", 10, []string{"user:ada"}},
		{"limit", "", 2, []string{"lab", "lobby"}},
		{"none", "x", 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.RoomNames(tt.prefix, tt.limit); !slices.Equal(got, tt.want) {
				t.Fatalf("RoomNames(%q, %d) = %v, want %v", tt.prefix, tt.limit, got, tt.want)
			}
		})
	}
}
