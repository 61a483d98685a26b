package transport

import (
	"net"
	"sync"
	"syscall"
)

// pollSupported reports whether NotifyReadable can watch sockets without
// a goroutine each.
const pollSupported = true

// readPoller watches idle connections for incoming bytes with one epoll
// instance shared by the process. Each registration is one-shot: an
// event hands the connection to a new goroutine (see Conn.readable) and
// nothing more is reported until NotifyReadable re-arms it. The poller's
// goroutine runs while any connection is registered and exits within
// pollIdleMs once none is.
var readPoller poller

const pollIdleMs = 200

type poller struct {
	once    sync.Once
	epfd    int
	initErr error

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
		p.epfd, p.initErr = syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	})
	return p.initErr
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
		if !c.polled {
			op = syscall.EPOLL_CTL_ADD
			c.polled = true
			p.set(fd, c)
		}
		start := !p.running
		p.running = true
		p.mu.Unlock()
		ctlErr = syscall.EpollCtl(p.epfd, op, fd, &ev)
		if start {
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
	events := make([]syscall.EpollEvent, 256)
	ready := make([]*Conn, 0, len(events))
	for {
		n, err := syscall.EpollWait(p.epfd, events, pollIdleMs)
		if err != nil && err != syscall.EINTR {
			// Cannot happen with a valid epoll descriptor; do not spin.
			n = 0
		}
		p.mu.Lock()
		if n <= 0 && p.n == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		for _, ev := range events[:max(n, 0)] {
			if c := p.get(ev.Fd); c != nil {
				ready = append(ready, c)
			}
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
