package backend

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// breaker is a circuit breaker over all of a backend's hooks: after
// threshold consecutive failures it refuses calls for cooldown, then lets
// one call through as a probe, which closes it on success and opens it
// again on failure. Every call allowed ends with done or release.
type breaker struct {
	threshold int
	cooldown  time.Duration
	open      prometheus.Gauge

	mu        sync.Mutex
	failures  int
	openUntil time.Time
	probing   bool
}

// allow reports whether a call may go to the backend now.
func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.threshold {
		return true
	}
	if now.Before(b.openUntil) || b.probing {
		return false
	}
	b.probing = true
	return true
}

// done records the outcome of an allowed call.
func (b *breaker) done(ok bool, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if ok {
		if b.failures >= b.threshold {
			b.open.Set(0)
		}
		b.failures = 0
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = now.Add(b.cooldown)
		b.open.Set(1)
	}
}

// release ends an allowed call that never reached the backend.
func (b *breaker) release() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}
