package herald_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	redisbroker "github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/internal/testserver"
)

// historyServer runs a server whose rooms "h:*" keep history of size.
func historyServer(t testing.TB, size int) *testServer {
	t.Helper()
	return startServer(t, herald.Config{History: []herald.HistoryRule{{Pattern: "h:*", Size: size}}})
}

// roomEvent is what a test keeps of an event.
type roomEvent struct {
	n      int // the publisher's sequence number (data)
	offset uint64
	epoch  string
}

// events reads frames until cond holds on the events of room seen so
// far, and returns them; replies and errors are returned as others.
func (w *wsClient) eventsUntil(room string, timeout time.Duration, cond func([]roomEvent) bool) (evs []roomEvent, others []map[string]any) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(evs) {
		m, err := w.tryRead(time.Until(deadline))
		if err != nil {
			w.t.Fatalf("waiting for events of %s (%d so far): %v", room, len(evs), err)
		}
		if m["type"] != "event" || m["room"] != room {
			others = append(others, m)
			continue
		}
		evs = append(evs, roomEvent{n: int(m["data"].(float64)), offset: uint64(m["offset"].(float64)), epoch: str(m["epoch"])})
	}
	return evs, others
}

func TestPublishReplyCarriesOffsetAndEpoch(t *testing.T) {
	t.Parallel()
	ts := historyServer(t, 100)
	c := dial(t, ts.URL)
	r := c.request(map[string]any{"type": "join", "id": 1, "room": "h:a"})
	data := r["data"].(map[string]any)
	if data["room"] != "h:a" || str(data["epoch"]) == "" {
		t.Fatalf("join reply of a history room: %v", r)
	}
	var epoch string
	for i := 1; i <= 3; i++ {
		r := c.request(map[string]any{"type": "publish", "id": fmt.Sprint("p", i), "room": "h:a", "event": "e", "data": i})
		d := r["data"].(map[string]any)
		if d["offset"] != float64(i) || str(d["epoch"]) == "" || str(d["msgId"]) == "" {
			t.Fatalf("publish %d reply: %v", i, r)
		}
		epoch = str(d["epoch"])
	}
	code, body := apiPublish(t, ts, testAPIKey, `{"room":"h:a","event":"e","data":4}`)
	if code != http.StatusOK || body["offset"] != float64(4) || body["epoch"] != epoch {
		t.Fatalf("API publish: %d %v", code, body)
	}
	// A room without history answers as before.
	c.join("plain")
	r = c.request(map[string]any{"type": "publish", "id": "p9", "room": "plain", "event": "e"})
	if d := r["data"].(map[string]any); d["offset"] != nil || d["epoch"] != nil {
		t.Fatalf("publish to a room without history: %v", r)
	}
}

func TestIdempotentPublish(t *testing.T) {
	t.Parallel()
	ts := historyServer(t, 100)
	sub := dial(t, ts.URL)
	sub.join("h:idem")
	pub := dial(t, ts.URL)
	pub.join("h:idem")

	first := pub.request(map[string]any{"type": "publish", "id": 1, "room": "h:idem", "event": "e", "data": 1, "idempotencyKey": "k-1"})
	again := pub.request(map[string]any{"type": "publish", "id": 2, "room": "h:idem", "event": "e", "data": 1, "idempotencyKey": "k-1"})
	if fmt.Sprint(first["data"]) != fmt.Sprint(again["data"]) {
		t.Fatalf("retry with the same key got another reply: %v then %v", first, again)
	}
	// Through the API, by header and by body: one key space for both.
	for i, h := range []string{"Idempotency-Key", ""} {
		body := `{"room":"h:idem","event":"e","data":2,"idempotencyKey":"api-1"}`
		req, _ := http.NewRequest("POST", ts.HTTP.URL+"/api/v1/publish", strings.NewReader(body))
		if h != "" {
			req, _ = http.NewRequest("POST", ts.HTTP.URL+"/api/v1/publish", strings.NewReader(`{"room":"h:idem","event":"e","data":2}`))
			req.Header.Set(h, "api-1")
		}
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if resp.StatusCode != 200 || got["offset"] != float64(2) {
			t.Fatalf("API publish %d: %d %v", i, resp.StatusCode, got)
		}
	}
	// A user's key does not collide with another's or with the API's.
	other := dial(t, ts.URL, withHeader("X-Client-Id", "other"))
	other.join("h:idem")
	r := other.request(map[string]any{"type": "publish", "id": 3, "room": "h:idem", "event": "e", "data": 3, "idempotencyKey": "k-1"})
	if r["data"].(map[string]any)["offset"] != float64(3) {
		t.Fatalf("another user's key k-1 was taken for a repeat: %v", r)
	}
	evs, _ := sub.eventsUntil("h:idem", 5*time.Second, func(e []roomEvent) bool { return len(e) >= 3 })
	if _, err := sub.tryRead(200 * time.Millisecond); err != errTimeout {
		t.Fatalf("a repeated publish was delivered again (got %v, %v after %v)", evs, err, evs)
	}
	for i, e := range evs {
		if e.n != i+1 || e.offset != uint64(i+1) {
			t.Fatalf("events %v", evs)
		}
	}
	bad := pub.request(map[string]any{"type": "publish", "id": 4, "room": "h:idem", "event": "e", "idempotencyKey": "has space"})
	if bad["code"] != "bad_request" {
		t.Fatalf("invalid key: %v", bad)
	}
}

