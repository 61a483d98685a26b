package transport

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// An io_uring submits the writes of many connections' turns with one
// system call. On a virtual machine with the usual speculative
// execution mitigations an empty system call costs about 0.6 µs, and
// Go's bookkeeping around each one comes on top: in the end-to-end
// benchmark at 50k deliveries/s (one write per delivery) the server's
// CPU per delivery fell by a third to a half (docs/benchmarks.md). The
// work the kernel does for the socket is the same; only the crossing
// is shared. BenchmarkTurnWrites compares the two paths in-process.
//
// Each write is a writev with RWF_NOWAIT, so a socket whose buffer is
// full completes at once with EAGAIN, as a non-blocking writev does,
// rather than waiting in the kernel: flush workers never wait for a
// peer. Every submission is reaped before the call returns, so the
// frames and iovecs it points at stay in the worker's scratch space
// only for that long.
//
// The ring is a flush shard's, used by one worker at a time, and lives
// as long as the process. Where io_uring is missing or refused (old
// kernels, seccomp profiles that block it, HERALD_IO_URING=off) workers
// write each turn with its own writev, as before.

// Constants of the io_uring ABI (linux/io_uring.h).
const (
	uringOpWritev = 2

	uringSetupSubmitAll   = 1 << 7
	uringSetupCoopTaskrun = 1 << 8

	uringEnterGetEvents = 1 << 0

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000

	rwfNoWait = 0x8
)

// uringEntries is the submission ring's size: the most turns written by
// one submission.
const uringEntries = 256

type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	_           [2]uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sq                                                                     uringSQOffsets
	cq                                                                     uringCQOffsets
}

// uring is one io_uring instance, owned by one goroutine at a time.
type uring struct {
	fd     int
	sqHead *uint32 // advanced by the kernel as it consumes entries
	sqTail *uint32
	sqMask uint32
	sqIdx  []uint32
	sqes   []uringSQE
	cqHead *uint32
	cqTail *uint32 // advanced by the kernel as it posts completions
	cqMask uint32
	cqes   []uringCQE
	queued int // entries filled since the last submit
	// broken is set when the kernel refused a submission for a reason
	// that retrying does not cure; the ring is not used again.
	broken bool
}

// newURing sets up a ring with room for entries submissions, or returns
// an error if the kernel does not offer io_uring to this process.
func newURing(entries uint32) (*uring, error) {
	var p uringParams
	p.flags = uringSetupSubmitAll | uringSetupCoopTaskrun
	fd, _, errno := syscall.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno == syscall.EINVAL {
		p = uringParams{} // kernels before 5.19 know neither flag
		fd, _, errno = syscall.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	}
	if errno != 0 {
		return nil, os.NewSyscallError("io_uring_setup", errno)
	}
	r := &uring{fd: int(fd)}
	mmap := func(off int64, size int) ([]byte, error) {
		b, err := syscall.Mmap(r.fd, off, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
		return b, os.NewSyscallError("mmap", err)
	}
	sq, err := mmap(uringOffSQRing, int(p.sq.array)+int(p.sqEntries)*4)
	if err != nil {
		_ = syscall.Close(r.fd)
		return nil, err
	}
	cq, err := mmap(uringOffCQRing, int(p.cq.cqes)+int(p.cqEntries)*int(unsafe.Sizeof(uringCQE{})))
	if err != nil {
		_ = syscall.Close(r.fd)
		return nil, err
	}
	sqes, err := mmap(uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})))
	if err != nil {
		_ = syscall.Close(r.fd)
		return nil, err
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqMask = u32(sq, p.sq.head), u32(sq, p.sq.tail), *u32(sq, p.sq.ringMask)
	r.sqIdx = unsafe.Slice(u32(sq, p.sq.array), p.sqEntries)
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&sqes[0])), p.sqEntries)
	r.cqHead, r.cqTail, r.cqMask = u32(cq, p.cq.head), u32(cq, p.cq.tail), *u32(cq, p.cq.ringMask)
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&cq[p.cq.cqes])), p.cqEntries)
	return r, nil
}

// close releases the ring. Nothing may be in flight.
func (r *uring) close() {
	_ = syscall.Close(r.fd)
	// The mappings go with the process; rings are made once per shard.
}

// capacity is how many writes one submit takes.
func (r *uring) capacity() int { return len(r.sqes) }

// queueWritev adds a non-blocking writev of iov to fd, tagged with tag.
// The iovecs and what they point at must stay put until submit returns:
// the entry keeps their address as an integer, which neither the garbage
// collector nor a stack copy knows about, so they must be heap memory
// (which never moves) held reachable by the caller, never a variable
// that may live on a goroutine stack.
func (r *uring) queueWritev(fd int32, iov []syscall.Iovec, tag uint64) {
	tail := atomic.LoadUint32(r.sqTail) + uint32(r.queued)
	i := tail & r.sqMask
	r.sqes[i] = uringSQE{
		opcode:   uringOpWritev,
		fd:       fd,
		off:      ^uint64(0), // the socket's own position: none
		addr:     uint64(uintptr(unsafe.Pointer(&iov[0]))),
		len:      uint32(len(iov)),
		rwFlags:  rwfNoWait,
		userData: tag,
	}
	r.sqIdx[i] = i
	r.queued++
}

