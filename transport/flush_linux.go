package transport

import (
	"sync"
	"sync/atomic"
	"syscall"
)

// uringWrites counts the writes made through io_uring, for tests.
var uringWrites atomic.Uint64

// uringSlot is one connection's turn in a group written through the
// shard's io_uring.
type uringSlot struct {
	c          *Conn
	start, end int   // its frames in turnScratch.batch
	size       int   // bytes queued for the kernel (up to maxIovecs frames)
	res        int32 // the write's result: bytes, or a negative errno
	queued     bool  // a write was queued (false: nothing to write)
	done       bool  // the write completed
}

// uringScratch is the part of a worker's scratch space the io_uring
// path uses.
type uringScratch struct {
	slots []uringSlot
	long  bool // the last group's turns carried more than one frame each
}

// shardRing is the io_uring a shard's workers write through, made by
// the first worker that needs it.
type shardRing struct {
	r      *uring
	failed bool // no ring: it could not be made, or it broke
}

// get returns the ring, or nil when turns are written one by one.
func (s *shardRing) get() *uring {
	if uringDisabled.Load() {
		return nil
	}
	if s.r == nil && !s.failed {
		if !uringUsable() {
			s.failed = true
			return nil
		}
		r, err := newURing(uringEntries)
		if err != nil {
			s.failed = true
			return nil
		}
		s.r = r
	}
	if s.r != nil && s.r.broken {
		s.r, s.failed = nil, true // keep in flight what may still be
	}
	return s.r
}

// writeTurns gives each connection of turn its turn, writing up to a
// ring's capacity of them with one submission.
//
// The ring is for single-frame turns, the low rates where each message
// is its own write and the system call a large part of its cost. When
// turns carry more than one frame (a busy node), they are taken and
// written one at a time, as without io_uring. In the cluster benchmark
// (three nodes of one thread each on two cores) the ring for every
// group raised p99 at 600k deliveries/s from a median of 433 to 546 ms
// over six alternating runs, and with groups of 32 turns instead of 256
// the 750k step fell to about 610k/s at p99 2.2 s where this switch
// passed it; why is not known (a group taken whole before any of it is
// written is not all of it). The frames per turn of each group decide
// how the next one is written.
func (sc *turnScratch) writeTurns(r *uring, turn []*Conn) {
	for len(turn) > 0 {
		group := turn[:min(len(turn), r.capacity())]
		turn = turn[len(group):]
		var frames int
		if sc.ring.long {
			for i, c := range group {
				group[i] = nil
				frames += c.flushTurn(sc)
			}
		} else {
			frames = sc.writeGroup(r, group)
		}
		sc.ring.long = longTurns(frames, len(group))
		if r.broken {
			for i, c := range turn {
				turn[i] = nil
				c.flushTurn(sc)
			}
			return
		}
	}
}

// longTurns reports whether turns carrying frames frames in all are
// more than single-frame turns: over 1.25 frames per turn on average.
func longTurns(frames, turns int) bool { return 4*frames > 5*turns }

// abandoned keeps the memory of writes a broken ring may still read.
var abandoned struct {
	mu   sync.Mutex
	bufs []any
}

// writeGroup takes the turns of group, writes them with one io_uring
// submission and ends each with its result. It returns the frames the
// turns carried.
func (sc *turnScratch) writeGroup(r *uring, group []*Conn) int {
	batch := sc.batch[:0]
	slots := sc.ring.slots[:0]
	for i, c := range group {
		group[i] = nil
		start := len(batch)
		var write bool
		if batch, write = c.takeTurn(batch); write {
			slots = append(slots, uringSlot{c: c, start: start, end: len(batch)})
		} else {
			clear(batch[start:])
			batch = batch[:start]
		}
	}
	// One iovec array for the group, sized first: the ring holds its
	// addresses until the submission returns. The kernel reads it and
	// the frames after queueWritev has returned and Go code has run, so
	// neither may be on a goroutine stack, which moves when it grows.
	// Both are heap memory, which never moves: the iovecs are the
	// scratch's array (or a new one stored there, so it escapes; the
	// escape test in uring_linux_test.go checks it), and the frames are
	// the connections' queued ones, which outlive any one call. Both
	// stay reachable (iov and batch) until every write is reaped, or
	// forever in abandoned when the ring broke with writes in flight.
	total := 0
	for _, sl := range slots {
		total += min(sl.end-sl.start, maxIovecs)
	}
	iov := sc.iov.iov[:0]
	if cap(iov) < total {
		iov = make([]syscall.Iovec, 0, total)
	}
	for k := range slots {
		sl := &slots[k]
		first := len(iov)
		for _, b := range batch[sl.start:min(sl.end, sl.start+maxIovecs)] {
			if len(b) == 0 {
				continue
			}
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
			sl.size += len(b)
		}
		if len(iov) > first {
			r.queueWritev(sl.c.fd, iov[first:], uint64(k))
			sl.queued = true
		}
	}
	taken := r.submit(func(tag uint64, res int32) {
		slots[tag].res, slots[tag].done = res, true
	})
	uringWrites.Add(uint64(taken))
	if r.broken && taken > 0 {
		// Writes the kernel took may not all have completed: their
		// frames and iovecs are never reused.
		abandoned.mu.Lock()
		abandoned.bufs = append(abandoned.bufs, batch, iov)
		abandoned.mu.Unlock()
		batch, iov = append([][]byte(nil), batch...), nil
	}
	sc.iov.iov = iov
	carried := len(batch)
	for k := range slots {
		sl := &slots[k]
		frames := batch[sl.start:sl.end]
		var rest [][]byte
		var written int
		var err error
		switch {
		case !sl.queued:
			// Nothing but empty frames: nothing to write.
		case !sl.done:
			// The ring broke before this write: make it here.
			rest, written, err = writeNonBlocking(sl.c.fd, frames, &sc.iov)
		case sl.res == -int32(syscall.EAGAIN):
			rest, err = frames, errWouldBlock
		case sl.res < 0:
			rest, err = frames, syscall.Errno(-sl.res)
		default:
			written = int(sl.res)
			rest = advance(frames, written)
			if written == sl.size && len(rest) > 0 {
				// More frames than one writev takes: the rest as a
				// turn of one's own would write them.
				var more int
				rest, more, err = writeNonBlocking(sl.c.fd, rest, &sc.iov)
				written += more
			}
		}
		sl.c.endTurn(len(frames), rest, written, err)
	}
	clear(batch) // drop references to frames
	sc.batch = batch[:0]
	clear(sc.iov.iov)
	clear(slots)
	sc.ring.slots = slots[:0]
	return carried
}