// TestRecoverySeamExactlyOnce reconnects a client while a publisher keeps
// publishing: what the client gets on its second connection starts right
// after the last event of its first, has every message once and in
// order, whatever was published while the replay ran.
func TestRecoverySeamExactlyOnce(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"memory", "redis"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			cfg := herald.Config{History: []herald.HistoryRule{{Pattern: "h:*", Size: 3000}}}
			if engine == "redis" {
				// Redis stores a message before it delivers it, in a
				// separate step: history may hold what the node has
				// not delivered yet when the replay reads it.
				rs := testserver.StartRedis(t)
				b, err := redisbroker.New(redisbroker.Config{URL: rs.URL(), Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				cfg.Broker = b
			}
			testRecoverySeam(t, startServer(t, cfg))
		})
	}
}

func testRecoverySeam(t *testing.T, ts *testServer) {
	const total = 3000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	first := dial(t, ts.URL)
	first.join("h:seam")
	var wg sync.WaitGroup
	var published atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total && ctx.Err() == nil; i++ {
			if _, err := ts.Publish(ctx, "h:seam", "n", i); err != nil {
				t.Errorf("publish %d: %v", i, err)
				return
			}
			published.Store(int64(i))
			if i%5 == 0 {
				// Paced, so that the publisher is still at work while the
				// replay runs.
				time.Sleep(time.Millisecond)
			}
		}
	}()
	got, _ := first.eventsUntil("h:seam", 10*time.Second, func(e []roomEvent) bool { return len(e) >= 300 })
	_ = first.c.CloseNow()
	last := got[len(got)-1]
	// Away long enough for a replay of many pages.
	waitFor(t, 10*time.Second, "the publisher to get ahead", func() bool { return published.Load() >= 1500 })
	if published.Load() == total {
		t.Fatal("the publisher finished before the replay started: the test shows nothing")
	}

	second := dial(t, ts.URL)
	second.send(map[string]any{"type": "join", "id": "r", "room": "h:seam", "offset": last.offset, "epoch": last.epoch})
	more, others := second.eventsUntil("h:seam", 30*time.Second, func(e []roomEvent) bool {
		return len(e) > 0 && e[len(e)-1].n >= total
	})
	wg.Wait()
	if len(others) != 1 || others[0]["type"] != "reply" || others[0]["data"].(map[string]any)["recovered"] != true {
		t.Fatalf("want one reply with recovered true, got %v", others)
	}
	all := append(got, more...)
	for i, e := range all {
		if e.n != i+1 {
			t.Fatalf("event %d is message %d (first connection %d events, replayed and live %d): lost, repeated or out of order",
				i, e.n, len(got), len(more))
		}
	}
	if _, err := second.tryRead(100 * time.Millisecond); err != errTimeout {
		t.Fatalf("more after the last message: %v", err)
	}
	if v := metricValue(t, ts, `herald_recoveries_total{result="recovered"}`); v != 1 {
		t.Fatalf("herald_recoveries_total recovered = %v", v)
	}
}

