package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testserver"
	"github.com/heraldrt/herald/session"
	"github.com/heraldrt/herald/session/redis"
	"github.com/heraldrt/herald/session/sessiontest"
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
// several room TTLs while its members stay connected: the node's lease
// keep-alive renews the room hash, so the room keeps its presence, and
// the user room keeps the count that cluster-wide per-user caps read.
func TestPresenceOutlivesRoomTTL(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	const roomTTL = 300 * time.Millisecond
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
	must(p.KeepAlive(ctx, "node-a", time.Minute))
	must(p.Add(ctx, "quiet", "node-a", "c1", "alice"))
	must(p.Add(ctx, "quiet", "node-a", "c2", "bob"))
	must(p.Add(ctx, "user:alice", "node-a", "c1", "alice"))

	// Keep the lease alive, as a node does every third of its lease TTL,
	// for five room TTLs.
	end := time.Now().Add(5 * roomTTL)
	for time.Now().Before(end) {
		must(p.KeepAlive(ctx, "node-a", time.Minute))
		time.Sleep(roomTTL / 10)
	}
	list := func(room string) []session.PresenceEntry {
		t.Helper()
		got, err := p.List(ctx, room)
		must(err)
		return got
	}
	if got := list("quiet"); len(got) != 2 {
		t.Fatalf("quiet room after %s: %v, want alice and bob", 5*roomTTL, got)
	}
	if got := list("user:alice"); len(got) != 1 || got[0].Connections != 1 {
		t.Fatalf("alice's user room after %s: %v, want one connection", 5*roomTTL, got)
	}
	out, err := srv.Command("PTTL", "ttl:presence:{quiet}")
	must(err)
	pttl, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	must(err)
	if pttl <= 0 || pttl > roomTTL.Milliseconds() {
		t.Fatalf("quiet room's PTTL = %d ms, want within (0, %d]", pttl, roomTTL.Milliseconds())
	}
}
