package redis_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testserver"
	"github.com/heraldrt/herald/session"
	"github.com/heraldrt/herald/session/redis"
	"github.com/heraldrt/herald/session/sessiontest"
	"github.com/redis/rueidis"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// See broker/redis: rueidis closes connections replaced by a cluster
		// topology refresh from a detached goroutine five seconds later.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
	)
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	sessiontest.Run(t, func(t *testing.T) session.Store {
		st, err := redis.New(redis.Config{URL: srv.URL()})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

func TestClusterConformance(t *testing.T) {
	t.Parallel()
	c := testserver.StartRedisCluster(t)
	sessiontest.Run(t, func(t *testing.T) session.Store {
		st, err := redis.New(redis.Config{ClusterAddrs: c.Addrs()})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

func TestNewUnreachable(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	srv.Kill()
	if _, err := redis.New(redis.Config{URL: srv.URL()}); err == nil {
		t.Fatal("New succeeded without Redis")
	}
}

func TestPresenceConformance(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	sessiontest.RunPresence(t, func(t *testing.T) session.Presence {
		p, err := redis.NewPresence(redis.Config{URL: srv.URL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	}, true)
}

func TestClusterPresenceConformance(t *testing.T) {
	t.Parallel()
	c := testserver.StartRedisCluster(t)
	sessiontest.RunPresence(t, func(t *testing.T) session.Presence {
		p, err := redis.NewPresence(redis.Config{ClusterAddrs: c.Addrs()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		return p
	}, true)
}

// TestPresenceOutlivesRoomTTL keeps a room quiet (no join, no leave) for
// longer than the room TTL while its members stay connected: the node's
// lease keep-alive renews the room hash once half the TTL has passed, so
// the room keeps its presence, and the user room keeps the count that
// cluster-wide per-user caps read. (Without the renewal the hash expires
// a TTL after the last join.) The margins are the TTL's halves, so a
// stall of the test under load up to 1.4 s does not fail it.
func TestPresenceOutlivesRoomTTL(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	const roomTTL = 3 * time.Second
	p, err := redis.NewPresence(redis.Config{URL: srv.URL(), Prefix: "ttl", PresenceRoomTTL: roomTTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pttl := func(room string) time.Duration {
		t.Helper()
		out, err := srv.Command("PTTL", "ttl:presence:{"+room+"}")
		must(err)
		ms, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		must(err)
		return time.Duration(ms) * time.Millisecond
	}
	must(p.KeepAlive(ctx, "node-a", time.Minute))
	joined := time.Now()
	must(p.Add(ctx, "quiet", "node-a", "c1", "alice"))
	must(p.Add(ctx, "quiet", "node-a", "c2", "bob"))
	must(p.Add(ctx, "user:alice", "node-a", "c1", "alice"))

	// Past half the TTL, the lease keep-alive renews the rooms: their TTL
	// is back near a whole TTL, where without renewal at most half is left.
	time.Sleep(roomTTL/2 + 100*time.Millisecond)
	must(p.KeepAlive(ctx, "node-a", time.Minute))
	for _, room := range []string{"quiet", "user:alice"} {
		if left := pttl(room); left <= roomTTL/2 {
			t.Fatalf("%s: %s left of its TTL after a keep-alive, want more than %s (renewed)", room, left, roomTTL/2)
		}
	}
	// Past the TTL since the last join, the room is still listed.
	time.Sleep(roomTTL/2 + 100*time.Millisecond)
	must(p.KeepAlive(ctx, "node-a", time.Minute))
	if since := time.Since(joined); since <= roomTTL {
		t.Fatalf("only %s since the joins", since)
	}
	list := func(room string) []session.PresenceEntry {
		t.Helper()
		got, err := p.List(ctx, room)
		must(err)
		return got
	}
	if got := list("quiet"); len(got) != 2 {
		t.Fatalf("quiet room a TTL (%s) after its joins: %v, want alice and bob", roomTTL, got)
	}
	if got := list("user:alice"); len(got) != 1 || got[0].Connections != 1 {
		t.Fatalf("alice's user room a TTL after her join: %v, want one connection", got)
	}
}

// TestOpen: a Presence made from a Store is a session.Opener whose Open
// saves the session and adds the presence entry (one round trip), on one
// Redis and on a Cluster, where the session and the room hash live on
// different slots; its Presence passes the conformance table too.
func TestOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) redis.Config
	}{
		{"redis", func(t *testing.T) redis.Config { return redis.Config{URL: testserver.StartRedis(t).URL()} }},
		{"cluster", func(t *testing.T) redis.Config {
			return redis.Config{ClusterAddrs: testserver.StartRedisCluster(t).Addrs()}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg(t)
			st, err := redis.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			pr := st.Presence(0)
			t.Cleanup(func() { _ = pr.Close() })
			var o session.Opener = pr
			if o.OpenStore() != session.Store(st) {
				t.Fatal("OpenStore is not the Store the Presence was made from")
			}
			ctx := context.Background()
			if err := pr.KeepAlive(ctx, "node-a#1", time.Minute); err != nil {
				t.Fatal(err)
			}
			now := time.Now().Truncate(time.Millisecond)
			s := &session.Session{ID: "sess-open-1", UserID: "alice", Node: "node-a", Conn: "conn-1",
				ResumeToken: "tok-1", ConnectedAt: now, LastSeen: now}
			if err := o.Open(ctx, s, time.Minute, []string{"user:alice", "chat"}, "node-a#1"); err != nil {
				t.Fatal(err)
			}
			got, err := st.Get(ctx, s.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.UserID != "alice" || got.Conn != "conn-1" || got.ResumeToken != "tok-1" || !got.ConnectedAt.Equal(now) {
				t.Fatalf("saved session %+v", got)
			}
			entries, err := pr.List(ctx, "user:alice")
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].User != "alice" || entries[0].Connections != 1 {
				t.Fatalf("presence %+v", entries)
			}
			if entries, err := pr.List(ctx, "chat"); err != nil || len(entries) != 1 || entries[0].User != "alice" {
				t.Fatalf("presence in chat %+v, %v", entries, err)
			}

			// Reopen: the session moves to conn-2 with its rooms, and what
			// conn-1 carried is taken once.
			carried := []session.Pending{{MsgID: "m1", Frame: []byte(`{"type":"event"}`)}, {MsgID: "m2", Frame: []byte("{}")}}
			if err := st.AddPending(ctx, s.ID, carried, 16, time.Minute); err != nil {
				t.Fatal(err)
			}
			s2 := *s
			s2.Conn, s2.Rooms = "conn-2", []string{"chat", "news"}
			got2, err := o.Reopen(ctx, &s2, time.Minute, []string{"user:alice", "chat", "news"}, "node-a#1")
			if err != nil {
				t.Fatal(err)
			}
			if len(got2) != 2 || got2[0].MsgID != "m1" || got2[1].MsgID != "m2" || string(got2[0].Frame) != `{"type":"event"}` {
				t.Fatalf("Reopen took %+v, want m1 and m2", got2)
			}
			if again, err := o.Reopen(ctx, &s2, time.Minute, []string{"news"}, "node-a#1"); err != nil || len(again) != 0 {
				t.Fatalf("second Reopen took %+v, %v; want nothing", again, err)
			}
			if cur, err := st.Get(ctx, s.ID); err != nil || cur.Conn != "conn-2" || len(cur.Rooms) != 2 {
				t.Fatalf("session after Reopen %+v, %v", cur, err)
			}
			if entries, err := pr.List(ctx, "news"); err != nil || len(entries) != 1 || entries[0].Connections != 1 {
				t.Fatalf("presence in news after Reopen %+v, %v", entries, err)
			}
			// Closing the Presence leaves the Store's connections open.
			_ = pr.Close()
			if _, err := st.Get(ctx, s.ID); err != nil {
				t.Fatalf("store after the presence closed: %v", err)
			}
			if err := st.Delete(ctx, s.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Get(ctx, s.ID); err != session.ErrNotFound {
				t.Fatalf("after Delete: %v", err)
			}
		})
	}
	t.Run("conformance", func(t *testing.T) {
		t.Parallel()
		srv := testserver.StartRedis(t)
		sessiontest.RunPresence(t, func(t *testing.T) session.Presence {
			st, err := redis.New(redis.Config{URL: srv.URL()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			p := st.Presence(0)
			t.Cleanup(func() { _ = p.Close() })
			return p
		}, true)
	})
	p, err := redis.NewPresence(redis.Config{URL: testserver.StartRedis(t).URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if p.OpenStore() != nil {
		t.Fatal("a Presence from NewPresence names a Store")
	}
}

// TestSharedClient: a Store (and a Presence from NewPresence) on a client
// passed in Config.Client uses it and leaves it open when closed.
func TestSharedClient(t *testing.T) {
	t.Parallel()
	opt, err := rueidis.ParseURL(testserver.StartRedis(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	base, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(base.Close)
	cfg := redis.Config{Client: base, URL: "redis://ignored.invalid:1"}
	st, err := redis.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := redis.NewPresence(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now()
	if err := st.Save(ctx, &session.Session{ID: "shared-1", UserID: "u", ConnectedAt: now, LastSeen: now}, time.Minute); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	_ = st.Close()
	if n, err := base.Do(ctx, base.B().Exists().Key("herald:session:shared-1").Build()).AsInt64(); err != nil || n != 1 {
		t.Fatalf("the shared client after the Store closed: %d, %v", n, err)
	}
}

// A session's pending messages are bounded in bytes of their frames
// (MaxPendingBytes): the newest are kept, the others dropped and reported
// (PendingDropped), and TakePending returns a record of the loss per room
// first. What the Store stored within the TTL is bounded too
// (MaxNodePendingBytes): past it only the loss is recorded
// (ErrPendingFull). A message larger than the bound is kept when it is
// the newest, as a connection holds one.
func TestPendingBoundedInBytes(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	ctx := context.Background()
	msg := func(id, room string) session.Pending {
		return session.Pending{MsgID: id, Room: room, Frame: []byte(`{"type":"event","room":"` + room + `","data":"` + strings.Repeat("x", 250) + `"}`)}
	}
	size := func(m session.Pending) int64 { return int64(len(m.Frame)) }
	one := size(msg("m1", "a")) // every message here has this size
	st, err := redis.New(redis.Config{URL: srv.URL(), MaxPendingBytes: 2 * one, MaxNodePendingBytes: 6 * one})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	take := func(id string) string {
		t.Helper()
		got, err := st.TakePending(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, p := range got {
			if p.Lost > 0 {
				s = append(s, fmt.Sprintf("lost %d of %q", p.Lost, p.Room))
				continue
			}
			if p.Room == "" || !strings.Contains(string(p.Frame), p.Room) {
				t.Fatalf("message %s came back as %+v", p.MsgID, p)
			}
			s = append(s, p.MsgID)
		}
		return strings.Join(s, ", ")
	}
	dropped := func(err error) int {
		t.Helper()
		var pd *session.PendingDropped
		if !errors.As(err, &pd) {
			t.Fatalf("AddPending: %v, want a PendingDropped", err)
		}
		return pd.Messages
	}

	// Three messages where two fit: the oldest is dropped.
	if n := dropped(st.AddPending(ctx, "s1", []session.Pending{msg("m1", "a"), msg("m2", "b"), msg("m3", "b")}, 10, time.Minute)); n != 1 {
		t.Fatalf("dropped %d, want 1", n)
	}
	// Two more: the two before are dropped, and the loss records merge.
	if n := dropped(st.AddPending(ctx, "s1", []session.Pending{msg("m4", "a"), msg("m5", "a")}, 10, time.Minute)); n != 2 {
		t.Fatalf("dropped %d, want 2", n)
	}
	got := take("s1")
	if got != `lost 1 of "a", lost 2 of "b", m4, m5` && got != `lost 2 of "b", lost 1 of "a", m4, m5` {
		t.Fatalf("took %s", got)
	}
	if got := take("s1"); got != "" {
		t.Fatalf("taken twice: %s", got)
	}

	// Five messages' worth stored within the TTL so far (3 + 2 above,
	// counted as stored though since dropped or taken); one more fits,
	// then the node's bound refuses, recording only the loss.
	if err := st.AddPending(ctx, "s2", []session.Pending{msg("m6", "c")}, 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	err = st.AddPending(ctx, "s3", []session.Pending{msg("m7", "c"), msg("m8", "d")}, 10, time.Minute)
	if !errors.Is(err, redis.ErrPendingFull) {
		t.Fatalf("past the node's bound: %v, want ErrPendingFull", err)
	}
	if got := take("s3"); got != `lost 1 of "c", lost 1 of "d"` {
		t.Fatalf("took %s from a session refused at the node's bound", got)
	}
	if got := take("s2"); got != "m6" {
		t.Fatalf("took %s", got)
	}
	if n := st.PendingBytes(); n != 6*one {
		t.Fatalf("PendingBytes %d, want %d", n, 6*one)
	}

	// Losses in more than 64 rooms make one record, of no room.
	var many []session.Pending
	for i := range 70 {
		many = append(many, msg(fmt.Sprintf("n%02d", i), fmt.Sprintf("r%02d", i)))
	}
	st2, err := redis.New(redis.Config{URL: srv.URL(), MaxPendingBytes: 2 * size(many[0])})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if n := dropped(st2.AddPending(ctx, "s4", many, 100, time.Minute)); n != 68 {
		t.Fatalf("dropped %d, want 68", n)
	}
	st = st2
	if got := take("s4"); got != `lost 68 of "", n68, n69` {
		t.Fatalf("took %s", got)
	}

	// The newest is kept whatever its size.
	big := msg("big", "e")
	big.Frame = append(big.Frame, bytes.Repeat([]byte(" "), 1000)...)
	if n := dropped(st2.AddPending(ctx, "s5", []session.Pending{msg("m9", "e"), big}, 10, time.Minute)); n != 1 {
		t.Fatalf("dropped %d, want 1", n)
	}
	if got := take("s5"); got != `lost 1 of "e", big` {
		t.Fatalf("took %s", got)
	}

	// An item stored by a node that recorded neither size nor room
	// weighs 3/4 of its JSON, and its loss is of no room in particular.
	old, _ := json.Marshal(session.Pending{MsgID: "old", Frame: msg("old", "f").Frame})
	if _, err := srv.Command("RPUSH", "herald:session:s6:pending", string(old)); err != nil {
		t.Fatal(err)
	}
	if n := dropped(st.AddPending(ctx, "s6", []session.Pending{msg("m10", "f"), msg("m11", "f")}, 10, time.Minute)); n != 1 {
		t.Fatalf("dropped %d, want 1", n)
	}
	if got := take("s6"); got != `lost 1 of "", m10, m11` {
		t.Fatalf("took %s", got)
	}
}
