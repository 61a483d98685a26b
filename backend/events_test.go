package backend_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/backend"
)

// eventSink collects the events posted to a fake backend, by id.
type eventSink struct {
	mu     sync.Mutex
	events []backend.Event
}

func (s *eventSink) answer(hook string, body map[string]any) any {
	if hook != "events" {
		return map[string]any{"allow": true}
	}
	b, _ := json.Marshal(body["events"])
	var evs []backend.Event
	_ = json.Unmarshal(b, &evs)
	s.mu.Lock()
	s.events = append(s.events, evs...)
	s.mu.Unlock()
	return map[string]any{}
}

func (s *eventSink) of(conn string) []backend.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []backend.Event
	seen := map[string]bool{}
	for _, e := range s.events {
		if e.Conn.ConnID == conn && !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out
}

func summary(evs []backend.Event) string {
	var out []string
	for _, e := range evs {
		s := e.Type
		if e.Type == "presence" {
			s += ":" + e.Action + ":" + e.Room
		}
		if e.Type == "disconnected" {
			s += fmt.Sprint(":", e.Code)
		}
		out = append(out, s)
	}
	return fmt.Sprint(out)
}

// TestEvents: a connection's webhooks arrive in order, each with its
// idempotency key, and are posted again until the backend takes them.
func TestEvents(t *testing.T) {
	t.Parallel()
	sink := &eventSink{}
	fb := newFakeBackend(t, sink.answer)
	n := startNode(t, backend.Config{URL: fb.srv.URL, Hooks: []string{"events"}, Retries: -1, BreakerFailures: 1000, LeaseTTL: 400 * time.Millisecond})
	fb.mode.Store("500") // the first posts fail: the events wait in the queue
	c := dial(t, n.url, nil)
	connID := fmt.Sprint(c.welcome["connectionId"])
	if m := c.request(map[string]any{"type": "join", "id": "j", "room": "lobby"}); m["type"] != "reply" {
		t.Fatal(m)
	}
	if m := c.request(map[string]any{"type": "leave", "id": "l", "room": "lobby"}); m["type"] != "reply" {
		t.Fatal(m)
	}
	if m := c.request(map[string]any{"type": "join", "id": "j2", "room": "lobby"}); m["type"] != "reply" {
		t.Fatal(m)
	}
	_ = c.c.Close(websocket.StatusNormalClosure, "bye")
	waitFor(t, 10*time.Second, "failed posts", func() bool { return len(fb.requests("events")) >= 2 })
	waitFor(t, 10*time.Second, "six events queued", func() bool {
		return metric(t, n.reg, "herald_backend_events_queued", nil) == 6
	})
	fb.mode.Store("")
	want := "[connected presence:join:lobby presence:leave:lobby presence:join:lobby presence:leave:lobby disconnected:1000]"
	waitFor(t, 15*time.Second, "events delivered", func() bool { return len(sink.of(connID)) == 6 })
	evs := sink.of(connID)
	if got := summary(evs); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	if evs[0].ID != connID+"/connected" || evs[5].ID != connID+"/disconnected" || evs[5].Reason != "bye" || evs[1].ID == evs[3].ID {
		t.Fatalf("ids or reason: %+v", evs)
	}
	// Counted once the post returned, which is after the backend has them.
	waitFor(t, 10*time.Second, "six events counted as sent", func() bool {
		return metric(t, n.reg, "herald_backend_events_sent_total", nil) >= 6
	})
	waitFor(t, 10*time.Second, "an empty queue", func() bool {
		return metric(t, n.reg, "herald_backend_events_queued", nil) == 0
	})
}

// TestEventsGivenUp: a full queue gives events up, counted.
func TestEventsGivenUp(t *testing.T) {
	t.Parallel()
	sink := &eventSink{}
	fb := newFakeBackend(t, sink.answer)
	fb.mode.Store("slow")
	n := startNode(t, backend.Config{URL: fb.srv.URL, Hooks: []string{"events"}, EventsQueue: 1, Timeout: 5 * time.Second})
	for range 3 {
		dial(t, n.url, nil)
	}
	waitFor(t, 5*time.Second, "events given up", func() bool {
		return metric(t, n.reg, "herald_backend_events_given_up_total", map[string]string{"reason": "queue_full"}) >= 2
	})
	fb.mode.Store("")
	_ = context.Background
}

// The memory queue is bounded in bytes as well as in events: each event
// carries its connection's data, so a count alone does not bound what it
// holds. An event that would take it over is refused with ErrQueueFull;
// what the backend took (Ack) makes room again.
func TestMemoryQueueBoundedInBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q := backend.NewMemoryQueue(1000)
	q.LimitBytes(1000)
	ev := func(n int) backend.QueuedEvent { return backend.QueuedEvent{Body: make([]byte, n), ConnID: "c"} }
	for i, size := range []int{400, 400} {
		if err := q.Push(ctx, ev(size)); err != nil {
			t.Fatalf("push %d (%d B): %v", i, size, err)
		}
	}
	if err := q.Push(ctx, ev(300)); !errors.Is(err, backend.ErrQueueFull) {
		t.Fatalf("1,100 B over a 1,000 B bound: %v, want ErrQueueFull", err)
	}
	if err := q.Push(ctx, ev(200)); err != nil {
		t.Fatalf("1,000 B, at the bound: %v", err)
	}
	if n, _ := q.Len(ctx); n != 3 {
		t.Fatalf("%d events held, want 3", n)
	}
	if err := q.Ack(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := q.Push(ctx, ev(800)); err != nil {
		t.Fatalf("after the backend took 800 B: %v", err)
	}
	if err := q.Push(ctx, ev(1)); !errors.Is(err, backend.ErrQueueFull) {
		t.Fatalf("one byte over: %v, want ErrQueueFull", err)
	}
}
