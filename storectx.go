package herald

import (
	"context"
	"sync"
	"time"
)

// storeCtx is context.WithTimeout for the calls a connection makes to its
// stores and the broker, over a parent that is never cancelled (the
// connection's context): the same deadline, and the same Err and Done,
// but its timer and channel are made only when something asks for Done.
// The memory stores never do, so a connect, which opens its session
// under one and ends it under another, starts and stops no timer (two
// per connect before, each with a context, a channel and their
// allocations). Once Done is asked for, a context.WithDeadline made then
// answers for it, so contexts derived from it are cancelled with it as
// from any other.
type storeCtx struct {
	parent   context.Context // never cancelled: Done is nil
	deadline time.Time

	mu sync.Mutex
	// inner is made by the first Done; then it answers Done, Err and
	// Value. Before, err is set by cancel or by an Err after the
	// deadline.
	inner       context.Context
	cancelInner context.CancelFunc
	err         error
}

// newStoreCtx returns a context with parent's values that expires after
// timeout; cancel ends it early and releases what Done made. parent's
// Done must be nil.
func newStoreCtx(parent context.Context, timeout time.Duration) *storeCtx {
	return &storeCtx{parent: parent, deadline: time.Now().Add(timeout)}
}

// Deadline implements context.Context.
func (c *storeCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Done implements context.Context: a channel closed at the deadline or
// by cancel, made when first asked for.
func (c *storeCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner == nil {
		if c.err == context.Canceled {
			c.inner, c.cancelInner = context.WithCancel(c.parent)
			c.cancelInner()
		} else {
			// Past the deadline, WithDeadline is done at once, with
			// DeadlineExceeded as Err said.
			c.inner, c.cancelInner = context.WithDeadline(c.parent, c.deadline)
		}
	}
	return c.inner.Done()
}

// Err implements context.Context.
func (c *storeCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner != nil {
		return c.inner.Err()
	}
	if c.err == nil && !time.Now().Before(c.deadline) {
		c.err = context.DeadlineExceeded
	}
	return c.err
}

// Value implements context.Context.
func (c *storeCtx) Value(key any) any {
	c.mu.Lock()
	inner := c.inner
	c.mu.Unlock()
	if inner != nil {
		// The context Done made: contexts derived from c find its
		// cancellation there, as from a context of the package's own.
		return inner.Value(key)
	}
	return c.parent.Value(key)
}

// cancel ends c: Err is Canceled from now on, unless the deadline came
// first.
func (c *storeCtx) cancel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inner != nil {
		c.cancelInner()
		return
	}
	if c.err == nil {
		c.err = context.Canceled
		if !time.Now().Before(c.deadline) {
			c.err = context.DeadlineExceeded
		}
	}
}
