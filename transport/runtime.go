package transport

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The package's background goroutines serve every connection of the
// process together: the read poller (NotifyReadable), the runners of
// NotifyReadable's callbacks, the wait pollers (a raw socket's blocking
// Read or Write), the flush workers (one per shard while it has turns to
// give) and the heartbeat clock's timer callbacks. Each runs only while
// it has work, and ends within pollIdleMs (200 ms) once it has none;
// none is started per connection.
//
// Their owners are the Upgraders: NewUpgrader takes a hold on them and
// Upgrader.Close gives it back. The Close that gives back the last hold
// waits until every one of them has ended, so that a server's Shutdown
// leaves no goroutine of the transport behind, which a test can check
// (goleak). Starting one costs an atomic add, as it did not before; the
// paths that write and read do not change.
var background struct {
	mu      sync.Mutex
	holders int // Upgraders not yet closed
	// running counts the goroutines started and not yet returned (a
	// heartbeat callback counts from when its timer is armed).
	running atomic.Int64
}

// backgroundStarted counts a background goroutine about to start; it
// calls backgroundDone when it returns.
func backgroundStarted() { background.running.Add(1) }

func backgroundDone() { background.running.Add(-1) }

// hold takes a hold on the background goroutines for an Upgrader.
func hold() {
	background.mu.Lock()
	background.holders++
	background.mu.Unlock()
}

// Close gives back the Upgrader's hold on the package's background
// goroutines. When it was the last Upgrader not closed, Close waits
// until they have all ended, which they do once no connection needs
// them (within about 200 ms of the last connection's end): close the
// connections first. It returns an error if ctx ends first, and at once
// if another Upgrader still holds them. The Upgrader must not upgrade
// after Close; a second Close does nothing.
func (u *Upgrader) Close(ctx context.Context) error {
	if !u.closed.CompareAndSwap(false, true) {
		return nil
	}
	background.mu.Lock()
	background.holders--
	last := background.holders == 0
	background.mu.Unlock()
	if !last {
		return nil
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for background.running.Load() > 0 {
		wakePollers()
		releaseRunners()
		background.mu.Lock()
		held := background.holders > 0
		background.mu.Unlock()
		if held {
			return nil // a new Upgrader uses them now
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("transport: %d background goroutines still running: %w", background.running.Load(), ctx.Err())
		}
	}
	return nil
}