// publish makes the queued entries visible to the kernel and returns
// the submission head before them.
func (r *uring) publish() (n int, head uint32) {
	n, r.queued = r.queued, 0
	head = atomic.LoadUint32(r.sqHead)
	atomic.StoreUint32(r.sqTail, atomic.LoadUint32(r.sqTail)+uint32(n))
	return n, head
}

// enter is the io_uring_enter system call.
func (r *uring) enter(toSubmit, minComplete int, flags uintptr) syscall.Errno {
	_, _, errno := syscall.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(minComplete), flags, 0, 0)
	return errno
}

// submit hands the queued writes to the kernel and calls done with each
// one's tag and result (bytes written, or a negative errno) once all of
// them have completed. It returns how many of the queued writes the
// kernel took: fewer only if the ring broke (r.broken), in which case
// the writes after those were not made and the caller must make them
// itself, in order of queueing.
func (r *uring) submit(done func(tag uint64, res int32)) int {
	n, head := r.publish()
	taken, reaped := 0, 0
	for taken < n || reaped < n {
		// Writes to sockets complete while they are submitted, so one
		// call normally does everything; it only waits when one did
		// not, or when a signal cut the wait short.
		errno := r.enter(n-taken, n-reaped, uringEnterGetEvents)
		taken = int(atomic.LoadUint32(r.sqHead) - head)
		reaped += r.reap(done)
		switch errno {
		case 0, syscall.EINTR, syscall.EAGAIN, syscall.EBUSY:
			continue
		}
		// Something retrying does not cure: finish what the kernel took
		// and give the rest back. Entries it did not take are never
		// read, since the ring is not entered again.
		r.broken = true
		for reaped < taken {
			if errno := r.enter(0, taken-reaped, uringEnterGetEvents); errno != 0 && errno != syscall.EINTR {
				// What is in flight cannot be waited for. This does not
				// happen on a ring that worked; the caller keeps the
				// memory those writes read as it is.
				break
			}
			reaped += r.reap(done)
		}
		return taken
	}
	return n
}

// reap calls done for each posted completion and frees its slot.
func (r *uring) reap(done func(tag uint64, res int32)) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	n := int(tail - head)
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		done(c.userData, c.res)
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// uringProbe makes sure the kernel's io_uring does what flush workers
// rely on: a write to a full non-blocking socket completes at once with
// EAGAIN (RWF_NOWAIT), rather than waiting for the peer.
func uringProbe(r *uring) bool {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer syscall.Close(fds[1])
	defer syscall.Close(fds[0])
	mem := newProbeMemory()
	buf, iov := mem.buf[:], mem.iov[:]
	write := func() (res int32, completed bool) {
		r.queueWritev(int32(fds[0]), iov, 0)
		r.publish()
		for {
			errno := r.enter(1, 0, 0)
			if errno == 0 {
				break
			}
			if errno != syscall.EINTR {
				return 0, false
			}
		}
		// No waiting: a write that did not complete during submission
		// waits in the kernel, which is what rules io_uring out.
		if r.reap(func(_ uint64, v int32) { res = v }) == 0 {
			return 0, false
		}
		return res, true
	}
	if res, ok := write(); !ok || res != int32(len(buf)) {
		return false
	}
	for { // fill the socket
		if _, err := syscall.Write(fds[0], buf); err != nil {
			break
		}
	}
	res, ok := write()
	if !ok {
		// The write is waiting in the kernel for the peer: closing the
		// sockets (deferred) ends it, and the ring with it.
		return false
	}
	return res == -int32(syscall.EAGAIN)
}

// probeMemory is what the probe's writes point the kernel at: the frame
// and its iovec. A submission entry holds their addresses as plain
// integers from queueWritev until the write completes, and Go code runs
// in between, so they must not be on a goroutine stack, which moves when
// it grows (a buffer that does not escape, such as make([]byte, 4096)
// used only through unsafe.Pointer, is put there). Each probe's memory
// is allocated on the heap, which never moves, and kept reachable for
// the life of the process in probeMemories: a probe whose write did not
// complete leaves it in flight, and the kernel may still read it after
// the probe returned.
type probeMemory struct {
	buf [4096]byte
	iov [1]syscall.Iovec
}

var probeMemories struct {
	mu   sync.Mutex
	kept []*probeMemory
}

// newProbeMemory returns memory for one probe, on the heap and kept.
func newProbeMemory() *probeMemory {
	m := new(probeMemory)
	m.iov[0] = syscall.Iovec{Base: &m.buf[0]}
	m.iov[0].SetLen(len(m.buf))
	probeMemories.mu.Lock()
	probeMemories.kept = append(probeMemories.kept, m)
	probeMemories.mu.Unlock()
	return m
}

var uringState struct {
	once   sync.Once
	usable bool
}

// uringUsable reports whether flush workers write through io_uring. It
// is decided once per process.
func uringUsable() bool {
	uringState.once.Do(func() {
		if os.Getenv("HERALD_IO_URING") == "off" {
			return
		}
		r, err := newURing(2)
		if err != nil {
			return
		}
		uringState.usable = uringProbe(r)
		r.close()
	})
	return uringState.usable
}
