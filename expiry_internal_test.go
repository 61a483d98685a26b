package herald

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestExpiryClockHeap: schedules made, moved and removed in any order
// keep the clock's heap ordered, each connection in it at most once and
// at its slot, and the timer armed no later than the earliest.
func TestExpiryClockHeap(t *testing.T) {
	t.Parallel()
	k := newExpiryClock()
	conns := make([]*conn, 200)
	for i := range conns {
		conns[i] = &conn{}
	}
	in := map[*conn]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(step int) {
		t.Helper()
		k.mu.Lock()
		defer k.mu.Unlock()
		if len(k.due) != len(in) {
			t.Fatalf("step %d: %d in the heap, want %d", step, len(k.due), len(in))
		}
		for i, e := range k.due {
			if int(e.c.expSlot) != i+1 {
				t.Fatalf("step %d: entry %d has slot %d", step, i, e.c.expSlot)
			}
			if i > 0 && k.due[(i-1)/2].at > e.at {
				t.Fatalf("step %d: entry %d due before its parent", step, i)
			}
			if !in[e.c] {
				t.Fatalf("step %d: a removed connection is in the heap", step)
			}
		}
		if len(k.due) > 0 && k.armed > k.due[0].at {
			t.Fatalf("step %d: timer armed for %d, after the earliest %d", step, k.armed, k.due[0].at)
		}
	}
	for step := range 5000 {
		c := conns[rng.IntN(len(conns))]
		if rng.IntN(3) == 0 {
			k.remove(c)
			delete(in, c)
		} else {
			// Hours: the timer never fires during the test.
			k.schedule(c, time.Hour+time.Duration(rng.IntN(1000))*time.Second)
			in[c] = true
		}
		if k.scheduled(c) != in[c] {
			t.Fatalf("step %d: scheduled %v, want %v", step, !in[c], in[c])
		}
		check(step)
	}
	for _, c := range conns {
		k.remove(c)
	}
	if len(k.due) != 0 || k.timer.Stop() {
		t.Fatalf("%d left in the heap, or the timer still armed", len(k.due))
	}
}
