package transport

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollSupported reports whether NotifyReadable can watch sockets without
// a goroutine each.
const pollSupported = true

// readPoller watches idle connections for incoming bytes with one epoll
// instance shared by the process. Each registration is one-shot: an
// event hands the connection to a callback runner (see Conn.readable) and
// nothing more is reported until NotifyReadable re-arms it. The poller's
// goroutine runs while any connection is registered and exits within
// pollIdleMs once none is.
var readPoller poller

const pollIdleMs = 200

type poller struct {
	once    sync.Once
	epfd    int
	initErr error
	wakeFd  int32       // an eventfd in the epoll set: see wakePollers
	waiter  epollWaiter // how run waits for events
	ready   atomic.Bool // epfd and wakeFd are made

	mu sync.Mutex
	// conns holds the registered connections by file descriptor:
	// descriptors are small and dense, so a slice costs 8 bytes per
	// descriptor where a map cost about 30 per connection.
	conns   []*Conn
	n       int // registered connections
	running bool
}

func (p *poller) init() error {
	p.once.Do(func() {
		p.epfd, p.wakeFd, p.waiter, p.initErr = newEpoll()
		p.ready.Store(p.initErr == nil)
	})
	return p.initErr
}

// newEpoll makes an epoll instance with an eventfd in it, which wakes
// its poller when written (wakeEpoll), and the waiter its poller waits
// for events with.
func newEpoll() (epfd int, wakeFd int32, w epollWaiter, err error) {
	epfd, err = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return -1, -1, w, os.NewSyscallError("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		_ = syscall.Close(epfd)
		return -1, -1, w, os.NewSyscallError("eventfd", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(efd)}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, efd, &ev); err != nil {
		_ = syscall.Close(efd)
		_ = syscall.Close(epfd)
		return -1, -1, w, os.NewSyscallError("epoll_ctl", err)
	}
	if w, err = newEpollWaiter(epfd); err != nil {
		_ = syscall.Close(efd)
		_ = syscall.Close(epfd)
		return -1, -1, w, err
	}
	return epfd, int32(efd), w, nil
}

// epollWaiter waits for an epoll instance's events on Go's poller: the
// epoll descriptor is itself readable while it has events, so the
// runtime's own epoll watches it, and no thread of this process sits in
// epoll_wait. One that did held a P of the scheduler in its system call
// until sysmon took it back, every time, and kept sysmon polling every
// 20 µs: about a tenth of the CPU of a connect under churn.
type epollWaiter struct {
	f  *os.File // owns the epoll descriptor: never closed, the pollers live as long as the process
	rc syscall.RawConn
	fd int // the epoll descriptor

	// The call rc.Read makes, made once (a closure per wait was an
	// allocation per wake-up), with its events and what it filled.
	try    func(fd uintptr) bool
	events []syscall.EpollEvent
	n      int
}

func newEpollWaiter(epfd int) (epollWaiter, error) {
	// Non-blocking, so that os.NewFile puts it on Go's poller.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return epollWaiter{}, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		return epollWaiter{}, err
	}
	if f.SetReadDeadline(time.Time{}) != nil {
		// Not on Go's poller (which cannot happen for an epoll
		// descriptor): wait in epoll_wait, as a thread of its own.
		return epollWaiter{f: f, fd: epfd}, nil
	}
	return epollWaiter{f: f, rc: rc, fd: epfd}, nil
}

// wait fills events with what the epoll instance reports, waiting for
// at most pollIdleMs, and returns how many it filled (0 when none came).
// One goroutine waits at a time (its poller's run).
func (w *epollWaiter) wait(events []syscall.EpollEvent) int {
	if w.rc == nil {
		n, err := syscall.EpollWait(w.fd, events, pollIdleMs)
		if err != nil {
			return 0 // EINTR; no other error with a valid epoll descriptor
		}
		return n
	}
	if w.try == nil {
		w.try = w.tryWait
	}
	w.events, w.n = events, 0
	_ = w.f.SetReadDeadline(time.Now().Add(pollIdleMs * time.Millisecond))
	err := w.rc.Read(w.try)
	w.events = nil
	if err != nil {
		return 0 // the deadline passed
	}
	return w.n
}

