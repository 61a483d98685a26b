package socketio

import (
	"sync"
	"time"
)

// connectDeadlines closes the connections that joined no namespace
// within Config.ConnectTimeout. The timeout is the same for all, so
// their deadlines come in the order they were accepted: one queue per
// server and one timer for its head, rather than a timer per connection
// (its time.Timer, func value and clientExtra were 176 B of garbage per
// connect, in the size classes an idle connection's objects live in).
// A client that joined or closed stays queued until its deadline, when
// connectTimedOut finds it has nothing to do, unless no queued client
// waits any more: then the queue is dropped at once (done), so that a
// burst of connections that all joined leaves no queue behind (16 B a
// connection held until the last deadline, 10 s on Herald).
type connectDeadlines struct {
	d     time.Duration
	start time.Time // deadlines are nanoseconds since start (monotonic)

	mu      sync.Mutex
	q       []pendingConnect // q[head:] wait, oldest first
	head    int
	waiting int         // queued clients that have not joined, closed or timed out (Client.waiting)
	timer   *time.Timer // fires at q[head]'s deadline; nil until first needed
	armed   bool
}

type pendingConnect struct {
	c  *Client
	at int64
}

// add queues c's deadline, d from now.
func (cd *connectDeadlines) add(c *Client) {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	at := int64(time.Since(cd.start) + cd.d) // under mu: the queue stays in deadline order
	if cd.head > 0 && cd.head >= len(cd.q)/2 {
		// Reuse the room the expired ones left in front.
		n := copy(cd.q, cd.q[cd.head:])
		clear(cd.q[n:])
		cd.q, cd.head = cd.q[:n], 0
	}
	cd.q = append(cd.q, pendingConnect{c, at})
	cd.waiting++
	if !cd.armed {
		cd.armLocked(at)
	}
}

// done tells cd that a queued client joined, closed or timed out (once
// per client: Client.doneWaitingLocked). Once none waits, the queue is
// dropped; the timer, if armed, then fires on an empty queue.
func (cd *connectDeadlines) done() {
	cd.mu.Lock()
	defer cd.mu.Unlock()
	if cd.waiting--; cd.waiting == 0 {
		cd.q, cd.head = nil, 0
	}
}

// armLocked sets the timer for deadline at; cd.mu must be held.
func (cd *connectDeadlines) armLocked(at int64) {
	wait := time.Duration(at) - time.Since(cd.start)
	if cd.timer == nil {
		cd.timer = time.AfterFunc(wait, cd.expire)
	} else {
		cd.timer.Reset(wait)
	}
	cd.armed = true
}

// expire closes the clients whose deadline passed and sets the timer for
// the next one.
func (cd *connectDeadlines) expire() {
	now := int64(time.Since(cd.start))
	var due []*Client
	cd.mu.Lock()
	for cd.head < len(cd.q) && cd.q[cd.head].at <= now {
		due = append(due, cd.q[cd.head].c)
		cd.q[cd.head] = pendingConnect{}
		cd.head++
	}
	cd.armed = false
	if cd.head == len(cd.q) {
		cd.q, cd.head = nil, 0 // none wait: give the queue's memory back
	} else {
		cd.armLocked(cd.q[cd.head].at)
	}
	cd.mu.Unlock()
	for _, c := range due {
		c.connectTimedOut()
	}
}
