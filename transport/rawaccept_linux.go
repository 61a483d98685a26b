package transport

import (
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// RawListener accepts TCP connections as bare descriptors: a connection
// it accepts is never registered with Go's poller, so the transport need
// not duplicate its descriptor and close Go's to take it over (see
// Upgrader.Upgrade), and no local address is asked of the kernel.
// Every accepted socket has TCP_NODELAY set and no TCP keep-alive
// (heartbeats find dead WebSocket peers; HTTP timeouts end idle
// requests). It is for an accept path that reads requests itself
// (herald.Server.Serve).
type RawListener struct {
	// f is a duplicate of the listener's descriptor, registered with
	// Go's poller (the net package does not let a listener's RawConn
	// wait for readiness): Accept waits on it.
	f  *os.File
	rc syscall.RawConn

	mu  sync.Mutex // one Accept at a time: the fields below are its
	try func(fd uintptr) bool
	nfd int
	rsa syscall.RawSockaddrAny
	err syscall.Errno
	// noDelay: TCP_NODELAY is set on each accepted socket. Set on the
	// listener, it is inherited by the sockets it accepts (Linux copies
	// the listener's TCP state), which the first Accept checks.
	noDelay bool
	checked bool
}

// deferAcceptSeconds is the listener's TCP_DEFER_ACCEPT: the kernel
// hands over a connection when its first bytes arrive, or, for a client
// that sends nothing, about this long after the handshake (when the
// client answers the first retransmitted SYN-ACK).
const deferAcceptSeconds = 1

// NewRawListener returns a RawListener on ln's socket, or nil when ln is
// not a *net.TCPListener (or not on Linux). ln and the RawListener share
// the socket, which listens until both are closed: close both. Close
// ends a pending Accept. It sets TCP_NODELAY on the socket, for the
// connections it accepts, and TCP_DEFER_ACCEPT (1 s): a connection is
// accepted once its client has sent something, so that its first read
// finds the request instead of waiting for it (one wake-up of the
// accepting side per connection, not two); a client that sends nothing
// is accepted about a second after its handshake. Both options apply to
// ln's own Accept too.
func NewRawListener(ln net.Listener) *RawListener {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	refreshSockcalls()
	lrc, err := tl.SyscallConn()
	if err != nil {
		return nil
	}
	dup := -1
	noDelay := true
	if err := lrc.Control(func(fd uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if errno == 0 {
			dup = int(r)
		}
		noDelay = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1) != nil
		// Best effort: without it, a connection is accepted at once.
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, deferAcceptSeconds)
	}); err != nil || dup < 0 {
		return nil
	}
	// The duplicate shares the listener's O_NONBLOCK, which Go sets, so
	// os.NewFile registers it with Go's poller; deadlines work only if
	// it did.
	f := os.NewFile(uintptr(dup), "listener")
	rc, err := f.SyscallConn()
	if err != nil || f.SetReadDeadline(time.Time{}) != nil {
		_ = f.Close()
		return nil
	}
	l := &RawListener{f: f, rc: rc, noDelay: noDelay, checked: noDelay}
	l.try = l.tryAccept // made once: a closure per Accept would be allocated
	return l
}

// Close closes the RawListener's hold on the socket and ends a pending
// Accept.
func (l *RawListener) Close() error { return l.f.Close() }

// Accept returns the next connection, as a net.Conn whose deadlines,
// reads and writes work as usual and which Upgrade takes over as it is,
// with its peer's address (the same as RemoteAddr, which asks the
// kernel). A connection that is not upgraded is handed to net/http
// through NetConn. With no connection waiting, Accept waits on Go's
// poller for the listener to become readable, holding the listener
// open meanwhile (so that its descriptor number is never reused under
// it), until Close. No thread waits in a system call: one that did
// (ppoll) kept a P of the scheduler until sysmon took it back, and kept
// sysmon polling every 20 µs. An accepted socket costs Accept one
// system call, accept4, and two allocations: the socket and the
// address.
func (l *RawListener) Accept() (net.Conn, *net.TCPAddr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.rc.Read(l.try); err != nil {
		return nil, nil, err
	}
	if l.err != 0 {
		return nil, nil, os.NewSyscallError("accept4", l.err)
	}
	nfd := l.nfd
	if !l.checked {
		l.checked = true
		v, err := syscall.GetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		l.noDelay = err != nil || v == 0
	}
	if l.noDelay {
		_ = syscall.SetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	}
	return &rawSocket{fd: int32(nfd)}, peerAddr(&l.rsa), nil
}

// tryAccept is accept4(2) on the listener, without waiting; false when
// no connection is waiting. l.mu is held.
func (l *RawListener) tryAccept(fd uintptr) bool {
	for {
		size := uint32(syscall.SizeofSockaddrAny)
		r, errno := accept4Sock(fd, &l.rsa, &size, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		l.nfd, l.err = int(r), errno
		return true
	}
}

// peerAddr is the TCP address in rsa, in one allocation with its IP.
func peerAddr(rsa *syscall.RawSockaddrAny) *net.TCPAddr {
	a := new(struct {
		addr net.TCPAddr
		ip   [16]byte
	})
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		a.addr.IP = append(a.ip[:0], sa.Addr[:]...)
		a.addr.Port = netPort(&sa.Port)
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		a.addr.IP = append(a.ip[:0], sa.Addr[:]...)
		a.addr.Port = netPort(&sa.Port)
		// A zone is dropped, as the kernel's own name would be asked for.
	}
	return &a.addr
}

// netPort reads a port in network byte order.
func netPort(p *uint16) int {
	b := (*[2]byte)(unsafe.Pointer(p))
	return int(b[0])<<8 | int(b[1])
}

// ReadAvailable reads what c holds now into p, without waiting, when c
// is a socket RawListener accepted: (n, nil) for n > 0 bytes, (0, nil)
// at the end of the stream, and ErrWouldBlock when nothing has come. For
// any other net.Conn it reads nothing and returns ErrWouldBlock: the
// caller then reads as usual (with a deadline, say). It lets an accept
// path take a head that is already there (TCP_DEFER_ACCEPT) without
// setting up a wait for it.
func ReadAvailable(c net.Conn, p []byte) (int, error) {
	s, ok := c.(*rawSocket)
	if !ok || len(p) == 0 {
		return 0, ErrWouldBlock
	}
	n, err := s.readNow(p)
	if err == errWouldBlock {
		return 0, ErrWouldBlock
	}
	return n, err
}

// NetConn returns c as a net.Conn of Go's net package when c is a socket
// RawListener accepted (closing c: the returned conn holds a duplicate
// of its descriptor), and c itself otherwise.
func NetConn(c net.Conn) (net.Conn, error) {
	s, ok := c.(*rawSocket)
	if !ok {
		return c, nil
	}
	defer s.Close()
	var nc net.Conn
	var err error
	if !s.control(func(fd int) {
		dup, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			err = os.NewSyscallError("fcntl", errno)
			return
		}
		f := os.NewFile(dup, "")  // owns dup
		nc, err = net.FileConn(f) // a duplicate of its own, on Go's poller
		_ = f.Close()
	}) {
		return nil, net.ErrClosed
	}
	return nc, err
}
