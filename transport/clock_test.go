package transport

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestHeartbeatClockHeap schedules, reschedules and removes connections
// in random order (far in the future, so nothing fires) and checks that
// the heap stays ordered and every index points back at its connection.
func TestHeartbeatClockHeap(t *testing.T) {
	k := &heartbeatClock{base: time.Now()}
	defer func() {
		if k.timer != nil && k.timer.Stop() {
			backgroundDone() // the armed callback counted as a background goroutine
		}
	}()
	conns := make([]*Conn, 300)
	for i := range conns {
		conns[i] = &Conn{hbIdx: -1}
	}
	in := map[*Conn]bool{}
	for op := range 5000 {
		c := conns[rand.IntN(len(conns))]
		if rand.IntN(3) == 0 {
			k.remove(c)
			delete(in, c)
		} else {
			k.schedule(c, time.Hour+time.Duration(rand.IntN(1000))*time.Second)
			in[c] = true
		}
		if len(k.due) != len(in) {
			t.Fatalf("op %d: %d scheduled, want %d", op, len(k.due), len(in))
		}
		for i, c := range k.due {
			if int(c.hbIdx) != i || !in[c] {
				t.Fatalf("op %d: due[%d] has index %d (scheduled %v)", op, i, c.hbIdx, in[c])
			}
			if i > 0 && k.due[(i-1)/2].hbAt > c.hbAt {
				t.Fatalf("op %d: heap order broken at %d", op, i)
			}
		}
		for _, c := range conns {
			if !in[c] && c.hbIdx != -1 {
				t.Fatalf("op %d: a removed connection keeps index %d", op, c.hbIdx)
			}
		}
	}
}
