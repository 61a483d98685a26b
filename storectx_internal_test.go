package herald

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestStoreCtx: a storeCtx answers as context.WithTimeout over a parent
// that is never cancelled, whether Done is asked for before or after it
// ends, and contexts derived from it end with it.
func TestStoreCtx(t *testing.T) {
	t.Parallel()
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	tests := []struct {
		name      string
		timeout   time.Duration
		run       func(c *storeCtx) // before the checks
		want      error
		doneFirst bool // ask for Done before run
	}{
		{"live", time.Hour, func(*storeCtx) {}, nil, false},
		{"live, Done asked", time.Hour, func(*storeCtx) {}, nil, true},
		{"cancelled", time.Hour, func(c *storeCtx) { c.cancel() }, context.Canceled, false},
		{"cancelled, Done asked first", time.Hour, func(c *storeCtx) { c.cancel() }, context.Canceled, true},
		{"expired", -time.Second, func(*storeCtx) {}, context.DeadlineExceeded, false},
		{"expired, Done asked first", -time.Second, func(*storeCtx) {}, context.DeadlineExceeded, true},
		{"expired, then cancelled", -time.Second, func(c *storeCtx) { c.cancel() }, context.DeadlineExceeded, false},
		{"expired and seen, then cancelled", -time.Second, func(c *storeCtx) { _ = c.Err(); c.cancel() }, context.DeadlineExceeded, false},
		{"cancelled and seen, Done asked after", time.Hour, func(c *storeCtx) { c.cancel(); _ = c.Err() }, context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newStoreCtx(parent, tt.timeout)
			defer c.cancel()
			if dl, ok := c.Deadline(); !ok || dl != c.deadline {
				t.Errorf("Deadline = %v, %v", dl, ok)
			}
			if tt.doneFirst {
				_ = c.Done()
			}
			tt.run(c)
			if err := c.Err(); err != tt.want {
				t.Fatalf("Err = %v, want %v", err, tt.want)
			}
			derived, cancel := context.WithCancel(c)
			defer cancel()
			done := c.Done()
			if tt.want == nil {
				select {
				case <-done:
					t.Fatal("Done closed while live")
				default:
				}
				c.cancel()
				if err := c.Err(); err != context.Canceled {
					t.Fatalf("Err after cancel = %v", err)
				}
			}
			<-done
			<-derived.Done() // derived contexts end with it
			if err := c.Err(); err != tt.want && !(tt.want == nil && err == context.Canceled) {
				t.Errorf("Err after Done = %v", err)
			}
			if got := context.Cause(c); !errors.Is(got, c.Err()) {
				t.Errorf("Cause = %v, want %v", got, c.Err())
			}
			if got := derived.Value(key{}); got != "v" {
				t.Errorf("Value = %v, want the parent's", got)
			}
		})
	}
}

// TestStoreCtxExpires: Done closes at the deadline, with
// DeadlineExceeded, as WithTimeout's does.
func TestStoreCtxExpires(t *testing.T) {
	t.Parallel()
	c := newStoreCtx(context.Background(), time.Millisecond)
	defer c.cancel()
	<-c.Done()
	if err := c.Err(); err != context.DeadlineExceeded {
		t.Fatalf("Err = %v, want DeadlineExceeded", err)
	}
}
