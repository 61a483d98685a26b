package client_test

import (
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	redisbroker "github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/testserver"
)

// recoveries records a client's recovery and gap notes.
type recoveries struct {
	mu    sync.Mutex
	rooms map[string][]bool
	gaps  []string
}

func (r *recoveries) recovery(room string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rooms == nil {
		r.rooms = map[string][]bool{}
	}
	r.rooms[room] = append(r.rooms[room], ok)
}

func (r *recoveries) gap(room string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gaps = append(r.gaps, room)
}

func (r *recoveries) of(room string) []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.rooms[room]...)
}

// TestRecoveryAfterNetworkCut: messages published while the Client is
// cut off reach it after it reconnects, once each and in order, and the
// application hears that the room was recovered.
func TestRecoveryAfterNetworkCut(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{History: []herald.HistoryRule{{Pattern: "h:*", Size: 1000}}})
	p := startProxy(t, "", ts.addr)
	addr := p.addr()
	var st states
	var rec recoveries
	c := dial(t, "ws://"+addr+"/ws", client.WithStateHandler(st.handler),
		client.WithRecoveryHandler(rec.recovery), client.WithGapHandler(rec.gap))
	evs := collect(c)
	ctx := ctxT(t)
	if err := c.Join(ctx, "h:feed"); err != nil {
		t.Fatal(err)
	}
	if off, epoch := c.Position("h:feed"); off != 0 || epoch == "" {
		t.Fatalf("position after the join: %d %q", off, epoch)
	}
	srv := ts.Server()
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			if _, err := srv.Publish(ctx, "h:feed", "n", i); err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(1, 10)
	waitFor(t, 5*time.Second, "the first 10", func() bool { return evs.count() == 10 })

	p.kill()
	waitFor(t, 5*time.Second, "Reconnecting", func() bool { return st.count(client.Reconnecting) == 1 })
	publish(11, 40) // while the Client is away
	startProxy(t, addr, ts.addr)
	waitFor(t, 5*time.Second, "reconnected", func() bool { return st.count(client.Connected) == 2 })
	publish(41, 50)
	waitFor(t, 5*time.Second, "all 50", func() bool { return evs.count() >= 50 })
	time.Sleep(50 * time.Millisecond) // anything extra would show now
	evs.mu.Lock()
	got := append([]client.Event(nil), evs.evs...)
	evs.mu.Unlock()
	if len(got) != 50 {
		t.Fatalf("got %d events, want 50", len(got))
	}
	for i, ev := range got {
		if string(ev.Data) != strconv.Itoa(i+1) || ev.Offset != uint64(i+1) || ev.Epoch == "" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	waitFor(t, 5*time.Second, "the recovery note", func() bool { return len(rec.of("h:feed")) == 1 })
	if r := rec.of("h:feed"); !r[0] {
		t.Fatalf("recovered = %v", r)
	}
	if off, _ := c.Position("h:feed"); off != 50 {
		t.Fatalf("position %d, want 50", off)
	}
}

// TestRecoveryNotPossible: when history no longer holds what the Client
// missed, the application is told recovered false.
func TestRecoveryNotPossible(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{History: []herald.HistoryRule{{Pattern: "h:*", Size: 5}}})
	p := startProxy(t, "", ts.addr)
	addr := p.addr()
	var st states
	var rec recoveries
	c := dial(t, "ws://"+addr+"/ws", client.WithStateHandler(st.handler), client.WithRecoveryHandler(rec.recovery))
	evs := collect(c)
	ctx := ctxT(t)
	if err := c.Join(ctx, "h:small"); err != nil {
		t.Fatal(err)
	}
	srv := ts.Server()
	if _, err := srv.Publish(ctx, "h:small", "n", 1); err != nil {
		t.Fatal(err)
	}
	evs.next(t)
	p.kill()
	waitFor(t, 5*time.Second, "Reconnecting", func() bool { return st.count(client.Reconnecting) == 1 })
	for i := 2; i <= 20; i++ {
		if _, err := srv.Publish(ctx, "h:small", "n", i); err != nil {
			t.Fatal(err)
		}
	}
	startProxy(t, addr, ts.addr)
	waitFor(t, 5*time.Second, "the recovery note", func() bool { return len(rec.of("h:small")) == 1 })
	if r := rec.of("h:small"); r[0] {
		t.Fatalf("recovered = %v, want false", r)
	}
	if off, _ := c.Position("h:small"); off != 20 {
		t.Fatalf("position %d, want 20 (the room's when it was joined again)", off)
	}
}

// TestGapHandlerAfterSubscriptionLoss: when the server's node loses its
// Redis subscriptions (CLIENT KILL TYPE pubsub) and a room keeps no
// history, the Client's gap handler hears of the room; a room with
// history is caught up instead, and its handler hears nothing.
func TestGapHandlerAfterSubscriptionLoss(t *testing.T) {
	t.Parallel()
	rs := testserver.StartRedis(t)
	b, err := redisbroker.New(redisbroker.Config{URL: rs.URL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, herald.Config{Broker: b, History: []herald.HistoryRule{{Pattern: "h:*", Size: 100}}})
	var rec recoveries
	c := dial(t, ts.URL, client.WithGapHandler(rec.gap))
	ctx := ctxT(t)
	for _, room := range []string{"plain", "h:kept"} {
		if err := c.Join(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rs.Command("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a gap for the room without history", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.gaps) > 0
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, room := range rec.gaps {
		if room != "plain" {
			t.Fatalf("gaps %v: only the room without history may have one", rec.gaps)
		}
	}
}
