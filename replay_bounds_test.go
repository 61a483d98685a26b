package herald_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/memory"
)

// pageLog is the memory engine with the pages a replay reads recorded.
type pageLog struct {
	*memory.Broker
	mu    sync.Mutex
	pages []int // bytes of data of each page read (limit > 0)
	// gate, if set, holds every page read until it is closed; entered
	// is closed when the first one comes. Both under mu.
	gate, entered chan struct{}
	once          sync.Once
}

func (b *pageLog) Since(ctx context.Context, room string, pos broker.Position, limit int) ([]*broker.Message, broker.Position, error) {
	b.mu.Lock()
	gate, entered := b.gate, b.entered
	b.mu.Unlock()
	if limit > 0 && gate != nil {
		b.once.Do(func() { close(entered) })
		<-gate
	}
	msgs, cur, err := b.Broker.Since(ctx, room, pos, limit)
	if limit > 0 {
		n := 0
		for _, m := range msgs {
			n += len(m.Data)
		}
		b.mu.Lock()
		b.pages = append(b.pages, n)
		b.mu.Unlock()
	}
	return msgs, cur, err
}

// historyEpoch returns the epoch of room, joining and leaving it.
func historyEpoch(t *testing.T, ts *testServer, room string) string {
	t.Helper()
	c := dial(t, ts.URL)
	r := c.request(map[string]any{"type": "join", "id": 1, "room": room})
	_ = c.c.CloseNow()
	return str(r["data"].(map[string]any)["epoch"])
}

// A replay reads history in pages that fit MaxReplayBytes: with 100 KiB
// messages and a 300 KiB bound, at most three at a time (two in the
// first page, sized for ReadLimit), not 128; everything still arrives,
// and nothing stays counted in herald_replay_bytes.
func TestReplayPagesBoundedInBytes(t *testing.T) {
	t.Parallel()
	eng := &pageLog{Broker: memory.New()}
	ts := startServer(t, herald.Config{
		Broker:         eng,
		History:        []herald.HistoryRule{{Pattern: "h:*", Size: 100}},
		ReadLimit:      128 << 10,
		MaxReplayBytes: 300 << 10,
	})
	epoch := historyEpoch(t, ts, "h:big")
	pad := strings.Repeat("x", 100<<10)
	const n = 12
	for i := 1; i <= n; i++ {
		if _, err := ts.Publish(context.Background(), "h:big", "n", map[string]any{"i": i, "pad": pad}); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, ts.URL)
	c.send(map[string]any{"type": "join", "id": "r", "room": "h:big", "offset": 0, "epoch": epoch})
	for i := 1; i <= n; i++ {
		if m := c.read(); m["type"] != "event" || m["offset"] != float64(i) {
			t.Fatalf("replayed message %d: %v %v", i, m["type"], m["offset"])
		}
	}
	if m := c.read(); m["type"] != "reply" || m["data"].(map[string]any)["replayed"] != float64(n) {
		t.Fatalf("after the replay: %v", m)
	}
	eng.mu.Lock()
	pages := append([]int(nil), eng.pages...)
	eng.mu.Unlock()
	read := 0
	for _, p := range pages {
		if p > 300<<10 {
			t.Errorf("a page of %d bytes, over the 300 KiB bound: pages %v", p, pages)
		}
		read += p
	}
	if read < n*100<<10 {
		t.Fatalf("pages %v hold less than the %d messages", pages, n)
	}
	waitFor(t, 2*time.Second, "the replay's bytes given back", func() bool {
		return metricValue(t, ts, "herald_replay_bytes") == 0
	})
}

