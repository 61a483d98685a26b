package transport

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestRawListener: a connection waiting in the backlog is accepted as a
// bare socket (with its peer's address) that reads, writes and passes to
// net/http through NetConn, with TCP_NODELAY set; with none waiting,
// Accept waits for one (on Go's poller); a waiting Accept ends when the
// RawListener is closed.
func TestRawListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rl := NewRawListener(ln)
	if rl == nil {
		t.Fatal("NewRawListener(*net.TCPListener) = nil")
	}
	rl.control(func(fd int) {
		if v, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT); err != nil || v == 0 {
			t.Errorf("listener's TCP_DEFER_ACCEPT %d, %v; want set", v, err)
		}
	})
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// The connection is in the backlog once Dial returned.
	nc, raddr, err := rl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := nc.(*rawSocket); !ok {
		t.Fatalf("accepted %T from the backlog, want a raw socket", nc)
	}
	if raddr.String() != client.LocalAddr().String() {
		t.Fatalf("peer address %s, want %s", raddr, client.LocalAddr())
	}
	nc.(*rawSocket).control(func(fd int) {
		if v, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY); err != nil || v == 0 {
			t.Errorf("accepted socket's TCP_NODELAY %d, %v; want set", v, err)
		}
	})
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(nc, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v", buf, err)
	}
	gc, err := NetConn(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gc.(*net.TCPConn); !ok {
		t.Fatalf("NetConn gave %T, want *net.TCPConn", gc)
	}
	if _, err := gc.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "world" {
		t.Fatalf("client read %q, %v", buf, err)
	}
	_ = gc.Close()
	if n, err := client.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after close: %d, %v; want EOF", n, err)
	}

	// Nothing waiting: Accept waits for the next one.
	dialed := make(chan net.Conn, 1)
	go func() {
		time.Sleep(250 * time.Millisecond)
		c, _ := net.Dial("tcp", ln.Addr().String())
		dialed <- c
	}()
	nc2, raddr2, err := rl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if c := <-dialed; c != nil {
		defer c.Close()
	}
	if _, ok := nc2.(*rawSocket); !ok || raddr2 == nil {
		t.Fatalf("accepted %T, %v after waiting; want a raw socket and its address", nc2, raddr2)
	}
	closed := make(chan error, 1)
	go func() { _, _, err := rl.Accept(); closed <- err }()
	time.Sleep(50 * time.Millisecond)
	_ = rl.Close()
	if err := <-closed; err == nil {
		t.Fatal("Accept waiting while the listener closed succeeded")
	}
}

// TestRawListenerPeerAddr: the peer's address is read from the accepted
// socket's address, IPv4 and IPv6 alike.
func TestRawListenerPeerAddr(t *testing.T) {
	for _, tc := range []struct{ name, network, addr string }{
		{"ipv4", "tcp4", "127.0.0.1:0"},
		{"ipv6", "tcp6", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen(tc.network, tc.addr)
			if err != nil {
				t.Skipf("no %s listener: %v", tc.network, err)
			}
			defer ln.Close()
			rl := NewRawListener(ln)
			defer rl.Close()
			client, err := net.Dial(tc.network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			nc, raddr, err := rl.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if got, want := raddr.String(), client.LocalAddr().String(); got != want {
				t.Errorf("peer address %s, want %s", got, want)
			}
			if got, want := nc.RemoteAddr().String(), client.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr %s, want %s", got, want)
			}
		})
	}
}

// control runs f with the listening socket's descriptor.
func (l *RawListener) control(f func(fd int)) {
	_ = l.rc.Control(func(fd uintptr) { f(int(fd)) })
}

// TestReadAvailable: a socket RawListener accepted gives what it holds
// without waiting (ErrWouldBlock while empty, (0, nil) at the end of the
// stream); any other net.Conn gives ErrWouldBlock and is not read.
func TestReadAvailable(t *testing.T) {
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
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Write([]byte("GET")); err != nil {
		t.Fatal(err)
	}
	nc, _, err := rl.Accept() // once "GET" is in (TCP_DEFER_ACCEPT)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	buf := make([]byte, 16)
	checkFor(t, 5*time.Second, func() error {
		if n, err := ReadAvailable(nc, buf); err != nil || string(buf[:n]) != "GET" {
			return fmt.Errorf("ReadAvailable = %q, %v; want GET", buf[:n], err)
		}
		return nil
	})
	if n, err := ReadAvailable(nc, buf); n != 0 || err != ErrWouldBlock {
		t.Fatalf("ReadAvailable of an empty socket = %d, %v; want ErrWouldBlock", n, err)
	}
	_ = client.Close()
	checkFor(t, 5*time.Second, func() error {
		if n, err := ReadAvailable(nc, buf); n != 0 || err != nil {
			return fmt.Errorf("ReadAvailable after the peer closed = %d, %v; want 0, nil", n, err)
		}
		return nil
	})
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if n, err := ReadAvailable(p1, buf); n != 0 || err != ErrWouldBlock {
		t.Fatalf("ReadAvailable of a pipe = %d, %v; want ErrWouldBlock", n, err)
	}
}
