package engineio

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// writeCounter is a listener whose connections count their writes. They
// are not *net.TCPConn, so the transport writes through them (net.Conn)
// rather than to a socket of its own.
type writeCounter struct {
	net.Listener
	mu     sync.Mutex
	writes [][]byte
}

func (l *writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l *writeCounter
}

func (c *countedConn) Write(b []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes = append(c.l.writes, bytes.Clone(b))
	c.l.mu.Unlock()
	return c.Conn.Write(b)
}

// TestWebSocketOpenWrittenWithHandshake: a session opened on WebSocket
// gets its 101 response and its open packet in one write (the response
// is held until the packet is queued), not a write for each.
func TestWebSocketOpenWrittenWithHandshake(t *testing.T) {
	srv, err := New(Config{PingInterval: time.Minute, PingTimeout: time.Minute,
		OnConnection: func(*Socket, *http.Request) Handler { return nopHandler{} }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wc := &writeCounter{Listener: ln}
	ts := httptest.NewUnstartedServer(srv)
	ts.Listener = wc
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// The open packet: a text frame "0{…}".
	head := make([]byte, 2)
	if _, err := br.Read(head[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := br.Read(head[1:]); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, head[1]&0x7f)
	if _, err := io.ReadFull(br, payload); err != nil {
		t.Fatal(err)
	}
	if head[0] != 0x81 || payload[0] != '0' {
		t.Fatalf("first frame %x %q, want the open packet", head, payload)
	}
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if len(wc.writes) != 1 {
		t.Fatalf("%d writes for the 101 and the open packet, want 1: %q", len(wc.writes), wc.writes)
	}
}
