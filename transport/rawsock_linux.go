package transport

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// rawSocket is a connection's socket held as a bare descriptor instead of
// a *net.TCPConn. Go's net package costs about 300 bytes of heap per
// socket (netFD, TCPConn, two addresses) plus a runtime poll descriptor
// of about 250 bytes outside the heap; an idle WebSocket connection
// needs none of it, since reads are watched by readPoller and writes
// never wait on the flush workers. rawSocket is 48 bytes.
//
// It does what poll.FD did for the rare paths that wait (a write the
// peer does not read, a blocking Read, the close handshake): waits for
// readiness on a process-wide epoll instance per direction, honours
// deadlines, and keeps the descriptor open while any system call or wait
// uses it, so that a number reused by a new socket is never touched.
//
// Writes by the write side's owner (flushTurn, see Conn.fd) do not take a
// reference: the owner is what closes the socket.
type rawSocket struct {
	fd int32
	// state holds the number of references in use (system calls and
	// waits in progress, below unixBit), closedBit and unixBit. The
	// descriptor is closed by whoever sees the count reach zero once
	// closedBit is set.
	state atomic.Uint32

	readDeadline  atomic.Int64 // Unix ns; 0 for none
	writeDeadline atomic.Int64

	// mu guards the waiters, which a deadline change or Close wakes so
	// that they look at the new state.
	mu      sync.Mutex
	waiters [2]chan struct{} // by direction: waitRead, waitWrite
}

const (
	closedBit = 1 << 31
	// unixBit marks a Unix socket (else TCP), set when the socket is
	// made: errors name the network without asking the kernel (a failed
	// write, such as a close reply to a peer that reset, is common).
	unixBit = 1 << 30
	refMask = unixBit - 1
)

// Directions of a wait, indexes of rawSocket.waiters and waitPollers.
const (
	waitRead = iota
	waitWrite
)

// connUnwrapper is a net.Conn that wraps another only to replay bytes it
// read before handing the connection on (herald.Server.Serve gives
// net/http its requests that way). UnwrapConn returns the wrapped
// connection once nothing is left to replay, nil before; closing that
// closes the wrapper's socket.
type connUnwrapper interface {
	UnwrapConn() net.Conn
}

// newRawSocket takes nc's socket over when nc is a TCP or Unix socket:
// it duplicates the descriptor and closes nc, which releases Go's poll
// descriptor and netFD. It returns nil, leaving nc alone, otherwise.
func newRawSocket(nc net.Conn) *rawSocket {
	if s, ok := nc.(*rawSocket); ok { // accepted by a RawListener
		return s
	}
	if u, ok := nc.(connUnwrapper); ok {
		if inner := u.UnwrapConn(); inner != nil {
			nc = inner
		}
	}
	var flags uint32
	switch nc.(type) {
	case *net.TCPConn:
	case *net.UnixConn:
		flags = unixBit
	default:
		return nil
	}
	sc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil
	}
	dup := -1
	var dupErr error
	if err := sc.Control(func(fd uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			dupErr = errno
			return
		}
		dup = int(r)
	}); err != nil || dupErr != nil {
		return nil
	}
	// The duplicate shares the open file description and so its
	// O_NONBLOCK flag (a file status flag, fcntl(2)), which Go sets on
	// every socket it makes or accepts: no fcntl call to check it.
	// Closing nc closes its descriptor only (our duplicate keeps the
	// socket open) and removes it from Go's poller.
	_ = nc.Close()
	s := &rawSocket{fd: int32(dup)}
	s.state.Store(flags)
	return s
}

// acquire takes a reference for a system call on the descriptor; false
// means the socket is closed.
func (s *rawSocket) acquire() bool {
	for {
		v := s.state.Load()
		if v&closedBit != 0 {
			return false
		}
		if s.state.CompareAndSwap(v, v+1) {
			return true
		}
	}
}

// release drops a reference and closes the descriptor if it was the last
// one after Close.
func (s *rawSocket) release() {
	if v := s.state.Add(^uint32(0)); v&closedBit != 0 && v&refMask == 0 {
		_ = closeSock(int(s.fd))
	}
}

// control runs f with the descriptor held open; false if it is closed.
func (s *rawSocket) control(f func(fd int)) bool {
	if !s.acquire() {
		return false
	}
	f(int(s.fd))
	s.release()
	return true
}

// unread returns how many bytes the socket has received that nobody has
// read yet (FIONREAD), 0 when it cannot tell.
func (s *rawSocket) unread() int {
	n := 0
	s.control(func(fd int) {
		var v int32
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCINQ, uintptr(unsafe.Pointer(&v))); errno == 0 {
			n = int(v)
		}
	})
	return n
}

// readNow reads what the socket holds now, without waiting. It returns
// errWouldBlock when there is nothing, and io.EOF as (0, nil).
func (s *rawSocket) readNow(p []byte) (int, error) {
	if !s.acquire() {
		return 0, net.ErrClosed
	}
	// p is read into during the call only (no address outlives it, unlike
	// the io_uring path's), so it may be any memory.
	n, err := ignoringEINTRIO(readSock, int(s.fd), p)
	s.release()
	if err == syscall.EAGAIN {
		return 0, errWouldBlock
	}
	if err != nil {
		return 0, os.NewSyscallError("read", err)
	}
	return n, nil
}

