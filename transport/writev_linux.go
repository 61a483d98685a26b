package transport

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// maxIovecs is IOV_MAX on Linux: the most buffers one writev takes.
const maxIovecs = 1024

// iovecScratch is a flush worker's reusable iovec array.
type iovecScratch struct {
	iov []syscall.Iovec
	// raw: the turns are taken outside the flush workers (Release's
	// first turn, a send written at once), whose writev may be a raw
	// call (see rawSockcalls). A flush worker's stay syscall.Syscall:
	// at 900k deliveries/s on one node a raw writev per turn raised
	// p99 from 173-193 to 214-257 ms (docs/benchmarks.md).
	raw bool
}

var errWouldBlock = errors.New("transport: socket buffer full")

// writeNonBlocking writes as much of bufs as the socket fd takes now,
// with writev, and returns what is left and how many bytes were written.
// It never waits: a full socket buffer returns errWouldBlock (or a
// partial write with a nil error and a non-empty rest). The caller must
// own the connection's write side, which keeps fd open (see Conn.fd).
func writeNonBlocking(fd int32, bufs [][]byte, s *iovecScratch) (rest [][]byte, written int, err error) {
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
		// The descriptor directly, not RawConn.Write or Control: the
		// socket is non-blocking and this never waits, so the poller
		// need not be reset nor the write lock taken (the flush
		// workers' ownership already serialises writers), and the
		// reference count is the write side's ownership.
		//
		// A raw call for a turn outside the flush workers while
		// GOMAXPROCS is more than one, else Syscall: see rawSockcalls
		// and iovecScratch.raw.
		//
		// The kernel reads iov and the frames only during the call: a
		// goroutine's stack is never moved while it is in a system call,
		// and the address is converted in the call expression itself, so
		// even stack memory would be safe here (bufs is heap memory
		// anyway, and so is iov, kept in the caller's scratch).
		var r uintptr
		var errno syscall.Errno
		for {
			r, errno = writevSock(fd, iov, s.raw)
			if errno != syscall.EINTR {
				break
			}
		}
		clear(iov) // drop pointers into frames
		if errno == syscall.EAGAIN {
			return rest, written, errWouldBlock
		}
		if errno != 0 {
			return rest, written, errno
		}
		n := int(r)
		written += n
		rest = advance(rest, n)
		if n < size {
			return rest, written, nil // the socket took part of it
		}
	}
	return nil, written, nil
}

// writeCloseFrame writes the close frame of the close sequence, which
// owns the write side: straight to the descriptor when the socket takes
// it at once (nearly always: nothing else is queued), else as
// writeBlocking does. A client that sends its close and resets at once
// (a load generator; a page being unloaded) makes the echo fail: that
// error is one shared value per network and errno rather than four
// allocations per connection, and costs no scratch space.
func (c *Conn) writeCloseFrame(frame []byte) error {
	if c.fd < 0 {
		return c.writeBlocking(net.Buffers{frame})
	}
	n, err := writeNow(c.fd, frame)
	c.bytesOut.Add(uint64(n))
	switch {
	case err == nil && n == len(frame):
		return nil
	case err == nil || err == syscall.EAGAIN:
		return c.writeBlocking(net.Buffers{frame[n:]})
	}
	if e := peerGoneWriteError(c.raw().network(), err); e != nil {
		return e
	}
	return fmt.Errorf("transport: write: %w", c.raw().opError("write", os.NewSyscallError("write", err)))
}

// peerGoneWriteErrs are the errors of writes to a peer that is gone, as
// writeBlocking would make them, by network (tcp, unix) and errno
// (EPIPE, ECONNRESET).
var peerGoneWriteErrs = func() (e [2][2]error) {
	for i, network := range []string{"tcp", "unix"} {
		for j, errno := range []syscall.Errno{syscall.EPIPE, syscall.ECONNRESET} {
			e[i][j] = fmt.Errorf("transport: write: %w", &net.OpError{Op: "write", Net: network, Err: os.NewSyscallError("write", errno)})
		}
	}
	return e
}()

// peerGoneWriteError returns the shared error of a write on network
// that failed with err because the peer is gone, or nil for another
// error.
func peerGoneWriteError(network string, err error) error {
	i := 0
	if network == "unix" {
		i = 1
	}
	switch err {
	case syscall.EPIPE:
		return peerGoneWriteErrs[i][0]
	case syscall.ECONNRESET:
		return peerGoneWriteErrs[i][1]
	}
	return nil
}

// writeNow is write(2) of b to the non-blocking descriptor fd, without
// the allocations of syscall.Write's error: the bytes written (0 on an
// error) and the errno, nil when none.
func writeNow(fd int32, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		r, errno := writeSock(fd, b)
		switch errno {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		}
		return 0, errno
	}
}
