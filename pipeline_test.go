package herald_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	redisbroker "github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/internal/testserver"
)

// feedOverRedis runs a Herald server on a Redis of its own with a
// publisher and a subscriber in the room "feed".
func feedOverRedis(t *testing.T) (r *testserver.Redis, ts *testServer, pub, sub *wsClient) {
	t.Helper()
	r = testserver.StartRedis(t)
	ts = startRedisServer(t, r)
	pub, sub = dial(t, ts.URL), dial(t, ts.URL)
	pub.join("feed")
	sub.join("feed")
	return r, ts, pub, sub
}

// startRedisServer runs a Herald server on a Redis broker of its own.
func startRedisServer(t *testing.T, r *testserver.Redis) *testServer {
	t.Helper()
	b, err := redisbroker.New(redisbroker.Config{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, herald.Config{Broker: b})
}

// pauseWrites makes Redis hold every PUBLISH until unpauseWrites; pings,
// and so the broker's health checks, are still answered.
func pauseWrites(t *testing.T, r *testserver.Redis) {
	t.Helper()
	if _, err := r.Command("CLIENT", "PAUSE", "20000", "WRITE"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = r.Command("CLIENT", "UNPAUSE") })
}

func unpauseWrites(t *testing.T, r *testserver.Redis) {
	t.Helper()
	if _, err := r.Command("CLIENT", "UNPAUSE"); err != nil {
		t.Fatal(err)
	}
}

const publishesRead = `herald_messages_received_total{type="publish"}`

// publishN publishes n events to "feed" carrying n = 0, 1, … without
// waiting for replies.
func publishN(pub *wsClient, n int) {
	for i := range n {
		pub.send(map[string]any{"type": "publish", "room": "feed", "event": "tick", "data": map[string]any{"n": i}})
	}
}

// nextNonMessage returns the next frame that is not a room message (an event).
func nextNonMessage(c *wsClient) map[string]any {
	c.t.Helper()
	for {
		if m := c.read(); m["type"] != "event" {
			return m
		}
	}
}

// expectMessages reads n room messages and checks that they carry n
// from first on, in order.
func expectMessages(t *testing.T, c *wsClient, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		m := c.expect("event")
		data, _ := m["data"].(map[string]any)
		if got := fmt.Sprint(data["n"]); got != fmt.Sprint(i) {
			t.Fatalf("message %d carries n=%s: %v", i, got, m)
		}
	}
}

// A connection's publications do not wait for each other's broker round
// trip: while Redis holds the first, the node goes on reading the
// others. Replies, errors and later requests still come in request order,
// and the messages reach the room in publish order.
func TestPublishesPipelineOverRedis(t *testing.T) {
	r, ts, pub, sub := feedOverRedis(t)

	// Each round: n publications while Redis holds them, then a request
	// that must be answered after them.
	const n = 10
	round := func(first int, last map[string]any, read float64, want func(m map[string]any) bool) {
		t.Helper()
		pauseWrites(t, r)
		for i := first; i < first+n; i++ {
			pub.send(map[string]any{"type": "publish", "id": fmt.Sprintf("p%d", i), "room": "feed", "event": "tick", "data": map[string]any{"n": i}})
		}
		pub.send(last)
		// Without a pipeline the node reads no further than the first
		// publication until Redis answers it.
		waitFor(t, 5*time.Second, "every publication read while Redis holds the first", func() bool {
			return metricValue(t, ts, publishesRead) == read
		})
		for {
			m, err := pub.tryRead(100 * time.Millisecond)
			if err != nil {
				break
			}
			if m["type"] != "event" { // the last round's may still come
				t.Fatalf("an answer before Redis confirmed anything: %v", m)
			}
		}
		unpauseWrites(t, r)
		for i := first; i < first+n; i++ {
			m := nextNonMessage(pub)
			if m["type"] != "reply" || m["id"] != fmt.Sprintf("p%d", i) {
				t.Fatalf("reply %d: got %v", i, m)
			}
			if data, _ := m["data"].(map[string]any); data["msgId"] == "" || data["msgId"] == nil {
				t.Fatalf("reply %d without a msgId: %v", i, m)
			}
		}
		if m := nextNonMessage(pub); !want(m) {
			t.Fatalf("after the publications: got %v, want the answer to %v", m, last)
		}
	}
	// Another request waits for the publications before it.
	round(0, map[string]any{"type": "ping", "id": "ping"}, n, func(m map[string]any) bool {
		return m["type"] == "reply" && m["id"] == "ping"
	})
	// So does a publication refused before it reaches the broker.
	round(n, map[string]any{"type": "publish", "id": "not-joined", "room": "elsewhere", "event": "tick"}, 2*n+1, func(m map[string]any) bool {
		return m["type"] == "error" && m["id"] == "not-joined" && m["code"] == "not_joined"
	})
	expectMessages(t, sub, 0, 2*n)
}

// At maxPipelinedPublishes (128) unconfirmed publications a connection's
// reads wait, so a client cannot queue without bound on the node; what it
// sent is published in order once Redis answers.
func TestPublishPipelineIsBounded(t *testing.T) {
	r, ts, pub, sub := feedOverRedis(t)

	pauseWrites(t, r)
	const n = 200
	publishN(pub, n)
	// 128 unconfirmed, and the 129th read and waiting for room.
	waitFor(t, 5*time.Second, "129 publications read", func() bool {
		return metricValue(t, ts, publishesRead) >= 129
	})
	time.Sleep(200 * time.Millisecond)
	if got := metricValue(t, ts, publishesRead); got != 129 {
		t.Fatalf("%v publications read while Redis held them, want 129", got)
	}
	unpauseWrites(t, r)
	expectMessages(t, sub, 0, n)
}

// Publications a client sent before it went away are still published.
func TestPipelinedPublishesOutliveTheirConnection(t *testing.T) {
	r, ts, pub, sub := feedOverRedis(t)

	pauseWrites(t, r)
	const n = 5
	publishN(pub, n)
	waitFor(t, 5*time.Second, "every publication read", func() bool {
		return metricValue(t, ts, publishesRead) == n
	})
	pub.c.CloseNow()
	unpauseWrites(t, r)
	expectMessages(t, sub, 0, n)
}
