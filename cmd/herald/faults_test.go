package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testserver"
)

// nodeOnRedis starts a redis-server of the test's own and a node named
// name on it, with flags; it returns the binary for further nodes.
func nodeOnRedis(t *testing.T, name string, flags ...string) (string, *testserver.Redis, *node) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts server processes")
	}
	bin := buildBinary(t)
	redis := testserver.StartRedis(t)
	return bin, redis, startNodeWith(t, bin, name, append([]string{"--redis-url", redis.URL()}, flags...)...)
}

// TestRedisStall: a Redis that stops answering (SIGSTOP) holds no client
// longer than --backend-timeout. An API publish is answered 504
// publish_timeout (it may still be delivered), a new client is welcomed,
// and once Redis answers again publishing works.
func TestRedisStall(t *testing.T) {
	_, redis, n := nodeOnRedis(t, "stall", "--backend-timeout", "1s")
	ctx := context.Background()
	lc, lrec := dialNode(t, n.ws(), "listener")
	if err := lc.Join(ctx, "feed"); err != nil {
		t.Fatal(err)
	}

	redis.Freeze()
	start := time.Now()
	code, body := apiCall(t, "POST", n.http()+"/api/v1/publish", `{"room":"feed","event":"stalled","data":1}`)
	took := time.Since(start)
	if code != http.StatusGatewayTimeout || body["error"] != "publish_timeout" {
		t.Fatalf("API publish while Redis is frozen: %d %v after %v", code, body, took)
	}
	// Bounded by the backend timeout, not by the Redis client's own 10 s.
	if took > 8*time.Second {
		t.Errorf("API publish answered after %v with --backend-timeout 1s", took)
	}
	dctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	late, err := client.Dial(dctx, n.ws(), client.WithClientID("late"))
	if err != nil {
		t.Fatalf("dial while Redis is frozen: %v\n%s", err, n.logs.String())
	}
	_ = late.Close()

	redis.Thaw()
	waitUntil(t, 10*time.Second, "publish after the stall", func() bool {
		code, _ := apiCall(t, "POST", n.http()+"/api/v1/publish", `{"room":"feed","event":"after","data":2}`)
		return code == http.StatusOK
	})
	waitUntil(t, 5*time.Second, "delivery after the stall", func() bool { return len(lrec.byEvent("after")) > 0 })
}

// TestSessionsRewrittenAfterRedisRestart: a Redis that comes back empty
// gets the sessions of live connections again from the node's refresh, so
// that they can still resume.
func TestSessionsRewrittenAfterRedisRestart(t *testing.T) {
	_, redis, n := nodeOnRedis(t, "rw", "--session-ttl", "3s")
	c, _ := dialNode(t, n.ws(), "keeper")
	if err := c.Join(context.Background(), "feed"); err != nil {
		t.Fatal(err)
	}
	key := "herald:session:" + c.SessionID()
	if v, err := redis.Command("EXISTS", key); err != nil || v != "1" {
		t.Fatalf("EXISTS %s before the restart: %q %v", key, v, err)
	}
	redis.Restart()
	if v, _ := redis.Command("DBSIZE"); v != "0" {
		t.Fatalf("DBSIZE after the restart: %q, want an empty Redis", v)
	}
	waitUntil(t, 10*time.Second, "session written again", func() bool {
		v, err := redis.Command("EXISTS", key)
		return err == nil && v == "1"
	})
}

// TestSessionRefreshKeepsEverySession: with many connections, every
// session outlives several session TTLs while its connection lives: the
// refresh round, whose touches are in flight together, reaches each.
func TestSessionRefreshKeepsEverySession(t *testing.T) {
	_, redis, n := nodeOnRedis(t, "many", "--session-ttl", "1500ms")
	var keys []string
	for i := range 150 {
		c, _ := dialNode(t, n.ws(), fmt.Sprintf("holder-%d", i))
		keys = append(keys, "herald:session:"+c.SessionID())
	}
	time.Sleep(4 * time.Second) // over two TTLs: only the refresh keeps them
	for _, key := range keys {
		if v, err := redis.Command("EXISTS", key); err != nil || v != "1" {
			t.Fatalf("EXISTS %s after two session TTLs: %q %v", key, v, err)
		}
	}
}

// TestPresenceAfterCrashRestart: a node killed and restarted under the
// same --node-id does not keep its previous run's presence entries alive;
// they go once the previous run's lease lapses.
func TestPresenceAfterCrashRestart(t *testing.T) {
	bin, redis, n := nodeOnRedis(t, "phoenix", "--lease-ttl", "1s")
	c, _ := dialNode(t, n.ws(), "ghost", client.WithReconnect(time.Hour, time.Hour))
	if err := c.Join(context.Background(), "lobby"); err != nil {
		t.Fatal(err)
	}
	presence := func(n *node) any {
		_, p := apiCall(t, "GET", n.http()+"/api/v1/rooms/lobby/presence", "")
		return p["connections"]
	}
	if got := presence(n); got != float64(1) {
		t.Fatalf("presence before the crash: %v, want 1", got)
	}
	if err := n.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	n.exit <- <-n.exit // wait for the exit, and leave it for the cleanup
	n2 := startNodeWith(t, bin, "phoenix", "--redis-url", redis.URL(), "--lease-ttl", "1s")
	waitUntil(t, 10*time.Second, "the crashed run's presence gone", func() bool { return presence(n2) == float64(0) })
}
