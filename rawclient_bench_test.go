//go:build linux

package herald_test

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// rawClient is the benchmarks' client: bare system calls on a buffer made
// once, so it allocates nothing and a benchmark's allocs/op and B/op are
// the server's own.
type rawClient struct {
	sa  *syscall.SockaddrInet4
	tv  syscall.Timeval
	buf []byte
}

// newRawClient returns a client of the server listening on addr.
func newRawClient(tb testing.TB, addr string) *rawClient {
	ap, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	return &rawClient{sa: sa, tv: syscall.NsecToTimeval(int64(10 * time.Second)), buf: make([]byte, 4096)}
}

// socket returns a new socket with a 10 s read timeout, not yet
// connected.
func (rc *rawClient) socket() (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &rc.tv)
	return fd, nil
}

// readUntil reads from fd into rc.buf until whole reports the bytes read
// whole.
func (rc *rawClient) readUntil(fd int, whole func([]byte) bool) error {
	n := 0
	for {
		m, err := syscall.Read(fd, rc.buf[n:])
		if err == syscall.EINTR {
			// A signal (the runtime's preemption) during a read with
			// SO_RCVTIMEO set is not restarted (signal(7)).
			continue
		}
		if err != nil || m <= 0 {
			return io.ErrUnexpectedEOF
		}
		n += m
		if whole(rc.buf[:n]) {
			return nil
		}
	}
}

var (
	// rawCloseFrame is a masked close frame, code 1000, mask 0.
	rawCloseFrame = []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}
	// rawLinger makes a close reset the connection.
	rawLinger = &syscall.Linger{Onoff: 1, Linger: 0}
)

// hangUp sends a close frame (1000) and sets fd to be reset when it is
// closed, as herald bench's churn clients end.
func (rc *rawClient) hangUp(fd int) error {
	if _, err := syscall.Write(fd, rawCloseFrame); err != nil {
		return err
	}
	return syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, rawLinger)
}

// benchConnects runs connect once to warm up and check the exchange, then
// b.N times, and reports connects/s.
func benchConnects(b *testing.B, connect func() error) {
	if err := connect(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := connect(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "connects/s")
}
