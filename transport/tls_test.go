package transport

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// corkConn holds what is written to it while corked and writes it all in
// one write when uncorked: a TLS client's records, written one by one,
// reach the server in one segment, as they do from a client that sends
// two messages at once.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	held   []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.held = append(c.held, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *corkConn) cork() { c.mu.Lock(); c.corked = true; c.mu.Unlock() }

func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	_, err := c.Conn.Write(c.held)
	c.held = nil
	return err
}

// dialTLS upgrades a TLS connection to url (https://) by hand and
// returns it as a rawClient, with the corkConn under its TLS.
func dialTLS(tb testing.TB, url string) (*rawClient, *corkConn) {
	tb.Helper()
	tcp, err := net.Dial("tcp", strings.TrimPrefix(url, "https://"))
	if err != nil {
		tb.Fatal(err)
	}
	cc := &corkConn{Conn: tcp}
	nc := tls.Client(cc, &tls.Config{InsecureSkipVerify: true})
	tb.Cleanup(func() { nc.Close() })
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	key := base64.StdEncoding.EncodeToString(raw)
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("handshake status %d", resp.StatusCode)
	}
	return &rawClient{tb: tb, nc: nc, br: br, resp: resp, key: key}, cc
}

// TestHeartbeatTLS: with TLS terminated in-process (crypto/tls under
// net/http), a pong that has come while the application holds a message
// is not a heartbeat timeout, wherever it waits: in the socket under the
// TLS connection, or in crypto/tls's own buffer, which read it from the
// socket together with the end of the held message. A client that did
// not answer still times out.
func TestHeartbeatTLS(t *testing.T) {
	t.Parallel()
	opts := Options{PingInterval: 300 * time.Millisecond, PongTimeout: 300 * time.Millisecond}
	tests := []struct {
		name string
		// answer sends, after the ping, the rest of m (whose first 10
		// bytes went before it) and the client's answer to the ping.
		answer   func(rc *rawClient, cc *corkConn, m []byte, ping rawFrame)
		wantKept bool
	}{
		{"pong waits in the socket", func(rc *rawClient, cc *corkConn, m []byte, ping rawFrame) {
			rc.write(m[10:])
			time.Sleep(100 * time.Millisecond) // the message read and held first
			rc.write(mframe(true, opPong, ping.payload))
		}, true},
		{"pong waits in crypto/tls's buffer", func(rc *rawClient, cc *corkConn, m []byte, ping rawFrame) {
			// Two records in one segment: the server's TLS reads both
			// from the socket to return the first, the message's end.
			cc.cork()
			rc.write(m[10:])
			rc.write(mframe(true, opPong, ping.payload))
			if err := cc.uncork(); err != nil {
				t.Error(err)
			}
		}, true},
		{"no answer", func(rc *rawClient, cc *corkConn, m []byte, ping rawFrame) {
			rc.write(m[10:])
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conns := make(chan *Conn, 1)
			got := make(chan string, 1)
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Upgrade(w, r, opts, nil)
				if err != nil {
					return
				}
				conns <- c
				if _, msg, err := c.Read(context.Background()); err == nil {
					got <- string(msg)
				}
				<-c.Done() // holds the message: reads no more
			}))
			t.Cleanup(srv.Close)
			rc, cc := dialTLS(t, srv.URL)
			sc := <-conns
			t.Cleanup(func() { sc.Terminate(nil); <-sc.Done() })
			m := mframe(true, opText, []byte("held message"))
			rc.write(m[:10]) // its header, before the ping: no frame is read after it
			ping := rc.mustRead()
			if ping.op != opPing {
				t.Fatalf("got op %d, want a ping", ping.op)
			}
			tt.answer(rc, cc, m, ping)
			select {
			case msg := <-got:
				if msg != "held message" {
					t.Fatalf("read %q", msg)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the message was not read")
			}
			if !tt.wantKept {
				if err := waitDone(t, sc, 5*time.Second); !errors.Is(err, ErrHeartbeatTimeout) {
					t.Fatalf("Err() = %v, want ErrHeartbeatTimeout", err)
				}
				return
			}
			// Past the pong's deadline, then a second ping's.
			time.Sleep(opts.PingInterval + 3*opts.PongTimeout)
			if err := sc.Err(); err != nil {
				t.Fatalf("connection whose pong has come ended: %v", err)
			}
			if f := rc.mustRead(); f.op != opPing {
				t.Fatalf("got op %d, want the next ping", f.op)
			}
		})
	}
}

// TestPullTLSLeavesReadsIntact: what the heartbeat moves from crypto/tls
// into the read buffer is read afterwards in order, and the probe's
// deadline does not end a later blocking Read.
func TestPullTLSLeavesReadsIntact(t *testing.T) {
	t.Parallel()
	opts := Options{PingInterval: -1}
	conns := make(chan *Conn, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Upgrade(w, r, opts, nil)
		if err != nil {
			return
		}
		conns <- c
		<-c.Done()
	}))
	t.Cleanup(srv.Close)
	rc, cc := dialTLS(t, srv.URL)
	sc := <-conns
	t.Cleanup(func() { sc.Terminate(nil); <-sc.Done() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc.cork()
	rc.write(mframe(true, opText, []byte("one")))
	rc.write(mframe(true, opText, []byte("two")))
	if err := cc.uncork(); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := sc.Read(ctx); err != nil || string(msg) != "one" {
		t.Fatalf("first Read: %q %v", msg, err)
	}
	if n := sc.UnreadBytes(); n == 0 {
		t.Fatal("UnreadBytes = 0 with a message in crypto/tls's buffer")
	}
	if _, msg, err := sc.Read(ctx); err != nil || string(msg) != "two" {
		t.Fatalf("second Read: %q %v", msg, err)
	}
	if n := sc.UnreadBytes(); n != 0 {
		t.Fatalf("UnreadBytes = %d with nothing sent", n)
	}
	// A blocking Read after the probe waits for the next message.
	go func() {
		time.Sleep(200 * time.Millisecond)
		rc.write(mframe(true, opText, []byte("three")))
	}()
	if _, msg, err := sc.Read(ctx); err != nil || string(msg) != "three" {
		t.Fatalf("Read after the probe: %q %v", msg, err)
	}
}