func TestRecoveryUnrecoverable(t *testing.T) {
	t.Parallel()
	ts := historyServer(t, 10)
	c := dial(t, ts.URL)
	r := c.request(map[string]any{"type": "join", "id": 1, "room": "h:small"})
	epoch := str(r["data"].(map[string]any)["epoch"])
	for i := 1; i <= 30; i++ {
		if _, err := ts.Publish(context.Background(), "h:small", "n", i); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		offset    int
		epoch     string
		recovered bool
	}{
		{"trimmed", 5, epoch, false},
		{"other epoch", 25, "not-" + epoch, false},
		{"within history", 25, epoch, true},
	}
	cur := 30 // the room's offset; each case publishes one more
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			replayed := 0
			if tt.recovered {
				replayed = cur - tt.offset
			}
			c := dial(t, ts.URL)
			c.send(map[string]any{"type": "join", "id": "j", "room": "h:small", "offset": tt.offset, "epoch": tt.epoch})
			var evs []roomEvent
			if replayed > 0 {
				evs, _ = c.eventsUntil("h:small", 5*time.Second, func(e []roomEvent) bool { return len(e) >= replayed })
			}
			reply := c.read()
			d, _ := reply["data"].(map[string]any)
			if reply["type"] != "reply" || d["recovered"] != tt.recovered || d["offset"] != float64(cur) || d["epoch"] != epoch {
				t.Fatalf("reply %v", reply)
			}
			for i, e := range evs {
				if e.n != tt.offset+1+i {
					t.Fatalf("replayed %v", evs)
				}
			}
			// Live delivery follows, with nothing of the gap.
			cur++
			if _, err := ts.Publish(context.Background(), "h:small", "n", cur); err != nil {
				t.Fatal(err)
			}
			if live, _ := c.eventsUntil("h:small", 5*time.Second, func(e []roomEvent) bool { return len(e) > 0 }); live[0].n != cur {
				t.Fatalf("after the reply: %v", live)
			}
		})
	}
	// A room that keeps no history cannot fill a gap either.
	c2 := dial(t, ts.URL)
	r = c2.request(map[string]any{"type": "join", "id": 2, "room": "plain", "offset": 3, "epoch": "x"})
	if r["data"].(map[string]any)["recovered"] != false {
		t.Fatalf("positioned join of a room without history: %v", r)
	}
}

// TestResumeWithRecoverLeavesHistoryRoomsToTheClient: a resume that says
// it recovers restores rooms without history and leaves those with
// history for the client's positioned join.
func TestResumeWithRecoverLeavesHistoryRoomsToTheClient(t *testing.T) {
	t.Parallel()
	ts := historyServer(t, 100)
	c := dial(t, ts.URL, withHeader("X-Client-Id", "rec"))
	c.join("h:r")
	c.join("plain")
	sid, tok := str(c.welcome["sessionId"]), str(c.welcome["resumeToken"])
	_ = c.c.CloseNow()
	waitFor(t, 5*time.Second, "the connection to go", func() bool { return ts.Connections() == 0 })

	r := dial(t, ts.URL, withHeader("X-Client-Id", "rec"), withHeader("X-Herald-Session-Id", sid),
		withHeader("X-Herald-Resume-Token", tok), withHeader("X-Herald-Recover", "1"))
	if r.welcome["resumed"] != true || fmt.Sprint(r.welcome["rooms"]) != "[plain]" {
		t.Fatalf("welcome %v", r.welcome)
	}
}

