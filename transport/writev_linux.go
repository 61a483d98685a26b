package transport

import (
	"errors"
	"net"
	"syscall"
	"unsafe"
)

// maxIovecs is IOV_MAX on Linux: the most buffers one writev takes.
const maxIovecs = 1024

// rawWriteMax is the largest write made without telling the scheduler
// (see writeNonBlocking).
const rawWriteMax = 4 << 10

// iovecScratch is a flush worker's reusable iovec array.
type iovecScratch struct{ iov []syscall.Iovec }

var errWouldBlock = errors.New("transport: socket buffer full")

// rawConn returns the socket for non-blocking writes, or nil when nc is
// not a plain socket (TLS in-process, a pipe).
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	if _, isTCP := nc.(*net.TCPConn); !isTCP {
		if _, isUnix := nc.(*net.UnixConn); !isUnix {
			return nil
		}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// writeNonBlocking writes as much of bufs as the socket takes now, with
// writev, and returns what is left and how many bytes were written. It
// never waits: a full socket buffer returns errWouldBlock (or a partial
// write with a nil error and a non-empty rest). The socket stays open for
// the duration (RawConn holds a reference), so a concurrent Close cannot
// make the descriptor refer to another file.
func writeNonBlocking(rc syscall.RawConn, bufs [][]byte, s *iovecScratch) (rest [][]byte, written int, err error) {
	rest = bufs
	for len(rest) > 0 {
		iov := s.iov[:0]
		size := 0
		for _, b := range rest[:min(len(rest), maxIovecs)] {
			if len(b) == 0 {
				continue
			}
			v := syscall.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
			size += len(b)
		}
		s.iov = iov
		if size == 0 {
			return nil, written, nil
		}
		var n int
		var errno syscall.Errno
		// Control, not Write: the socket is non-blocking and this never
		// waits, so the poller need not be reset nor the write lock taken
		// (the flush workers' ownership already serialises writers).
		//
		// A small write goes through RawSyscall: it cannot block and takes
		// about as long as a context switch, so telling the scheduler
		// only makes the runtime's monitor hand the P to another thread
		// (5 % less CPU per delivery at 5 messages/s per connection). A
		// large batch can keep the kernel busy for far longer, and there
		// the P is better handed over to fan-out work (p99 was ~40 %
		// higher at 900k deliveries/s with RawSyscall for every write).
		call := syscall.Syscall
		if size <= rawWriteMax {
			call = syscall.RawSyscall
		}
		ctrlErr := rc.Control(func(fd uintptr) {
			for {
				r, _, e := call(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
				if e == syscall.EINTR {
					continue
				}
				n, errno = int(r), e
				return
			}
		})
		clear(iov) // drop pointers into frames
		if ctrlErr != nil {
			return rest, written, ctrlErr
		}
		if errno == syscall.EAGAIN {
			return rest, written, errWouldBlock
		}
		if errno != 0 {
			return rest, written, errno
		}
		written += n
		rest = advance(rest, n)
		if n < size {
			return rest, written, nil // the socket took part of it
		}
	}
	return nil, written, nil
}
