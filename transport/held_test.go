package transport

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestUpgradeHeld: the 101 response of UpgradeHeld waits for the first
// write, and whatever comes first (the first message, a ping, a close
// frame, a Release without one) follows it on the wire.
func TestUpgradeHeld(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		handle func(c *Conn, release <-chan struct{})
		check  func(t *testing.T, rc *rawClient)
	}{
		{"first message", Options{PingInterval: -1}, func(c *Conn, release <-chan struct{}) {
			_ = c.Send(NewPrepared(Text, []byte("a"), 0, 0))
			<-release
			_ = c.Release(NewPrepared(Text, []byte("welcome"), 0, 0))
		}, func(t *testing.T, rc *rawClient) {
			for _, want := range []string{"welcome", "a"} {
				if f := rc.mustRead(); string(f.payload) != want {
					t.Fatalf("got %q, want %q", f.payload, want)
				}
			}
		}},
		{"close first", Options{PingInterval: -1}, func(c *Conn, release <-chan struct{}) {
			<-release
			_ = c.Close(CloseGoingAway, "bye")
		}, func(t *testing.T, rc *rawClient) {
			if code, reason := rc.expectClose(); code != CloseGoingAway || reason != "bye" {
				t.Fatalf("close %d %q", code, reason)
			}
		}},
		{"ping first", Options{PingInterval: 50 * time.Millisecond, PongTimeout: time.Second}, func(c *Conn, release <-chan struct{}) {
			<-release
		}, func(t *testing.T, rc *rawClient) {
			if f := rc.mustRead(); f.op != opPing {
				t.Fatalf("first frame op %d, want a ping", f.op)
			}
		}},
		{"release without a message", Options{PingInterval: -1}, func(c *Conn, release <-chan struct{}) {
			_ = c.Send(NewPrepared(Text, []byte("a"), 0, 0))
			<-release
			_ = c.Release(nil)
		}, func(t *testing.T, rc *rawClient) {
			if f := rc.mustRead(); string(f.payload) != "a" {
				t.Fatalf("got %q, want a", f.payload)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := NewUpgrader(tt.opts)
			release := make(chan struct{})
			conns := make(chan *Conn, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := u.UpgradeHeld(w, r, nil)
				if err != nil {
					t.Error(err)
					return
				}
				conns <- c
				tt.handle(c, release)
			}))
			t.Cleanup(func() {
				srv.Close()
				select {
				case c := <-conns:
					c.Terminate(nil)
					<-c.Done()
				default:
				}
				_ = u.Close(context.Background())
			})
			nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { nc.Close() })
			req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
			if _, err := nc.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(nc)
			if tt.opts.PingInterval < 0 {
				// Held: not even the response is written.
				_ = nc.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
				if _, err := br.Peek(1); err == nil {
					t.Fatal("bytes arrived before the first write")
				}
				_ = nc.SetReadDeadline(time.Time{})
			}
			close(release)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
				t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
			}
			tt.check(t, &rawClient{tb: t, nc: nc, br: br, resp: resp})
		})
	}
}

// TestUpgradeHeldHandshake: a request ValidHandshake accepted is upgraded
// as UpgradeHeld upgrades it; one it refused gets its error, and a zero
// Handshake (no check) is refused with a 500, nothing hijacked.
func TestUpgradeHeldHandshake(t *testing.T) {
	u := NewUpgrader(Options{PingInterval: -1})
	conns := make(chan *Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var h Handshake
		if r.URL.Path != "/zero" {
			var herr *HandshakeError
			if h, herr = ValidHandshake(r); herr != nil {
				herr.SetHeaders(w.Header())
				http.Error(w, herr.Message, herr.Status)
				return
			}
		}
		c, err := u.UpgradeHeldHandshake(w, h, nil)
		if err != nil {
			return
		}
		_ = c.Release(NewPrepared(Text, []byte("welcome"), 0, 0))
		conns <- c
	}))
	t.Cleanup(func() {
		srv.Close()
		select {
		case c := <-conns:
			c.Terminate(nil)
			<-c.Done()
		default:
		}
		_ = u.Close(context.Background())
	})
	do := func(path, key string) (*http.Response, *rawClient) {
		t.Helper()
		nc, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		req := "GET " + path + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n\r\n"
		if _, err := nc.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(nc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp, &rawClient{tb: t, nc: nc, br: br, resp: resp}
	}
	if resp, _ := do("/zero", "dGhlIHNhbXBsZSBub25jZQ=="); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("zero Handshake: response %d, want 500", resp.StatusCode)
	}
	if resp, _ := do("/", "not a key"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("invalid key: response %d, want 400", resp.StatusCode)
	}
	resp, rc := do("/", "dGhlIHNhbXBsZSBub25jZQ==")
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("response %d %v", resp.StatusCode, resp.Header)
	}
	if f := rc.mustRead(); string(f.payload) != "welcome" {
		t.Fatalf("got %q, want welcome", f.payload)
	}
}
