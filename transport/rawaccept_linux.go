package transport

import (
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// acceptPollWait bounds one wait of RawListener.Accept for a connection,
// and so how long closing the listener may wait for it.
const acceptPollWait = 100 * time.Millisecond

// waitReadable waits until fd is readable or d has passed (ppoll(2)).
func waitReadable(fd int, d time.Duration) {
	pfd := struct {
		fd      int32
		events  int16
		revents int16
	}{fd: int32(fd), events: 0x1} // POLLIN
	ts := syscall.NsecToTimespec(int64(d))
	_, _, _ = syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
}

// RawListener accepts TCP connections as bare descriptors: a connection
// it accepts is never registered with Go's poller, so the transport need
// not duplicate its descriptor and close Go's to take it over (see
// Upgrader.Upgrade), and no local address is asked of the kernel.
// Every accepted socket has TCP_NODELAY set and no TCP keep-alive
// (heartbeats find dead WebSocket peers; HTTP timeouts end idle
// requests). It is for an accept path that reads requests itself
// (herald.Server.Serve).
type RawListener struct {
	rc syscall.RawConn
}

// NewRawListener returns a RawListener on ln's socket, or nil when ln is
// not a *net.TCPListener (or not on Linux). ln keeps its socket: closing
// ln ends a pending Accept.
func NewRawListener(ln net.Listener) *RawListener {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return nil
	}
	return &RawListener{rc: rc}
}

// Accept returns the next connection, as a net.Conn whose deadlines,
// reads and writes work as usual and which Upgrade takes over as it is,
// with its peer's address (the same as RemoteAddr, which asks the
// kernel). A connection that is not upgraded is handed to net/http
// through NetConn. With no connection waiting, Accept waits in ppoll(2)
// for at most acceptPollWait at a time, holding the listener open
// meanwhile (so that its descriptor number is never reused under it);
// closing the listener ends Accept within that time.
func (l *RawListener) Accept() (net.Conn, *net.TCPAddr, error) {
	var (
		nfd  int
		sa   syscall.Sockaddr
		aerr error
	)
	for {
		err := l.rc.Control(func(fd uintptr) {
			for {
				nfd, sa, aerr = syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
				if aerr != syscall.EINTR {
					break
				}
			}
			if aerr == syscall.EAGAIN {
				waitReadable(int(fd), acceptPollWait)
			}
		})
		if err != nil {
			return nil, nil, err
		}
		if aerr != syscall.EAGAIN {
			break
		}
	}
	if aerr != nil {
		return nil, nil, os.NewSyscallError("accept4", aerr)
	}
	_ = syscall.SetsockoptInt(nfd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	var raddr *net.TCPAddr
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		raddr = &net.TCPAddr{IP: net.IPv4(a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3]), Port: a.Port}
	case *syscall.SockaddrInet6:
		raddr = &net.TCPAddr{IP: append(net.IP(nil), a.Addr[:]...), Port: a.Port}
	default:
		raddr = &net.TCPAddr{}
	}
	return &rawSocket{fd: int32(nfd)}, raddr, nil
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