// TestResumeTellsOfWhatItMayHaveMissed: what was published while a client
// was away, to a room without history or to its user, is not sent to the
// session that resumes (nothing held it): the resume tells the client with
// a gap frame for each such room, never a quiet gap. A room with history
// that the client recovers gets its replay instead, and no gap frame.
func TestResumeTellsOfWhatItMayHaveMissed(t *testing.T) {
	t.Parallel()
	ts := historyServer(t, 100)
	c := dial(t, ts.URL, withHeader("X-Client-Id", "away"))
	jr := c.request(map[string]any{"type": "join", "id": 1, "room": "h:r"})
	pos, _ := jr["data"].(map[string]any)
	if jr["type"] != "reply" || pos["epoch"] == nil {
		t.Fatalf("join: %v", jr)
	}
	c.join("plain")
	sid, tok := str(c.welcome["sessionId"]), str(c.welcome["resumeToken"])
	_ = c.c.CloseNow()
	waitFor(t, 5*time.Second, "the connection to go", func() bool { return ts.Connections() == 0 })
	ctx := context.Background()
	for _, room := range []string{"plain", "h:r"} {
		if _, err := ts.Publish(ctx, room, "while-away", room); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.PublishToUser(ctx, "away", "while-away", "dm"); err != nil {
		t.Fatal(err)
	}

	r := dial(t, ts.URL, withHeader("X-Client-Id", "away"), withHeader("X-Herald-Session-Id", sid),
		withHeader("X-Herald-Resume-Token", tok), withHeader("X-Herald-Recover", "1"))
	if r.welcome["resumed"] != true || fmt.Sprint(r.welcome["rooms"]) != "[plain]" {
		t.Fatalf("welcome %v", r.welcome)
	}
	r.expectGaps("plain", "user:away")
	if m, err := r.tryRead(200 * time.Millisecond); err != errTimeout {
		t.Fatalf("after the gap frames: %v", m)
	}
	if v := metricValue(t, ts, "herald_gap_frames_total"); v != 2 {
		t.Fatalf("herald_gap_frames_total = %v", v)
	}
	// The room with history: its positioned join replays what was missed.
	r.send(map[string]any{"type": "join", "id": 2, "room": "h:r", "offset": 0, "epoch": pos["epoch"]})
	if m := r.expect("event"); m["room"] != "h:r" || m["data"] != "h:r" {
		t.Fatalf("replay: %v", m)
	}
	if m := r.expect("reply"); fmt.Sprint(m["data"].(map[string]any)["recovered"]) != "true" {
		t.Fatalf("join reply: %v", m)
	}
}

func TestGapFrame(t *testing.T) {
	t.Parallel()
	ts := historyServer(t, 100)
	a := dial(t, ts.URL)
	a.join("plain")
	b := dial(t, ts.URL)
	b.join("other")
	ts.InjectGap([]string{"plain"})
	if m := a.expect("gap"); m["room"] != "plain" {
		t.Fatalf("gap frame %v", m)
	}
	if m, err := b.tryRead(100 * time.Millisecond); err != errTimeout {
		t.Fatalf("a member of another room got %v", m)
	}
}

// TestReplayPacedByTheSendQueue: a replay larger than the connection's
// send queue, in messages and in bytes, is paced by it: the client that
// reads gets all of it and is not closed as a slow consumer.
func TestReplayPacedByTheSendQueue(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{
		History:        []herald.HistoryRule{{Pattern: "h:*", Size: 1000}},
		SendQueueSize:  16,
		SendQueueBytes: 64 << 10,
	})
	c := dial(t, ts.URL)
	r := c.request(map[string]any{"type": "join", "id": 1, "room": "h:big"})
	epoch := str(r["data"].(map[string]any)["epoch"])
	_ = c.c.CloseNow()
	pad := strings.Repeat("x", 8<<10)
	const n = 200 // 1.6 MB: 25 times the queue's bytes, 12 times its messages
	for i := 1; i <= n; i++ {
		if _, err := ts.Publish(context.Background(), "h:big", "n", map[string]any{"i": i, "pad": pad}); err != nil {
			t.Fatal(err)
		}
	}
	c2 := dial(t, ts.URL)
	c2.send(map[string]any{"type": "join", "id": "r", "room": "h:big", "offset": 0, "epoch": epoch})
	for i := 1; i <= n; i++ {
		m := c2.read()
		if m["type"] != "event" || m["offset"] != float64(i) {
			t.Fatalf("replayed message %d: %v", i, str(m["type"])+" "+fmt.Sprint(m["offset"], m["code"], m["reason"]))
		}
	}
	if m := c2.read(); m["type"] != "reply" || m["data"].(map[string]any)["replayed"] != float64(n) {
		t.Fatalf("after the replay: %v", m)
	}
}

// Clients that may publish to rooms a history pattern matches can make
// rooms without end, each keeping its ring; the in-memory engine's
// history is now bounded in bytes (MaxNodeHistoryBytes). Over it the
// stalest rooms are forgotten, counted in
// {limit="node_history_bytes"}, and a member that comes back to a
// forgotten room with its position is answered recovered false (it is
// told, never replayed as if it missed nothing).
func TestHistoryBoundForgetsRoomsAndSaysSo(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{
		History:             []herald.HistoryRule{{Pattern: "h:*", Size: 100}},
		MaxNodeHistoryBytes: 256 << 10,
	})
	member := dial(t, ts.URL)
	member.join("h:first")
	if _, err := ts.Publish(context.Background(), "h:first", "n", 1); err != nil {
		t.Fatal(err)
	}
	got, _ := member.eventsUntil("h:first", 5*time.Second, func(e []roomEvent) bool { return len(e) == 1 })
	_ = member.c.CloseNow()

	// Publishers fill the node with rooms of their making (clients
	// would join each room and publish; the API takes the same path).
	pad := strings.Repeat("x", 2000)
	for i := range 400 {
		if _, err := ts.Publish(context.Background(), fmt.Sprintf("h:junk-%d", i), "e", pad); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="node_history_bytes"}`); v < 100 {
		t.Fatalf(`herald_limit_rejections_total{limit="node_history_bytes"} = %v, want most of 400 rooms forgotten`, v)
	}

	back := dial(t, ts.URL)
	r := back.request(map[string]any{"type": "join", "id": "j", "room": "h:first", "offset": got[0].offset, "epoch": got[0].epoch})
	if d, _ := r["data"].(map[string]any); r["type"] != "reply" || d["recovered"] != false {
		t.Fatalf("join of a forgotten room from its position: %v, want recovered false", r)
	}
}