// tryWait is wait's call on the epoll descriptor: it reports false when
// there is nothing yet, for Go's poller to wait.
func (w *epollWaiter) tryWait(fd uintptr) bool {
	var err error
	for {
		w.n, err = epollWaitNow(int(fd), w.events)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		// Cannot happen with a valid epoll descriptor: report
		// nothing rather than spin.
		w.n = 0
		return true
	}
	return w.n > 0
}

// wakeEpoll makes the eventfd readable: the poller's EpollWait returns.
func wakeEpoll(wakeFd int32) {
	var one = [8]byte{1}
	_, _ = syscall.Write(int(wakeFd), one[:])
}

// woken consumes a wake-up (the eventfd reads as its counter, and is
// then empty again).
func woken(wakeFd int32) {
	var b [8]byte
	_, _ = syscall.Read(int(wakeFd), b[:])
}

// wakePollers makes idle pollers look again at once, rather than at the
// end of their pollIdleMs wait, and so end if they have nothing to
// watch (Upgrader.Close).
func wakePollers() {
	if readPoller.ready.Load() {
		wakeEpoll(readPoller.wakeFd)
	}
	for i := range waitPollers {
		if p := &waitPollers[i]; p.ready.Load() {
			wakeEpoll(p.wakeFd)
		}
	}
}

// arm registers c's socket, or re-arms its one-shot registration. It
// fails with net.ErrClosed once the socket is closed.
func (p *poller) arm(c *Conn) error {
	if err := p.init(); err != nil {
		return err
	}
	s := c.raw()
	var ctlErr error
	// control holds a reference to the socket: it cannot be closed, and
	// its descriptor reused, while the registration is changed. Checking
	// closedBit under p.mu orders arm against forget: either forget sees
	// the slot set here, or this sees the socket closed.
	if !s.control(func(fd int) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd)}
		p.mu.Lock()
		if s.state.Load()&closedBit != 0 {
			p.mu.Unlock()
			ctlErr = net.ErrClosed
			return
		}
		op := syscall.EPOLL_CTL_MOD
		if !c.r.polled {
			op = syscall.EPOLL_CTL_ADD
			c.r.polled = true
			p.set(fd, c)
		}
		start := !p.running
		p.running = true
		p.mu.Unlock()
		ctlErr = epollCtl(p.epfd, op, fd, &ev)
		if start {
			backgroundStarted()
			go p.run()
		}
	}) {
		return net.ErrClosed
	}
	return ctlErr
}

// get returns the connection registered for fd, or nil. p.mu must be held.
func (p *poller) get(fd int32) *Conn {
	if fd < 0 || int(fd) >= len(p.conns) {
		return nil
	}
	return p.conns[fd]
}

// set registers c for fd, or unregisters fd when c is nil. p.mu must be
// held.
func (p *poller) set(fd int, c *Conn) {
	if fd >= len(p.conns) {
		if c == nil {
			return
		}
		grown := make([]*Conn, max(fd+1, 2*len(p.conns), 64))
		copy(grown, p.conns)
		p.conns = grown
	}
	switch {
	case p.conns[fd] == nil && c != nil:
		p.n++
	case p.conns[fd] != nil && c == nil:
		p.n--
	}
	p.conns[fd] = c
}

// forget drops c's slot once its socket is closed (the descriptor's
// epoll registration ends with the descriptor itself, which nothing else
// holds). The number may already belong to a new socket: only c's own
// slot is cleared.
func (p *poller) forget(c *Conn) {
	p.mu.Lock()
	if fd := c.raw().fd; p.get(fd) == c {
		p.set(int(fd), nil)
	}
	p.mu.Unlock()
}

func (p *poller) run() {
	defer backgroundDone()
	events := make([]syscall.EpollEvent, 256)
	ready := make([]*Conn, 0, len(events))
	for {
		n := p.waiter.wait(events)
		p.mu.Lock()
		wake := false
		for _, ev := range events[:n] {
			if ev.Fd == p.wakeFd {
				woken(p.wakeFd)
				wake = true
			} else if c := p.get(ev.Fd); c != nil {
				ready = append(ready, c)
			}
		}
		if (n <= 0 || wake) && p.n == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for i, c := range ready {
			ready[i] = nil
			// A stale event (the descriptor was closed and reused) only
			// causes a read that finds nothing and re-arms.
			c.readable()
		}
		ready = ready[:0]
	}
}
