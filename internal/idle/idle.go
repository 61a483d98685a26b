// Package idle ends the goroutines of a pool that have waited a whole
// period for work, for pools whose goroutines wait on a plain channel
// receive.
//
// A goroutine that waits for work in a select with a timer of its own
// (work, or the timer to say it has waited long enough) pays for the
// select and for the timer's channel at every wait: under connection
// churn that was a few per cent of a connect's CPU, twice per connect
// (the accept path's workers and the transport's callback runners). A
// Pool instead counts its waiting goroutines and, at the end of each
// period, ends as many as the pool did not need during it: the fewest
// that were waiting at any moment of it. A pool left without work ends
// within one to two periods, as with a timer per goroutine; the
// goroutines ended are the longest waiting (a channel's receivers are
// served in order).
//
// Concurrency: every method is safe for concurrent use. End is called
// with the Pool's lock held and must not block (a non-blocking send).
package idle

import (
	"sync"
	"sync/atomic"
	"time"
)

// Pool counts the waiting goroutines of one pool and ends its surplus.
// Its zero value is not usable: set Period and End before the first
// Started.
type Pool struct {
	// Period is how long a goroutine may wait: one that waited since
	// the previous period's end is ended at this one's.
	Period time.Duration
	// End ends one waiting goroutine (a non-blocking send of what makes
	// the receiver return) and reports whether one took it.
	End func() bool

	waiting atomic.Int32 // goroutines waiting now
	fewest  atomic.Int32 // the fewest waiting at once this period

	mu     sync.Mutex
	live   int // goroutines started and not exited
	timer  *time.Timer
	gen    uint64 // of timer: a stopped timer's late run does nothing
	closed bool
}

// Started counts a goroutine of the pool that starts (busy, not
// waiting).
func (p *Pool) Started() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live++
	if p.timer == nil && !p.closed {
		p.gen++
		gen := p.gen
		p.timer = time.AfterFunc(p.Period, func() { p.reap(gen) })
	}
}

// Exited counts a goroutine of the pool that has returned, or is about
// to; the period's timer stops with the last one.
func (p *Pool) Exited() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live--
	if p.live == 0 {
		p.stopTimer()
	}
}

// Waiting counts a goroutine about to wait for work.
func (p *Pool) Waiting() { p.waiting.Add(1) }

// Woken counts a goroutine that has stopped waiting (work came, or the
// goroutine is being ended).
func (p *Pool) Woken() {
	n := p.waiting.Add(-1)
	for {
		f := p.fewest.Load()
		if n >= f || p.fewest.CompareAndSwap(f, n) {
			return
		}
	}
}

// Close stops the timer: no End from now on (the caller may then close
// the channel End sends on).
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.stopTimer()
}

// stopTimer stops the period's timer. p.mu must be held.
func (p *Pool) stopTimer() {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

// reap ends the goroutines that waited throughout the period that ends
// now, and starts the next period.
func (p *Pool) reap(gen uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen || p.timer == nil || p.closed {
		return
	}
	// The pool never needed that many of its goroutines this period;
	// those that wait now start the next one.
	surplus := p.fewest.Swap(p.waiting.Load())
	for ; surplus > 0 && p.End(); surplus-- {
	}
	p.timer.Reset(p.Period)
}
