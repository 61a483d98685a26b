package herald_test

import (
	"fmt"
	"strings"
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

// pauseWrites makes Redis hold every PUBLISH until unpauseWrites. The
// broker's health pings wait behind the held publications: a pause longer
// than a ping's timeout (1 s) marks the broker down.
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

// startRedisServerWith runs a Herald server configured by cfg on a Redis
// broker of its own. BackendTimeout defaults to a minute, so that a
// publication Redis holds while a test looks at the node is not answered
// publish_timeout on a slow machine.
func startRedisServerWith(t *testing.T, r *testserver.Redis, cfg herald.Config) *testServer {
	t.Helper()
	b, err := redisbroker.New(redisbroker.Config{URL: r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Broker = b
	if cfg.BackendTimeout == 0 {
		cfg.BackendTimeout = time.Minute
	}
	return startServer(t, cfg)
}

// bigPublish is a publication to "feed" of about 60 KB carrying n.
func bigPublish(id string, n int) map[string]any {
	return map[string]any{"type": "publish", "id": id, "room": "feed", "event": "tick",
		"data": map[string]any{"n": n, "pad": strings.Repeat("x", 60_000)}}
}

const publishQueueBytes = "herald_publish_queue_bytes"

// A connection's unconfirmed publications are bounded in bytes too (1
// MiB), not only in number: with publications of 60 KB its reads wait
// after about 17 of them, far below the 128 the count allows, and what it
// sent is published in order once Redis answers. The node's gauge shows
// what the pipeline holds.
func TestPublishPipelineIsBoundedInBytes(t *testing.T) {
	r := testserver.StartRedis(t)
	ts := startRedisServerWith(t, r, herald.Config{})
	pub, sub := dial(t, ts.URL), dial(t, ts.URL)
	pub.join("feed")
	sub.join("feed")

	pauseWrites(t, r)
	const n = 40
	for i := range n {
		pub.send(bigPublish(fmt.Sprintf("p%d", i), i))
	}
	const bound = 1 << 20
	waitFor(t, 30*time.Second, "the pipeline filled up to its byte bound", func() bool {
		return metricValue(t, ts, publishQueueBytes) > bound-61_000
	})
	time.Sleep(200 * time.Millisecond) // nothing more is read meanwhile
	read, held := metricValue(t, ts, publishesRead), metricValue(t, ts, publishQueueBytes)
	t.Logf("%v publications read, %v bytes held while Redis held them", read, held)
	if held > bound {
		t.Fatalf("the pipeline holds %v bytes, over its bound of %d", held, bound)
	}
	if read >= n || read > bound/60_000+1 {
		t.Fatalf("%v publications of 60 KB read while Redis held them: the byte bound did not stop the reads", read)
	}
	unpauseWrites(t, r)
	var sent []int
	for i := range n {
		m := nextNonMessage(pub)
		if m["id"] != fmt.Sprintf("p%d", i) {
			t.Fatalf("answer %d: got %v", i, m)
		}
		if published(t, m) {
			sent = append(sent, i)
		}
	}
	expectPublished(t, sub, sent)
	waitFor(t, 5*time.Second, "the gauge back at 0", func() bool { return metricValue(t, ts, publishQueueBytes) == 0 })
}

// published reports whether m answers a publication as published. While
// Redis holds writes its health pings wait behind them, so a pause longer
// than a ping's timeout (a loaded machine) marks the broker down: the
// publications then sent are refused broker_unavailable, which is an
// answer too, never a silent loss.
func published(t *testing.T, m map[string]any) bool {
	t.Helper()
	switch {
	case m["type"] == "reply":
		return true
	case m["type"] == "error" && m["code"] == "broker_unavailable":
		return false
	}
	t.Fatalf("not an answer to a publication: %v", m)
	return false
}

// expectPublished reads the room messages carrying each n of sent, in
// order, and then nothing else.
func expectPublished(t *testing.T, c *wsClient, sent []int) {
	t.Helper()
	for _, want := range sent {
		m := c.expect("event")
		if data, _ := m["data"].(map[string]any); fmt.Sprint(data["n"]) != fmt.Sprint(want) {
			t.Fatalf("got message n=%v, want %d", data["n"], want)
		}
	}
	if m, err := c.tryRead(300 * time.Millisecond); err == nil {
		t.Fatalf("a publication not confirmed was delivered: %v", m)
	}
}

// All connections' unconfirmed publications together are bounded by
// MaxNodePublishBytes: a publication that arrives while the node holds
// that much is answered overloaded (after the publications its
// connection sent before it) and not published; another connection's is
// refused at once; counted under limit="node_publish_bytes". The others
// are published in order.
func TestNodePublishBytesBound(t *testing.T) {
	r := testserver.StartRedis(t)
	ts := startRedisServerWith(t, r, herald.Config{MaxNodePublishBytes: 256 << 10})
	pub, other, sub := dial(t, ts.URL), dial(t, ts.URL), dial(t, ts.URL)
	for _, c := range []*wsClient{pub, other, sub} {
		c.join("feed")
	}
	const refused = `herald_limit_rejections_total{limit="node_publish_bytes"}`

	pauseWrites(t, r)
	const n = 10
	for i := range n {
		pub.send(bigPublish(fmt.Sprintf("p%d", i), i))
	}
	waitFor(t, 30*time.Second, "a publication refused at the node's bound", func() bool {
		return metricValue(t, ts, refused) == 1
	})
	if held := metricValue(t, ts, publishQueueBytes); held < 256<<10 || held > 256<<10+61_000 {
		t.Fatalf("the node holds %v bytes of publications; its bound is %d (passed by one publication at most)", held, 256<<10)
	}
	// Another connection, with nothing pending, is told at once.
	if m := other.request(bigPublish("o1", -1)); m["type"] != "error" || m["code"] != "overloaded" {
		t.Fatalf("another connection's publication at the node's bound: %v", m)
	}
	unpauseWrites(t, r)

	var sent []int
	errs := 0
	for i := range n {
		m := nextNonMessage(pub)
		if m["id"] != fmt.Sprintf("p%d", i) {
			t.Fatalf("answer %d: got %v", i, m)
		}
		if m["type"] == "error" && m["code"] == "overloaded" {
			if !strings.Contains(str(m["message"]), "not published") {
				t.Fatalf("answer %d: %v", i, m)
			}
			if i == 0 {
				t.Fatal("the first publication refused: the node held nothing")
			}
			errs++
			continue
		}
		if published(t, m) {
			sent = append(sent, i)
		}
	}
	if errs != 1 {
		t.Fatalf("%d publications refused, want the one that came at the bound", errs)
	}
	expectPublished(t, sub, sent) // a refused one is not published
	waitFor(t, 5*time.Second, "the gauge back at 0", func() bool { return metricValue(t, ts, publishQueueBytes) == 0 })
}
