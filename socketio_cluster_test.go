package herald_test

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	redisbroker "github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/internal/testserver"
	redissession "github.com/heraldrt/herald/session/redis"
)

// redisNodeConfig is the config of a node on Redis (messages, history and
// sessions) with Socket.IO recovery on and rooms "h:*" keeping history.
func redisNodeConfig(t *testing.T, r *testserver.Redis) herald.Config {
	t.Helper()
	b, err := redisbroker.New(redisbroker.Config{URL: r.URL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	st, err := redissession.New(redissession.Config{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sioConfig()
	cfg.Broker, cfg.Sessions = b, st
	cfg.SocketIO.Recovery = true
	cfg.History = []herald.HistoryRule{{Pattern: "h:*", Size: 100}}
	return cfg
}

// startServerAt is startServer on the address addr ("" for any), for a
// node that restarts where its clients reconnect.
func startServerAt(t *testing.T, cfg herald.Config, addr string) (*herald.Server, *httptest.Server) {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.APIKeys = []string{testAPIKey}
	cfg.DrainTimeout = 2 * time.Second
	srv, err := herald.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		hs.Listener.Close()
		hs.Listener = ln
	}
	hs.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return srv, hs
}

// Across nodes on Redis: a room publication made on one node reaches a
// Socket.IO client on another and a v1 client on a third, and a
// Socket.IO client's publication reaches them too; a direct message to
// the Socket.IO client's user reaches it.
func TestSocketIOAcrossNodesWithRedis(t *testing.T) {
	dir := sioNodeDir(t)
	r := testserver.StartRedis(t)
	a := startServer(t, redisNodeConfig(t, r))
	b := startServer(t, redisNodeConfig(t, r))
	v1 := dial(t, b.URL)
	v1.join("lobby")
	p := startPeer(t, dir)
	p.connect("s", a.HTTP.URL, map[string]any{"query": map[string]any{"clientId": "sam"}})
	p.call("s", "join", "herald:join", map[string]any{"room": "lobby"})
	waitFor(t, 5*time.Second, "interest on node b", func() bool {
		_, err := b.Publish(context.Background(), "lobby", "warmup", 0)
		return err == nil
	})
	if _, err := b.Publish(context.Background(), "lobby", "news", map[string]any{"from": "b"}); err != nil {
		t.Fatal(err)
	}
	ev := p.expect("news from node b", is("s", "event", "news"))
	if ev["args"].([]any)[0].(map[string]any)["from"] != "b" {
		t.Fatalf("news = %v", ev)
	}
	for {
		if m := v1.expect("event"); m["event"] == "news" {
			break
		}
	}
	p.call("s", "pub", "herald:publish", map[string]any{"room": "lobby", "event": "chat", "data": "from sam"})
	for {
		if m := v1.expect("event"); m["event"] == "chat" {
			if m["data"] != "from sam" || m["from"] != "sam" {
				t.Fatalf("v1 got %v", m)
			}
			break
		}
	}
	if _, err := b.PublishToUser(context.Background(), "sam", "dm", "hello sam"); err != nil {
		t.Fatal(err)
	}
	if ev := p.expect("direct message", is("s", "event", "dm")); ev["args"].([]any)[0] != "hello sam" {
		t.Fatalf("dm = %v", ev)
	}
}

// A Socket.IO client with connection state recovery survives its node's
// restart: the node drains (the client is told, then its connection is
// closed), messages are published meanwhile through another node, and
// the client, reconnecting to the restarted node, resumes its session
// from Redis, gets what it missed of its room with history, in order,
// and sees itself as recovered (the same pid), which Node's in-memory
// recovery cannot give across a restart.
func TestSocketIORecoveryAcrossRestart(t *testing.T) {
	dir := sioNodeDir(t)
	r := testserver.StartRedis(t)
	srvA, hsA := startServerAt(t, redisNodeConfig(t, r), "")
	other := startServer(t, redisNodeConfig(t, r))
	addr := hsA.Listener.Addr().String()

	p := startPeer(t, dir)
	first := p.connect("s", hsA.URL, map[string]any{"query": map[string]any{"clientId": "rita"}})
	if first["recovered"] != false {
		t.Fatalf("first connect: %v", first)
	}
	p.call("s", "join", "herald:join", map[string]any{"room": "h:feed"})
	publish := func(n int) {
		t.Helper()
		if _, err := other.Publish(context.Background(), "h:feed", "item", n); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 3; n++ {
		publish(n)
		ev := p.expect("live item", is("s", "event", "item"))
		if args := ev["args"].([]any); args[0] != float64(n) || len(args) != 2 || !strings.Contains(args[1].(string), "r=h%3Afeed") {
			t.Fatalf("item %d: args %v (want the item and its offset)", n, args)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _ = srvA.Shutdown(ctx) }()
	p.expect("herald:shutdown", is("s", "event", "herald:shutdown"))
	p.expect("disconnect", is("s", "disconnect", ""))
	waitFor(t, 10*time.Second, "node a down", func() bool { return srvA.Connections() == 0 })
	hsA.Close()
	for n := 4; n <= 6; n++ {
		publish(n) // while the client has no node
	}

	srvB, hsB := startServerAt(t, redisNodeConfig(t, r), addr)
	again := p.expect("reconnect", is("s", "connect", ""))
	if again["recovered"] != true {
		t.Fatalf("reconnect: %v, want recovered", again)
	}
	for n := 4; n <= 6; n++ {
		ev := p.expect("missed item", is("s", "event", "item"))
		if ev["args"].([]any)[0] != float64(n) {
			t.Fatalf("missed item %d: %v", n, ev)
		}
	}
	publish(7)
	if ev := p.expect("live item after recovery", is("s", "event", "item")); ev["args"].([]any)[0] != float64(7) {
		t.Fatalf("item 7: %v", ev)
	}
	// What was sent to the user while it was away is in no history: the
	// resume said so.
	expectSioGap(t, p, "user:rita")

	// A room without history: what was published to it while the client
	// was away is gone, so the client is not recovered and is told.
	p.call("s", "join plain", "herald:join", map[string]any{"room": "plain"})
	go func() { _ = srvB.Shutdown(ctx) }()
	p.expect("disconnect again", is("s", "disconnect", ""))
	waitFor(t, 10*time.Second, "node b down", func() bool { return srvB.Connections() == 0 })
	hsB.Close()
	if _, err := other.Publish(context.Background(), "plain", "chat", "while away"); err != nil {
		t.Fatal(err)
	}
	startServerAt(t, redisNodeConfig(t, r), addr)
	if third := p.expect("reconnect again", is("s", "connect", "")); third["recovered"] != false {
		t.Fatalf("reconnect with a room without history: %v, want not recovered", third)
	}
	expectSioGap(t, p, "plain")
	expectSioGap(t, p, "user:rita")
}

// expectSioGap waits for the herald:gap event of room.
func expectSioGap(t *testing.T, p *sioPeer, room string) {
	t.Helper()
	p.expect("herald:gap "+room, func(m map[string]any) bool {
		if !is("s", "event", "herald:gap")(m) {
			return false
		}
		args, _ := m["args"].([]any)
		g, _ := args[0].(map[string]any)
		return len(args) == 1 && g["room"] == room
	})
}
