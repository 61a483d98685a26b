package client

import (
	"fmt"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	c := &Client{opts: defaultOptions()}
	WithReconnect(100*time.Millisecond, 2*time.Second)(&c.opts)
	tests := []struct {
		attempt int
		ceil    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{5, 2 * time.Second}, // 3.2s capped
		{40, 2 * time.Second},
		{1000, 2 * time.Second}, // no overflow
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("attempt ", tt.attempt), func(t *testing.T) {
			var top time.Duration
			for range 2000 {
				d := c.backoff(tt.attempt)
				if d < 0 || d > tt.ceil {
					t.Fatalf("backoff(%d) = %s, want within [0, %s]", tt.attempt, d, tt.ceil)
				}
				top = max(top, d)
			}
			// Full jitter spreads over the whole range.
			if top < tt.ceil*3/4 {
				t.Errorf("backoff(%d) never above %s of %s", tt.attempt, top, tt.ceil)
			}
		})
	}
}

func TestLRU(t *testing.T) {
	t.Parallel()
	l := newLRU(3)
	for _, k := range []string{"a", "b", "c"} {
		if !l.add(k) {
			t.Fatalf("%s reported seen", k)
		}
	}
	if l.add("a") { // a is now the most recent
		t.Fatal("a reported new")
	}
	l.add("d") // evicts b, the least recent
	for _, tt := range []struct {
		key string
		new bool
	}{{"a", false}, {"c", false}, {"d", false}, {"b", true}} {
		if got := l.add(tt.key); got != tt.new {
			t.Errorf("add(%s) = %v, want %v", tt.key, got, tt.new)
		}
	}
	if l.order.Len() != 3 || len(l.keys) != 3 {
		t.Errorf("size %d/%d, want 3", l.order.Len(), len(l.keys))
	}
}

func TestAcker(t *testing.T) {
	t.Parallel()
	var a acker
	a.init(2)
	a.reset(1)
	a.add(1, "x")
	select {
	case <-a.kick:
		t.Fatal("kicked below max")
	default:
	}
	a.add(1, "y")
	select {
	case <-a.kick:
	default:
		t.Fatal("not kicked at max")
	}
	a.add(0, "stale") // an older connection's id: the server forgot it
	a.add(1, "z")
	if got := a.take(1, true); len(got) != 2 || got[0] != "x" || got[1] != "y" {
		t.Errorf("take full batches = %v, want [x y]", got)
	}
	if got := a.take(1, false); len(got) != 1 || got[0] != "z" {
		t.Errorf("take = %v, want [z]", got)
	}
	a.add(1, "w")
	a.reset(2)
	if got := a.take(2, false); len(got) != 0 {
		t.Errorf("take after reset = %v", got)
	}
}

// TestRetryDelay: a refusal with a Retry-After is not retried before it,
// and the clients refused together are spread over as long again (or the
// backoff ceiling, once larger) instead of all coming back at once.
func TestRetryDelay(t *testing.T) {
	t.Parallel()
	c := &Client{opts: defaultOptions()}
	WithReconnect(100*time.Millisecond, 4*time.Second)(&c.opts)
	tests := []struct {
		name     string
		attempt  int
		he       *HandshakeError
		lo, hi   time.Duration
		wantHigh time.Duration // some delay at least this long
	}{
		{"no refusal: backoff", 2, nil, 0, 400 * time.Millisecond, 300 * time.Millisecond},
		{"refusal without Retry-After: backoff", 2, &HandshakeError{StatusCode: 502}, 0, 400 * time.Millisecond, 300 * time.Millisecond},
		{"Retry-After above the ceiling", 0, &HandshakeError{StatusCode: 503, RetryAfter: time.Second}, time.Second, 2 * time.Second, 1750 * time.Millisecond},
		{"ceiling above Retry-After", 5, &HandshakeError{StatusCode: 503, RetryAfter: time.Second}, time.Second, 4200 * time.Millisecond, 3500 * time.Millisecond},
		{"Retry-After past max", 0, &HandshakeError{StatusCode: 503, RetryAfter: 10 * time.Second}, 10 * time.Second, 20 * time.Second, 17 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var top time.Duration
			seen := map[time.Duration]bool{}
			for range 2000 {
				d := c.retryDelay(tt.attempt, tt.he)
				if d < tt.lo || d > tt.hi {
					t.Fatalf("retryDelay = %s, want within [%s, %s]", d, tt.lo, tt.hi)
				}
				top = max(top, d)
				seen[d] = true
			}
			if top < tt.wantHigh || len(seen) < 1000 {
				t.Errorf("retryDelay spread: %d distinct delays, highest %s; want them spread up to %s", len(seen), top, tt.hi)
			}
		})
	}
}
