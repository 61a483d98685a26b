package transport

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Flush workers write for connections whose queues have something in
// them. Send only appends to the connection's queue and, if the
// connection is not already waiting for a turn, puts it on its shard's
// ready list. One worker per shard runs while the list is non-empty and
// exits when it is empty, so there is no goroutine per connection and
// none at all while nothing is being sent.
//
// While a worker is busy, messages keep arriving: by the time a
// connection's turn comes, all of them go out in one writev. Under load
// this coalescing is what turns one system call per delivery into one
// per connection per turn.
type flushShard struct {
	mu      sync.Mutex
	ready   []*Conn
	running bool
	_       [40]byte // keep shards on separate cache lines
}

var (
	flushShards = make([]flushShard, max(1, runtime.GOMAXPROCS(0)))
	nextShard   atomic.Uint32
)

// turnScratch is a worker's reusable space for one connection's turn.
type turnScratch struct {
	batch [][]byte
	iov   iovecScratch
}

// pickShard spreads connections over the shards round-robin.
func pickShard() *flushShard {
	return &flushShards[int(nextShard.Add(1))%len(flushShards)]
}

// push gives c, whose write side the caller owns, a turn.
func (s *flushShard) push(c *Conn) {
	s.mu.Lock()
	s.ready = append(s.ready, c)
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go s.run()
	}
}

// run gives each ready connection a turn, in arrival order, until none
// is left.
func (s *flushShard) run() {
	var turn []*Conn
	var scratch turnScratch
	for {
		s.mu.Lock()
		if len(s.ready) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		turn, s.ready = s.ready, turn[:0]
		s.mu.Unlock()
		for i, c := range turn {
			turn[i] = nil
			c.flushTurn(&scratch)
		}
	}
}
