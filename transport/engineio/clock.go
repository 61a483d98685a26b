package engineio

import (
	"container/heap"
	"math"
	"sync"
	"time"
)

// clock wakes each socket's heartbeat when it is due: one runtime timer
// and one min-heap per Server instead of a timer per socket (which an
// idle socket would hold, with its callback closure). The timer's
// callback pops what is due and runs those sockets' ticks; each tick
// schedules the socket's next wake-up itself.
//
// Lock order: Socket.mu before clock.mu; clock.mu is never held while a
// socket is called.
type clock struct {
	mu      sync.Mutex
	due     dueHeap
	timer   *time.Timer // armed for due[0]
	base    time.Time   // the zero of Socket.hbAt
	stopped bool
	running sync.WaitGroup // fire callbacks armed or running
	tick    func(*Socket)
}

func newClock(tick func(*Socket)) *clock {
	return &clock{base: time.Now(), tick: tick}
}

// now returns the clock's time: nanoseconds since base, monotonic.
func (k *clock) now() int64 { return int64(time.Since(k.base)) }

// scheduleAt (re)arms s's wake-up for clock time at.
func (k *clock) scheduleAt(s *Socket, at int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	s.hbAt = at
	if s.hbIdx >= 0 {
		heap.Fix(&k.due, int(s.hbIdx))
	} else {
		heap.Push(&k.due, s)
	}
	if k.due[0] == s {
		k.armLocked(at)
	}
}

// remove drops s's wake-up, if scheduled.
func (k *clock) remove(s *Socket) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.hbIdx >= 0 {
		heap.Remove(&k.due, int(s.hbIdx))
	}
}

// armLocked sets the timer to fire at at (clock time). The callback
// counts in running from when the timer is armed until it returns or
// Stop or Reset takes it back.
func (k *clock) armLocked(at int64) {
	d := time.Duration(max(at-k.now(), 0))
	k.running.Add(1)
	if k.timer == nil {
		k.timer = time.AfterFunc(d, k.fire)
		return
	}
	if k.timer.Reset(d) {
		k.running.Done() // it replaced a callback that had not run
	}
}

// parked is the hbAt of a socket whose tick is due or running: it stays
// in the heap, at the bottom, until the tick reschedules it (or its
// session's end removes it), so that the heap holds every scheduled
// socket at all times (Server.all relies on it).
const parked = math.MaxInt64

// fire runs the ticks that are due and re-arms the timer for the next.
func (k *clock) fire() {
	defer k.running.Done()
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	now := k.now()
	var ready []*Socket
	for len(k.due) > 0 && k.due[0].hbAt <= now {
		s := k.due[0]
		s.hbAt = parked
		heap.Fix(&k.due, 0)
		ready = append(ready, s)
	}
	if len(k.due) > 0 && k.due[0].hbAt != parked {
		k.armLocked(k.due[0].hbAt)
	}
	k.mu.Unlock()
	for _, s := range ready {
		k.tick(s)
	}
}

// each calls f for every socket in the heap, under k.mu: f must not
// call the clock or lock a socket.
func (k *clock) each(f func(*Socket)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.due {
		f(s)
	}
}

// stop ends the clock and waits for a callback in progress.
func (k *clock) stop() {
	k.mu.Lock()
	k.stopped = true
	if k.timer != nil && k.timer.Stop() {
		k.running.Done()
	}
	for _, s := range k.due {
		s.hbIdx = -1
	}
	k.due = nil
	k.mu.Unlock()
	k.running.Wait()
}

// dueHeap orders sockets by hbAt; Socket.hbIdx is each one's index (-1
// when not in the heap). Guarded by clock.mu.
type dueHeap []*Socket

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].hbAt < h[j].hbAt }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hbIdx, h[j].hbIdx = int32(i), int32(j)
}

func (h *dueHeap) Push(x any) {
	s := x.(*Socket)
	s.hbIdx = int32(len(*h))
	*h = append(*h, s)
}

func (h *dueHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	s.hbIdx = -1
	return s
}
