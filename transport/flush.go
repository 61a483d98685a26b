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
	ring    shardRing // the running worker's
	_       [32]byte  // keep shards on separate cache lines
}

var (
	flushShards = make([]flushShard, max(1, runtime.GOMAXPROCS(0)))
	nextShard   atomic.Uint32
)

// turnScratch is a worker's reusable space for one connection's turn.
type turnScratch struct {
	batch [][]byte
	iov   iovecScratch
	ring  uringScratch
}

// IOURing reports whether flush workers write through io_uring: on
// Linux when the kernel offers it to this process (seccomp profiles such
// as Docker's default may not) and it has not been turned off, with
// DisableIOUring or HERALD_IO_URING=off in the environment. Otherwise
// each connection's turn is a writev of its own. Both write the same
// bytes; io_uring shares one system call among the turns of up to 256
// connections, which costs less CPU per write.
func IOURing() bool { return !uringDisabled.Load() && uringUsable() }

// DisableIOUring makes flush workers write each connection's turn with
// a writev of its own from their next round on.
func DisableIOUring() { uringDisabled.Store(true) }

var uringDisabled atomic.Bool

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
		backgroundStarted()
		go s.run()
	}
}

// run gives each ready connection a turn, in arrival order, until none
// is left.
func (s *flushShard) run() {
	defer backgroundDone()
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
		if r := s.ring.get(); r != nil {
			scratch.writeTurns(r, turn)
			continue
		}
		for i, c := range turn {
			turn[i] = nil
			c.flushTurn(&scratch)
		}
	}
}
