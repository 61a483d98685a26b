package transport

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestRawListener: a connection waiting in the backlog is accepted as a
// bare socket (with its peer's address) that reads, writes and passes to
// net/http through NetConn; with none waiting, Accept waits for one; a
// waiting Accept ends when the listener is closed.
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
	_ = ln.Close()
	if err := <-closed; err == nil {
		t.Fatal("Accept waiting while the listener closed succeeded")
	}
}
