package transport

import (
	"errors"
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

// arm registers c's socket, or re-arms its one-shot registration.
func (p *poller) arm(c *Conn) error {
	if err := p.init(); err != nil {
		return err
	}
	var ctlErr error
	// Control holds a reference to the socket: it cannot be closed, and
	// its descriptor reused, while the registration is changed.
	err := c.rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(fd)}
		p.mu.Lock()
		op := syscall.EPOLL_CTL_MOD
		if !c.polled {
			op = syscall.EPOLL_CTL_ADD
			c.polled = true
			p.set(int(fd), c)
		}
		start := !p.running
		p.running = true
		p.mu.Unlock()
		ctlErr = syscall.EpollCtl(p.epfd, op, int(fd), &ev)
		if start {
			go p.run()
		}
	})
	return errors.Join(err, ctlErr)
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

// registered reports whether c was ever added.
func (p *poller) registered(c *Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.polled
}

// remove unregisters c; it is called before its socket is closed.
func (p *poller) remove(c *Conn) {
	_ = c.rc.Control(func(fd uintptr) {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
		p.mu.Lock()
		if p.get(int32(fd)) == c {
			p.set(int(fd), nil)
		}
		p.mu.Unlock()
	})
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

// readOnce reads what the socket holds now, without waiting. It returns
// errWouldBlock when there is nothing, and io.EOF as (0, nil).
func readOnce(rc syscall.RawConn, p []byte) (int, error) {
	var n int
	var errno error
	err := rc.Read(func(fd uintptr) bool {
		for {
			n, errno = syscall.Read(int(fd), p)
			if errno != syscall.EINTR {
				return true
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if errno == syscall.EAGAIN {
		return 0, errWouldBlock
	}
	if errno != nil {
		return 0, errno
	}
	return n, nil
}