func ignoringEINTRIO(fn func(int, []byte) (int, error), fd int, p []byte) (int, error) {
	for {
		n, err := fn(fd, p)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

// Read reads into p, waiting for data until the read deadline.
func (s *rawSocket) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if err := s.ready(waitRead); err != nil {
			return 0, s.opError("read", err)
		}
		n, err := s.readNow(p)
		switch {
		case err == nil && n == 0:
			return 0, io.EOF
		case err == nil:
			return n, nil
		case err != errWouldBlock:
			return 0, s.opError("read", err)
		}
		if err := s.wait(waitRead); err != nil {
			return 0, s.opError("read", err)
		}
	}
}

// Write writes all of p, waiting for room until the write deadline.
func (s *rawSocket) Write(p []byte) (int, error) {
	n, err := s.writeBuffers([][]byte{p})
	return int(n), err
}

// writeBuffers writes all of bufs with writev, waiting for room until
// the write deadline. It returns the bytes written.
func (s *rawSocket) writeBuffers(bufs [][]byte) (int64, error) {
	var scratch iovecScratch
	var total int64
	for {
		if err := s.ready(waitWrite); err != nil {
			return total, s.opError("write", err)
		}
		if !s.acquire() {
			return total, s.opError("write", net.ErrClosed)
		}
		rest, n, err := writeNonBlocking(s.fd, bufs, &scratch)
		s.release()
		total += int64(n)
		bufs = rest
		if len(bufs) == 0 && err == nil {
			return total, nil
		}
		if err != nil && err != errWouldBlock {
			return total, s.opError("write", os.NewSyscallError("writev", err))
		}
		if err := s.wait(waitWrite); err != nil {
			return total, s.opError("write", err)
		}
	}
}

// ready reports why a call in direction dir cannot proceed: the socket
// is closed or the deadline has passed.
func (s *rawSocket) ready(dir int) error {
	if s.state.Load()&closedBit != 0 {
		return net.ErrClosed
	}
	if d := s.deadline(dir).Load(); d != 0 && time.Now().UnixNano() >= d {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (s *rawSocket) deadline(dir int) *atomic.Int64 {
	if dir == waitRead {
		return &s.readDeadline
	}
	return &s.writeDeadline
}

// wait blocks until the socket may be ready in direction dir, the
// deadline passes, or Close or a deadline change wakes it. The caller
// retries its system call (or returns the error of ready) afterwards.
func (s *rawSocket) wait(dir int) error {
	if !s.acquire() {
		return net.ErrClosed
	}
	defer s.release()
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.waiters[dir] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.waiters[dir] = nil
		s.mu.Unlock()
	}()
	// Read after the waiter is visible: a deadline set from now on wakes it.
	if err := s.ready(dir); err != nil {
		return err
	}
	p := &waitPollers[dir]
	if err := p.add(s.fd, ch); err != nil {
		return err
	}
	defer p.del(s.fd, ch)
	var timeout <-chan time.Time
	if d := s.deadline(dir).Load(); d != 0 {
		t := time.NewTimer(time.Until(time.Unix(0, d)))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ch:
	case <-timeout:
	}
	return nil
}

// wake makes a waiter in direction dir look again.
func (s *rawSocket) wake(dir int) {
	s.mu.Lock()
	ch := s.waiters[dir]
	s.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (s *rawSocket) opError(op string, err error) error {
	if err == io.EOF {
		return err
	}
	return &net.OpError{Op: op, Net: s.network(), Err: err}
}

// Close closes the socket: waiters return net.ErrClosed, and the
// descriptor is closed once no system call uses it.
func (s *rawSocket) Close() error {
	for {
		v := s.state.Load()
		if v&closedBit != 0 {
			return s.opError("close", net.ErrClosed)
		}
		if s.state.CompareAndSwap(v, v|closedBit) {
			if v&refMask == 0 {
				_ = closeSock(int(s.fd))
			}
			break
		}
	}
	s.wake(waitRead)
	s.wake(waitWrite)
	return nil
}

// shutdown ends one or both directions (syscall.SHUT_*) without closing
// the descriptor: waits and blocked calls return, and the peer sees the
// end.
func (s *rawSocket) shutdown(how int) error {
	var err error
	if !s.control(func(fd int) { err = syscall.Shutdown(fd, how) }) {
		return net.ErrClosed
	}
	return err
}

// shutdownBoth ends both directions: see shutdown.
func (s *rawSocket) shutdownBoth() error { return s.shutdown(syscall.SHUT_RDWR) }

// CloseWrite half-closes the socket: the peer reads EOF, reads go on.
func (s *rawSocket) CloseWrite() error { return s.shutdown(syscall.SHUT_WR) }

// SetDeadline sets both deadlines.
func (s *rawSocket) SetDeadline(t time.Time) error {
	_ = s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline sets when a waiting Read gives up; zero for never.
func (s *rawSocket) SetReadDeadline(t time.Time) error { return s.setDeadline(waitRead, t) }

// SetWriteDeadline sets when a waiting Write gives up; zero for never.
func (s *rawSocket) SetWriteDeadline(t time.Time) error { return s.setDeadline(waitWrite, t) }

func (s *rawSocket) setDeadline(dir int, t time.Time) error {
	var d int64
	if !t.IsZero() {
		d = max(t.UnixNano(), 1)
	}
	s.deadline(dir).Store(d)
	s.wake(dir)
	return nil
}

// SetReadBuffer sets the kernel's receive buffer size (SO_RCVBUF).
func (s *rawSocket) SetReadBuffer(bytes int) error {
	return s.setsockopt(syscall.SO_RCVBUF, bytes)
}

// SetWriteBuffer sets the kernel's send buffer size (SO_SNDBUF).
func (s *rawSocket) SetWriteBuffer(bytes int) error {
	return s.setsockopt(syscall.SO_SNDBUF, bytes)
}

func (s *rawSocket) setsockopt(opt, v int) error {
	var err error
	if !s.control(func(fd int) { err = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, opt, v) }) {
		return s.opError("set", net.ErrClosed)
	}
	return os.NewSyscallError("setsockopt", err)
}

// LocalAddr returns the socket's own address, asked of the kernel; after
// Close, an empty address.
func (s *rawSocket) LocalAddr() net.Addr { return s.addr(syscall.Getsockname) }

// RemoteAddr returns the peer's address, asked of the kernel (rather
// than kept by every connection); after Close, an empty address.
func (s *rawSocket) RemoteAddr() net.Addr { return s.addr(syscall.Getpeername) }

// network is "unix" or "tcp".
func (s *rawSocket) network() string {
	if s.state.Load()&unixBit != 0 {
		return "unix"
	}
	return "tcp"
}

func (s *rawSocket) addr(get func(int) (syscall.Sockaddr, error)) net.Addr {
	var sa syscall.Sockaddr
	s.control(func(fd int) { sa, _ = get(fd) })
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: a.Name, Net: "unix"}
	}
	if s.network() == "unix" {
		return &net.UnixAddr{Net: "unix"}
	}
	return &net.TCPAddr{}
}

