package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestSockcallsFollowGOMAXPROCS: the socket calls are raw only while
// GOMAXPROCS is more than one (a thread the OS preempts in a raw call
// keeps its P), as NewUpgrader and NewRawListener find it.
func TestSockcallsFollowGOMAXPROCS(t *testing.T) {
	old := runtime.GOMAXPROCS(1)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(old)
		refreshSockcalls()
	})
	u := NewUpgrader(Options{})
	_ = u.Close(context.Background())
	if rawSockcalls.Load() {
		t.Fatal("raw socket calls with GOMAXPROCS 1")
	}
	runtime.GOMAXPROCS(2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rl := NewRawListener(ln)
	if rl == nil {
		t.Fatal("NewRawListener(*net.TCPListener) = nil")
	}
	defer rl.Close()
	if !rawSockcalls.Load() {
		t.Fatal("no raw socket calls with GOMAXPROCS 2")
	}
}

// TestSockcalls: accept4, read, write, writev (outside the flush
// workers), epoll_ctl, a zero-timeout epoll_wait and close do the same
// made either way.
func TestSockcalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  bool
	}{
		{"syscall", false},
		{"raw", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			was := rawSockcalls.Load()
			rawSockcalls.Store(tc.raw)
			t.Cleanup(func() { rawSockcalls.Store(was) })

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			rl := NewRawListener(ln)
			if rl == nil {
				t.Fatal("NewRawListener(*net.TCPListener) = nil")
			}
			defer rl.Close()
			rawSockcalls.Store(tc.raw) // NewRawListener set it from GOMAXPROCS
			client, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			if _, err := client.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			nc, _, err := rl.Accept()
			if err != nil {
				t.Fatal(err)
			}
			s := nc.(*rawSocket)
			defer s.Close()

			epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(epfd)
			ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: s.fd}
			if err := epollCtl(epfd, syscall.EPOLL_CTL_ADD, int(s.fd), &ev); err != nil {
				t.Fatalf("epoll_ctl: %v", err)
			}
			events := make([]syscall.EpollEvent, 4)
			deadline := time.Now().Add(10 * time.Second)
			for {
				n, err := epollWaitNow(epfd, events)
				if err != nil && !errors.Is(err, syscall.EINTR) {
					t.Fatalf("epoll_wait: %v", err)
				}
				if n == 1 && events[0].Fd == s.fd {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the accepted socket never read as readable")
				}
				time.Sleep(time.Millisecond)
			}

			buf := make([]byte, 16)
			n, err := s.readNow(buf)
			if err != nil || string(buf[:n]) != "ping" {
				t.Fatalf("readNow: %q, %v", buf[:n], err)
			}
			if _, err := s.readNow(buf); err != errWouldBlock {
				t.Fatalf("readNow of an empty socket: %v, want errWouldBlock", err)
			}
			if n, err := writeNow(s.fd, []byte("po")); n != 2 || err != nil {
				t.Fatalf("writeNow: %d, %v", n, err)
			}
			scratch := iovecScratch{raw: true} // a turn outside the flush workers
			if rest, n, err := writeNonBlocking(s.fd, [][]byte{[]byte("n"), []byte("g")}, &scratch); len(rest) != 0 || n != 2 || err != nil {
				t.Fatalf("writeNonBlocking: %d left, %d written, %v", len(rest), n, err)
			}
			_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, 4)
			if _, err := io.ReadFull(client, got); err != nil || string(got) != "pong" {
				t.Fatalf("client read %q, %v", got, err)
			}

			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if n, err := client.Read(got); err != io.EOF {
				t.Fatalf("client read after Close: %d, %v; want EOF", n, err)
			}
		})
	}
}
