package herald_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testserver"
)

// TestSocketIORecoveryAfterRedisRollback: TestRecoveryAfterRedisRollback
// of package client for a Socket.IO client (socket.io-client, connection
// state recovery). Redis comes back from a snapshot taken at offset 30
// of 60 while the client's node is down, and 40 new messages take
// offsets 31 to 70 again in the same epoch. The client reconnects to
// the node, which has no member of the room, with the offset of its
// last message (60). Before the offset carried that message's msgId and
// the history checked it, the node replayed 61 to 70 and the client saw
// itself recovered: 30 answered messages lost without a word.
func TestSocketIORecoveryAfterRedisRollback(t *testing.T) {
	dir := sioNodeDir(t)
	r := testserver.StartRedis(t)
	srvA, hsA := startServerAt(t, redisNodeConfig(t, r), "")
	other := startServer(t, redisNodeConfig(t, r))
	addr := hsA.Listener.Addr().String()

	p := startPeer(t, dir)
	p.connect("s", hsA.URL, map[string]any{"query": map[string]any{"clientId": "rita"}})
	p.call("s", "join", "herald:join", map[string]any{"room": "h:feed"})
	var answered []int
	publish := func(from, to int) {
		t.Helper()
		for n := from; n <= to; n++ {
			// Retried while the node's Redis connection comes back.
			waitFor(t, 10*time.Second, "publish "+strconv.Itoa(n)+" answered", func() bool {
				_, err := other.Publish(context.Background(), "h:feed", "item", n)
				return err == nil
			})
			answered = append(answered, n)
		}
	}
	got := map[int]bool{}
	item := func(what string) {
		t.Helper()
		ev := p.expect(what, is("s", "event", "item"))
		n, _ := ev["args"].([]any)[0].(float64)
		got[int(n)] = true
	}
	publish(1, 30)
	if _, err := r.Command("SAVE"); err != nil {
		t.Fatal(err)
	}
	publish(31, 60)
	for range 60 {
		item("live item")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _ = srvA.Shutdown(ctx) }()
	p.expect("disconnect", is("s", "disconnect", ""))
	waitFor(t, 10*time.Second, "node a down", func() bool { return srvA.Connections() == 0 })
	hsA.Close()
	r.RestartFromSnapshot() // the room is back at offset 30
	publish(61, 100)        // offsets 31 to 70 again, in the same epoch

	startServerAt(t, redisNodeConfig(t, r), addr)
	again := p.expect("reconnect", is("s", "connect", ""))
	publish(101, 105)
	told := again["recovered"] == false
	for !got[105] {
		ev := p.expect("an item or a gap", func(m map[string]any) bool {
			return is("s", "event", "item")(m) || is("s", "event", "herald:gap")(m)
		})
		args, _ := ev["args"].([]any)
		if ev["event"] == "herald:gap" {
			if g, _ := args[0].(map[string]any); g["room"] == "h:feed" {
				told = true
			}
			continue
		}
		n, _ := args[0].(float64)
		got[int(n)] = true
	}
	var lost []int
	for _, n := range answered {
		if !got[n] {
			lost = append(lost, n)
		}
	}
	t.Logf("%d of %d answered publishes delivered, %d lost; reconnect %v", len(answered)-len(lost), len(answered), len(lost), again)
	if len(lost) > 0 && !told {
		t.Fatalf("%d answered publishes lost without a word: %v", len(lost), lost)
	}
}
