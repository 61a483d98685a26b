package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// socketPair returns a raw socket and the net.Conn at the other end of a
// Unix socket pair.
func socketPair(t *testing.T) (*rawSocket, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		conns[i], err = net.FileConn(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	s := newRawSocket(conns[0])
	if s == nil {
		t.Fatal("newRawSocket refused a Unix socket")
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = conns[1].Close()
	})
	return s, conns[1]
}

// fdOpen reports whether fd is an open descriptor.
func fdOpen(fd int32) bool {
	_, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	return errno == 0
}

func TestRawSocketTakesOver(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{PingInterval: -1}, func(c *Conn) { <-c.Done() })
	rc := dialRaw(t, ts.URL, "")
	c := ts.nextConn(t)
	s := c.raw()
	if s == nil {
		t.Fatalf("a TCP connection kept %T, want *rawSocket", c.nc)
	}
	if c.fd != s.fd {
		t.Errorf("Conn.fd %d, socket %d", c.fd, s.fd)
	}
	// The address comes from the kernel and names the client's end.
	if got, want := c.RemoteAddr().String(), rc.nc.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr %s, want %s", got, want)
	}
	c.Terminate(nil)
	<-c.Done()
	if got := s.state.Load(); got != closedBit {
		t.Errorf("state %#x after the end, want closed with no references", got)
	}
	if got := c.RemoteAddr().String(); got != (&net.TCPAddr{}).String() {
		t.Errorf("RemoteAddr after close %q, want the empty address", got)
	}
}

// TestRawSocketFreesGoSocket: taking a socket over closes the net.Conn's
// own descriptor, so a connection holds one descriptor, not two. Not
// parallel: it counts the process's descriptors.
func TestRawSocketFreesGoSocket(t *testing.T) {
	ts := newTestServer(t, Options{PingInterval: -1}, func(c *Conn) { <-c.Done() })
	openFDs := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip(err)
		}
		return len(ents)
	}
	before := openFDs()
	const n = 20
	for range n {
		dialRaw(t, ts.URL, "")
		ts.nextConn(t)
	}
	// Each connection: the client's socket and the server's.
	if got := openFDs() - before; got != 2*n {
		t.Errorf("%d connections opened %d descriptors, want %d", n, got, 2*n)
	}
}

func TestRawSocketReadWrite(t *testing.T) {
	t.Parallel()
	s, peer := socketPair(t)
	go func() {
		time.Sleep(20 * time.Millisecond) // Read waits for it
		_, _ = peer.Write([]byte("hello"))
	}()
	buf := make([]byte, 16)
	n, err := s.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read %q, %v", buf[:n], err)
	}
	if _, err := s.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.ReadFull(peer, buf[:5]); err != nil || string(buf[:n]) != "world" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	_ = peer.Close()
	if n, err := s.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed: %d, %v, want io.EOF", n, err)
	}
}

// TestRawSocketNetwork: errors name the socket's network, which the
// socket keeps beside its reference count (no system call), and that
// bit does not count as a reference: the descriptor is closed by Close.
func TestRawSocketNetwork(t *testing.T) {
	t.Parallel()
	s, peer := socketPair(t)
	if got := s.network(); got != "unix" {
		t.Errorf("network of a Unix socket %q", got)
	}
	_ = peer.Close()
	var err error
	for err == nil { // the first writes may still be buffered
		_, err = s.Write(make([]byte, 64<<10))
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Net != "unix" || oe.Op != "write" {
		t.Errorf("write to a closed peer: %v, want a unix write error", err)
	}
	_ = s.Close()
	if got := s.state.Load(); got != closedBit|unixBit {
		t.Errorf("state %#x after Close, want closed and unix, no references", got)
	}
	if got := (&rawSocket{}).network(); got != "tcp" {
		t.Errorf("network of a TCP socket %q", got)
	}
}

func TestRawSocketReadDeadline(t *testing.T) {
	t.Parallel()
	s, _ := socketPair(t)
	_ = s.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	_, err := s.Read(make([]byte, 4))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want a timeout", err)
	}
	// A deadline moved into the past wakes a Read that is waiting.
	_ = s.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 4))
		done <- err
	}()
	waitForWaiter(t, s, waitRead)
	_ = s.SetReadDeadline(time.Unix(1, 0))
	if err := waitErr(t, done, "the Read woken by a past deadline"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want the deadline exceeded", err)
	}
}

// waitErr returns what ch delivers, failing the test if nothing comes
// within 5 s.
func waitErr(t *testing.T, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not return", what)
		return nil
	}
}

