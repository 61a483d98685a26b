package idle

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPool is a pool of goroutines that wait on work as the accept
// path's workers and the transport's runners do.
type testPool struct {
	p      Pool
	work   chan func()
	live   atomic.Int32
	served atomic.Int64
	wg     sync.WaitGroup
}

func newTestPool(period time.Duration) *testPool {
	tp := &testPool{work: make(chan func())}
	tp.p = Pool{Period: period, End: func() bool {
		select {
		case tp.work <- nil:
			return true
		default:
			return false
		}
	}}
	return tp
}

// start starts a goroutine of the pool, busy with f first.
func (tp *testPool) start(f func()) {
	tp.p.Started()
	tp.live.Add(1)
	tp.wg.Add(1)
	go func() {
		defer tp.wg.Done()
		defer tp.live.Add(-1)
		defer tp.p.Exited()
		for f != nil {
			f()
			tp.served.Add(1)
			tp.p.Waiting()
			f = <-tp.work
			tp.p.Woken()
		}
	}()
}

// submit hands f to a waiting goroutine, or starts one.
func (tp *testPool) submit(f func()) {
	select {
	case tp.work <- f:
	default:
		tp.start(f)
	}
}

// stop ends the pool's goroutines as the accept loop does at its end.
func (tp *testPool) stop() {
	tp.p.Close()
	close(tp.work)
	tp.wg.Wait()
}

func checkFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPoolEndsIdle: goroutines without work end after one to two
// periods, not before the first.
func TestPoolEndsIdle(t *testing.T) {
	const period = 100 * time.Millisecond
	tp := newTestPool(period)
	defer tp.stop()
	start := time.Now()
	for range 4 {
		tp.start(func() {})
	}
	checkFor(t, 10*period, func() error {
		if n := tp.live.Load(); n != 0 {
			return fmt.Errorf("%d goroutines left after %v without work", n, time.Since(start))
		}
		return nil
	})
	if d := time.Since(start); d < period {
		t.Errorf("idle goroutines ended after %v, before a period (%v)", d, period)
	}
}

// TestPoolKeepsNeeded: with work that one goroutine at a time serves,
// the pool ends the rest and keeps that one, which goes on serving; once
// the work stops, it ends too.
func TestPoolKeepsNeeded(t *testing.T) {
	const period = 50 * time.Millisecond
	tp := newTestPool(period)
	defer tp.stop()
	for range 4 {
		tp.start(func() {})
	}
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		tick := time.NewTicker(period / 10)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				tp.submit(func() {})
			}
		}
	}()
	checkFor(t, 40*period, func() error {
		if n := tp.live.Load(); n != 1 {
			return fmt.Errorf("%d goroutines serve one piece of work at a time, want 1", n)
		}
		return nil
	})
	// It stays: the work needs it at every moment. (A piece of work
	// handed over while it is between two may start a second one, which
	// the pool ends in turn.)
	served := tp.served.Load()
	time.Sleep(4 * period)
	if n := tp.live.Load(); n < 1 || n > 2 {
		t.Errorf("%d goroutines after 4 more periods of work, want 1 (or 2 for a moment)", n)
	}
	if tp.served.Load() == served {
		t.Error("no work served in 4 periods")
	}
	close(stop)
	<-fed
	checkFor(t, 20*period, func() error {
		if n := tp.live.Load(); n != 0 {
			return fmt.Errorf("%d goroutines left once the work stopped", n)
		}
		return nil
	})
}

// TestPoolClosed: after Close the pool ends no goroutine (its channel
// may be closed), and the goroutines it would have ended still wait.
func TestPoolClosed(t *testing.T) {
	const period = 20 * time.Millisecond
	tp := newTestPool(period)
	tp.start(func() {})
	tp.p.Close()
	time.Sleep(5 * period)
	if n := tp.live.Load(); n != 1 {
		t.Errorf("%d goroutines after Close and 5 periods, want the 1 waiting", n)
	}
	close(tp.work)
	tp.wg.Wait()
}