// waitPollers wake goroutines waiting for a raw socket to become
// readable or writable: one epoll instance per direction, so that a
// read and a write may wait on the same socket at once. A socket is
// registered only while a goroutine waits on it, which is rare (a slow
// peer, a blocking Read, the close handshake).
var waitPollers = [2]waitPoller{
	waitRead:  {events: syscall.EPOLLIN | syscall.EPOLLRDHUP},
	waitWrite: {events: syscall.EPOLLOUT},
}

type waitPoller struct {
	events  uint32
	once    sync.Once
	epfd    int
	initErr error
	wakeFd  int32       // see wakePollers
	waiter  epollWaiter // how run waits for events
	ready   atomic.Bool // epfd and wakeFd are made

	mu      sync.Mutex
	waiting map[int32]chan struct{}
	running bool
}

// add registers fd until del; its readiness is reported on ch. The
// caller holds a reference to fd, so the registration ends before the
// descriptor is closed.
func (p *waitPoller) add(fd int32, ch chan struct{}) error {
	p.once.Do(func() {
		p.epfd, p.wakeFd, p.waiter, p.initErr = newEpoll()
		p.waiting = make(map[int32]chan struct{})
		p.ready.Store(p.initErr == nil)
	})
	if p.initErr != nil {
		return p.initErr
	}
	p.mu.Lock()
	p.waiting[fd] = ch
	start := !p.running
	p.running = true
	p.mu.Unlock()
	if start {
		backgroundStarted()
		go p.run()
	}
	ev := syscall.EpollEvent{Events: p.events | syscall.EPOLLONESHOT, Fd: fd}
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev); err != nil {
		p.mu.Lock()
		delete(p.waiting, fd)
		p.mu.Unlock()
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// del ends add's registration.
func (p *waitPoller) del(fd int32, ch chan struct{}) {
	_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	p.mu.Lock()
	if p.waiting[fd] == ch {
		delete(p.waiting, fd)
	}
	p.mu.Unlock()
}

// run reports readiness while anyone waits and exits within pollIdleMs
// once nobody does.
func (p *waitPoller) run() {
	defer backgroundDone()
	events := make([]syscall.EpollEvent, 64)
	for {
		n := p.waiter.wait(events)
		p.mu.Lock()
		wake := false
		for _, ev := range events[:n] {
			if ev.Fd == p.wakeFd {
				woken(p.wakeFd)
				wake = true
				continue
			}
			// A stale event (the waiter left and another socket got the
			// number) only makes that waiter try its call again.
			if ch := p.waiting[ev.Fd]; ch != nil {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
		if (n <= 0 || wake) && len(p.waiting) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
	}
}
