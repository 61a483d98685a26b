package transport

import (
	"container/heap"
	"sync"
	"time"
)

// heartbeatClock wakes each connection's heartbeat when it is due. One
// runtime timer and one min-heap serve the whole process, instead of a
// timer per connection (~150 B each, held by every idle connection).
// The timer's callback pops what is due and runs those heartbeats one
// after the other; each heartbeat schedules its next wake-up itself.
type heartbeatClock struct {
	mu    sync.Mutex
	due   dueHeap
	timer *time.Timer // armed for due[0]; stopped while due is empty
	base  time.Time   // the zero of Conn.hbAt
}

var heartbeats = &heartbeatClock{base: time.Now()}

// now returns the clock's time: nanoseconds since base, monotonic.
func (k *heartbeatClock) now() int64 { return int64(time.Since(k.base)) }

// schedule (re)arms c's heartbeat for after d.
func (k *heartbeatClock) schedule(c *Conn, d time.Duration) {
	at := k.now() + int64(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	c.hbAt = at
	if c.hbIdx >= 0 {
		heap.Fix(&k.due, int(c.hbIdx))
	} else {
		heap.Push(&k.due, c)
	}
	if k.due[0] == c {
		k.armLocked(at)
	}
}

// remove drops c's heartbeat, if scheduled.
func (k *heartbeatClock) remove(c *Conn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.hbIdx >= 0 {
		heap.Remove(&k.due, int(c.hbIdx))
	}
	if len(k.due) == 0 && k.timer != nil && k.timer.Stop() {
		backgroundDone() // the callback will not run
	}
}

// armLocked sets the timer to fire at at (clock time). A callback
// counts as a background goroutine from when its timer is armed until
// it returns or Stop takes it back (see Upgrader.Close): counted first,
// and the count given back when Reset only moved a pending one.
func (k *heartbeatClock) armLocked(at int64) {
	d := time.Duration(max(at-k.now(), 0))
	backgroundStarted()
	if k.timer == nil {
		k.timer = time.AfterFunc(d, k.fire)
		return
	}
	if k.timer.Reset(d) {
		backgroundDone() // it replaced a callback that had not run
	}
}

// fire runs the heartbeats that are due and re-arms the timer for the
// next one.
func (k *heartbeatClock) fire() {
	defer backgroundDone()
	k.mu.Lock()
	now := k.now()
	var ready []*Conn
	for len(k.due) > 0 && k.due[0].hbAt <= now {
		ready = append(ready, heap.Pop(&k.due).(*Conn))
	}
	if len(k.due) > 0 {
		k.armLocked(k.due[0].hbAt)
	}
	k.mu.Unlock()
	for _, c := range ready {
		c.heartbeat()
	}
}

// dueHeap orders connections by hbAt; Conn.hbIdx is each one's index
// (-1 when not in the heap). Guarded by heartbeatClock.mu.
type dueHeap []*Conn

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].hbAt < h[j].hbAt }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hbIdx, h[j].hbIdx = int32(i), int32(j)
}

func (h *dueHeap) Push(x any) {
	c := x.(*Conn)
	c.hbIdx = int32(len(*h))
	*h = append(*h, c)
}

func (h *dueHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.hbIdx = -1
	return c
}