// waitForWaiter waits until a goroutine waits on s in direction dir.
func waitForWaiter(t *testing.T, s *rawSocket, dir int) {
	t.Helper()
	checkFor(t, 5*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.waiters[dir] == nil {
			return errors.New("nobody waits")
		}
		return nil
	})
}

func TestRawSocketCloseWakesWaiters(t *testing.T) {
	t.Parallel()
	s, _ := socketPair(t)
	if err := s.SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	readErr, writeErr := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 4))
		readErr <- err
	}()
	go func() {
		// More than the socket pair holds: the write waits for the peer,
		// which never reads.
		_, err := s.Write(make([]byte, 4<<20))
		writeErr <- err
	}()
	waitForWaiter(t, s, waitRead)
	waitForWaiter(t, s, waitWrite)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]chan error{"Read": readErr, "Write": writeErr} {
		if err := waitErr(t, ch, "the "+name+" woken by Close"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s: %v, want net.ErrClosed", name, err)
		}
	}
	// closedBit alone: the last reference was dropped, which closed the
	// descriptor (TestRawSocketCloseKeepsDescriptorInUse).
	checkFor(t, 5*time.Second, func() error {
		if s.state.Load()&^unixBit != closedBit {
			return errors.New("references left")
		}
		return nil
	})
	if err := s.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}

// TestRawSocketCloseKeepsDescriptorInUse: the descriptor stays open until
// the last system call using it returns, so that its number cannot be
// reused by a new socket while an old call still runs on it. Not
// parallel: no other test may open a descriptor meanwhile.
func TestRawSocketCloseKeepsDescriptorInUse(t *testing.T) {
	s, _ := socketPair(t)
	if !s.acquire() {
		t.Fatal("acquire on an open socket failed")
	}
	_ = s.Close()
	if !fdOpen(s.fd) {
		t.Fatal("Close closed the descriptor while a call held it")
	}
	if s.acquire() {
		t.Fatal("acquire succeeded after Close")
	}
	s.release()
	if fdOpen(s.fd) {
		t.Fatal("the last release left the descriptor open")
	}
}

func TestRawSocketWriteDeadline(t *testing.T) {
	t.Parallel()
	s, peer := socketPair(t)
	if err := s.SetWriteBuffer(4096); err != nil {
		t.Fatal(err)
	}
	_ = s.SetWriteDeadline(time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() {
		_, err := s.Write(make([]byte, 4<<20))
		done <- err
	}()
	waitForWaiter(t, s, waitWrite)
	// A nearer deadline applies to the write already waiting (as closing
	// does to a write in flight).
	_ = s.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
	if err := waitErr(t, done, "the Write given a nearer deadline"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v, want the deadline exceeded", err)
	}
	// A reader lets a waiting write finish.
	_ = s.SetWriteDeadline(time.Time{})
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	if n, err := s.Write(make([]byte, 1<<20)); err != nil || n != 1<<20 {
		t.Fatalf("Write %d, %v with a reader", n, err)
	}
}

func TestRawSocketSize(t *testing.T) {
	if got := unsafe.Sizeof(rawSocket{}); got > 48 {
		t.Errorf("rawSocket is %d bytes, want at most 48 (the 48 B size class)", got)
	}
}

// TestCloseEchoToResetPeer: a client that sends its close frame and
// resets the connection at once gets no echo, and the failed write is
// reported with the shared error of a write to a peer that is gone (no
// allocation per connection), as a *net.OpError of the right network
// wrapping the errno.
func TestCloseEchoToResetPeer(t *testing.T) {
	t.Parallel()
	start := make(chan struct{})
	readErr := make(chan error, 1)
	ts := newTestServer(t, Options{PingInterval: -1}, func(c *Conn) {
		<-start
		_, _, err := c.Read(context.Background())
		readErr <- err
	})
	rc := dialRaw(t, ts.URL, "")
	c := ts.nextConn(t)
	rc.write(mframe(true, opClose, closePayload(CloseNormal, "")))
	_ = rc.nc.(*net.TCPConn).SetLinger(0)
	_ = rc.nc.Close()
	close(start)
	var ce *CloseError
	if err := waitErr(t, readErr, "the Read"); !errors.As(err, &ce) || ce.Code != CloseNormal {
		t.Fatalf("Read: %v, want the peer's close 1000", err)
	}
	<-c.Done()
	c.mu.Lock()
	err := c.closing.err
	c.mu.Unlock()
	if err != peerGoneWriteErrs[0][0] && err != peerGoneWriteErrs[0][1] {
		t.Fatalf("echo to a reset peer failed with %v (%T), want a shared peer-gone error", err, err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Net != "tcp" || !(errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("echo error %v: want a tcp *net.OpError wrapping EPIPE or ECONNRESET", err)
	}
}
