package redis_test

import (
	"testing"

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