// Past MaxNodeReplayBytes (here held by what stands for other replays) a
// recovering join waits for room, and gets its replay once there is some;
// if none comes in time it is answered overloaded, counted, and may be
// retried.
func TestReplayWaitsForTheNodeBound(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{
		History:            []herald.HistoryRule{{Pattern: "h:*", Size: 100}},
		MaxNodeReplayBytes: 1 << 20,
	})
	epoch := historyEpoch(t, ts, "h:r")
	for i := 1; i <= 3; i++ {
		if _, err := ts.Publish(context.Background(), "h:r", "n", i); err != nil {
			t.Fatal(err)
		}
	}
	recoverJoin := func(c *wsClient) map[string]any {
		t.Helper()
		c.send(map[string]any{"type": "join", "id": "r", "room": "h:r", "offset": 0, "epoch": epoch})
		for {
			if m := c.read(); m["type"] != "event" {
				return m
			}
		}
	}

	// Room comes: the join waits for it, then recovers.
	ts.HoldReplayBytes(1 << 20)
	c := dial(t, ts.URL)
	done := make(chan map[string]any, 1)
	go func() { done <- recoverJoin(c) }()
	waitFor(t, 5*time.Second, "the recovery to wait", func() bool {
		return logCount(t, ts, "recovery waits: the node's history replays hold too much") == 1
	})
	ts.HoldReplayBytes(-(1 << 20))
	if m := <-done; m["type"] != "reply" || m["data"].(map[string]any)["replayed"] != float64(3) {
		t.Fatalf("after the wait: %v", m)
	}

	// No room comes: overloaded.
	ts.SetReplayWait(50 * time.Millisecond)
	ts.HoldReplayBytes(1 << 20)
	c2 := dial(t, ts.URL)
	if m := recoverJoin(c2); m["type"] != "error" || m["code"] != "overloaded" {
		t.Fatalf("with no room: %v, want the error overloaded", m)
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="node_replay_bytes"}`); v != 1 {
		t.Fatalf(`herald_limit_rejections_total{limit="node_replay_bytes"} = %v`, v)
	}
	ts.HoldReplayBytes(-(1 << 20))
	if m := recoverJoin(c2); m["type"] != "reply" || m["data"].(map[string]any)["recovered"] != true {
		t.Fatalf("the join again: %v", m)
	}
	if v := metricValue(t, ts, "herald_replay_bytes"); v != 0 {
		t.Fatalf("herald_replay_bytes = %v after the replays", v)
	}
}

// The live messages a replay's feed holds back while it reads history
// count against MaxReplayBytes and herald_replay_bytes: past the bound
// they are let go (and read from history once the page is done), so the
// client still gets each message once, in order.
func TestReplayHeldBoundedInBytes(t *testing.T) {
	t.Parallel()
	eng := &pageLog{Broker: memory.New()}
	ts := startServer(t, herald.Config{
		Broker:         eng,
		History:        []herald.HistoryRule{{Pattern: "h:*", Size: 100}},
		MaxReplayBytes: 150 << 10,
	})
	epoch := historyEpoch(t, ts, "h:live")
	publish := func(i int) {
		t.Helper()
		if _, err := ts.Publish(context.Background(), "h:live", "n", map[string]any{"i": i, "pad": strings.Repeat("x", 100<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	publish(1)
	gate, entered := make(chan struct{}), make(chan struct{})
	open := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(open) // a failing test does not leave the replay waiting
	eng.mu.Lock()
	eng.gate, eng.entered = gate, entered // the replay's first page waits
	eng.mu.Unlock()
	c := dial(t, ts.URL)
	c.send(map[string]any{"type": "join", "id": "r", "room": "h:live", "offset": 0, "epoch": epoch})
	<-entered  // in the room, reading history
	publish(2) // held back: one message, under the bound
	waitFor(t, 5*time.Second, "the held message counted", func() bool {
		v := metricValue(t, ts, "herald_replay_bytes")
		return v > 100<<10 && v < 150<<10
	})
	publish(3) // two would pass it: both let go
	waitFor(t, 5*time.Second, "the held messages let go", func() bool {
		return metricValue(t, ts, "herald_replay_bytes") == 0
	})
	open()
	for i := 1; i <= 3; i++ {
		if m := c.read(); m["type"] != "event" || m["offset"] != float64(i) {
			t.Fatalf("message %d: %v %v", i, m["type"], m["offset"])
		}
	}
	if m := c.read(); m["type"] != "reply" || m["data"].(map[string]any)["replayed"] != float64(3) {
		t.Fatalf("after the replay: %v", m)
	}
	publish(4)
	if m := c.read(); m["type"] != "event" || m["offset"] != float64(4) {
		t.Fatalf("live after the replay: %v %v", m["type"], m["offset"])
	}
}
