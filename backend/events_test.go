package backend_test

import (
	"context"
	"encoding/json"
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
