package redisqueue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldrt/herald/backend"
	"github.com/heraldrt/herald/backend/redisqueue"
	"github.com/heraldrt/herald/internal/testserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newQueue(t *testing.T, url, node string, lease time.Duration, max int) *redisqueue.Queue {
	t.Helper()
	q, err := redisqueue.New(redisqueue.Config{URL: url, Node: node, LeaseTTL: lease, MaxLen: max})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func strs(b [][]byte) []string {
	out := make([]string, len(b))
	for i, v := range b {
		out[i] = string(v)
	}
	return out
}

// TestTakeover: a node's events and the disconnected events of its open
// connections reach another node's queue, in order, once its lease
// lapses, and only once.
func TestTakeover(t *testing.T) {
	r := testserver.StartRedis(t)
	ctx := context.Background()
	lease := 2 * time.Second // long enough that a's lease outlives the first takeover attempt
	a := newQueue(t, r.URL(), "a", lease, 100)
	b := newQueue(t, r.URL(), "b", lease, 100)
	c := newQueue(t, r.URL(), "c", lease, 100)
	defer func() { _ = b.Close(ctx, false); _ = c.Close(ctx, false) }()
	for _, q := range []*redisqueue.Queue{a, b, c} {
		if _, err := q.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	push := func(e backend.QueuedEvent) {
		t.Helper()
		if err := a.Push(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	push(backend.QueuedEvent{Body: []byte("c1 connected"), ConnID: "c1", Open: []byte("c1 lost")})
	push(backend.QueuedEvent{Body: []byte("c2 connected"), ConnID: "c2", Open: []byte("c2 lost")})
	push(backend.QueuedEvent{Body: []byte("c2 disconnected"), ConnID: "c2", Closed: true})
	push(backend.QueuedEvent{Body: []byte("c3 connected"), ConnID: "c3", Open: []byte("c3 lost")})
	got, err := a.Peek(ctx, 2)
	if err != nil || fmt.Sprint(strs(got)) != "[c1 connected c2 connected]" {
		t.Fatalf("peek: %q %v", strs(got), err)
	}
	if err := a.Ack(ctx, 1); err != nil { // c1 connected was posted
		t.Fatal(err)
	}
	// a dies (no more Maintain, no Close); while its lease lives nothing moves.
	if n, err := b.Maintain(ctx); n != 0 || err != nil {
		t.Fatalf("takeover of a live node: %d %v", n, err)
	}
	deadline := time.Now().Add(4 * lease)
	taken := 0
	for taken == 0 && time.Now().Before(deadline) {
		for _, q := range []*redisqueue.Queue{b, c} {
			n, err := q.Maintain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			taken += n
		}
		time.Sleep(50 * time.Millisecond)
	}
	gb, _ := b.Peek(ctx, 100)
	gc, _ := c.Peek(ctx, 100)
	all := append(strs(gb), strs(gc)...)
	want := "[c2 connected c2 disconnected c3 connected c1 lost c3 lost]"
	if len(gb) > 0 && len(gc) > 0 || (fmt.Sprint(all) != want && fmt.Sprint(all) != "[c2 connected c2 disconnected c3 connected c3 lost c1 lost]") {
		t.Fatalf("taken over: b %q c %q, want one of them %s", strs(gb), strs(gc), want)
	}
	if taken != 5 {
		t.Fatalf("taken %d", taken)
	}
	a.Close(ctx, false)
}

func TestFullAndRelease(t *testing.T) {
	r := testserver.StartRedis(t)
	ctx := context.Background()
	q := newQueue(t, r.URL(), "n", time.Second, 2)
	for i := range 2 {
		if err := q.Push(ctx, backend.QueuedEvent{Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Push(ctx, backend.QueuedEvent{Body: []byte("x")}); !errors.Is(err, backend.ErrQueueFull) {
		t.Fatalf("push to a full queue: %v", err)
	}
	if err := q.Ack(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(ctx, true); err != nil {
		t.Fatal(err)
	}
	if v, err := r.Command("SISMEMBER", "herald:{events}:nodes", "n"); err != nil || v != "0" {
		t.Fatalf("node still registered after a clean close: %q %v", v, err)
	}
}

// The queue is bounded in bytes as well as in events, counting the
// disconnected events kept for open connections: an event that would
// take it over is refused with ErrQueueFull (and its open entry not
// kept); what the backend took (Ack) and connections that closed make
// room again; a takeover moves the dead node's bytes to the taker.
func TestBoundedInBytes(t *testing.T) {
	r := testserver.StartRedis(t)
	ctx := context.Background()
	q, err := redisqueue.New(redisqueue.Config{URL: r.URL(), Node: "n", LeaseTTL: time.Second, MaxLen: 100, MaxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close(ctx, false)
	body := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	held := func(want int64) {
		t.Helper()
		if n, err := q.Bytes(ctx); err != nil || n != want {
			t.Fatalf("queue holds %d bytes (%v), want %d", n, err, want)
		}
	}
	// 300 B of event and 200 B kept for c1's disconnection.
	if err := q.Push(ctx, backend.QueuedEvent{Body: body(300), ConnID: "c1", Open: body(200)}); err != nil {
		t.Fatal(err)
	}
	held(500)
	if err := q.Push(ctx, backend.QueuedEvent{Body: body(300), ConnID: "c2", Open: body(300)}); !errors.Is(err, backend.ErrQueueFull) {
		t.Fatalf("1,100 B over a 1,000 B bound: %v, want ErrQueueFull", err)
	}
	if v, err := r.Command("HEXISTS", "herald:{events}:open:n", "c2"); err != nil || v != "0" {
		t.Fatalf("a refused event's open entry was kept: %q %v", v, err)
	}
	held(500)
	// c1 disconnects: its open entry goes, its event comes.
	if err := q.Push(ctx, backend.QueuedEvent{Body: body(500), ConnID: "c1", Closed: true}); err != nil {
		t.Fatalf("at the bound, freeing c1's open entry: %v", err)
	}
	held(800)
	if err := q.Push(ctx, backend.QueuedEvent{Body: body(201)}); !errors.Is(err, backend.ErrQueueFull) {
		t.Fatalf("one byte over: %v, want ErrQueueFull", err)
	}
	if err := q.Ack(ctx, 1); err != nil { // the 300 B event was posted
		t.Fatal(err)
	}
	held(500)
	if err := q.Ack(ctx, 1); err != nil {
		t.Fatal(err)
	}
	held(0)

	// A dead node's queue moves to the taker with its bytes.
	dead, err := redisqueue.New(redisqueue.Config{URL: r.URL(), Node: "dead", LeaseTTL: 100 * time.Millisecond, MaxLen: 100, MaxBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.Push(ctx, backend.QueuedEvent{Body: body(400), ConnID: "d1", Open: body(300)}); err != nil {
		t.Fatal(err)
	}
	dead.Close(ctx, false) // dies: no Maintain, its lease lapses
	taken := 0
	for deadline := time.Now().Add(5 * time.Second); taken == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if taken, err = q.Maintain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if taken != 2 {
		t.Fatalf("took over %d events, want 2", taken)
	}
	held(700)
	if v, err := r.Command("EXISTS", "herald:{events}:bytes:dead"); err != nil || v != "0" {
		t.Fatalf("the dead node's count outlived its takeover: %q %v", v, err)
	}
	if err := q.Push(ctx, backend.QueuedEvent{Body: body(301)}); !errors.Is(err, backend.ErrQueueFull) {
		t.Fatalf("over the bound with what was taken over: %v, want ErrQueueFull", err)
	}
}
