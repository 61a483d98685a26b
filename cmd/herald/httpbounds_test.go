package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// rawHTTP is one client TCP connection to the binary, spoken to by hand.
type rawHTTP struct {
	nc net.Conn
	br *bufio.Reader
}

func dialHTTP(t *testing.T, addr string) *rawHTTP {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawHTTP{nc: nc, br: bufio.NewReader(nc)}
}

// roundTrip writes raw and reads one response, within 5 s.
func (c *rawHTTP) roundTrip(t *testing.T, raw string) *http.Response {
	t.Helper()
	if _, err := io.WriteString(c.nc, raw); err != nil {
		t.Fatal(err)
	}
	return c.response(t, 5*time.Second)
}

func (c *rawHTTP) response(t *testing.T, within time.Duration) *http.Response {
	t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("no response within %s: %v", within, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// closedWithin waits for the server to close the connection and returns
// how long that took; it fails the test after max.
func (c *rawHTTP) closedWithin(t *testing.T, max time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = c.nc.SetReadDeadline(start.Add(max))
	_, err := c.br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s", max)
	}
	if err == nil {
		t.Fatal("unexpected data instead of the connection's end")
	}
	return time.Since(start)
}

// TestHTTPBounds runs the binary with short HTTP timeouts and a cap of 4
// HTTP connections per IP and checks each bound with raw sockets: an idle
// keep-alive connection is closed by --http-idle-timeout; a trickled body
// with a wrong API key is refused with 401 and its connection closed at
// once, without reading the body; a trickled body with the right key is
// cut by --http-read-timeout; a fifth HTTP connection from one IP gets 429
// while WebSocket upgrades from it still pass; and an upgraded WebSocket
// outlives all those timeouts.
func TestHTTPBounds(t *testing.T) {
	const key = "http-bounds-key-0123456789"
	srv := startBinary(t, nil, "--api-key", key,
		"--http-read-timeout", "2s", "--http-write-timeout", "2s", "--http-idle-timeout", "1s",
		"--max-http-conns-per-ip", "4")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// A WebSocket opened first, to be used after every timeout has passed.
	ws, _, err := websocket.Dial(ctx, "ws://"+srv.addr+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"X-Client-Id": {"stayer"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	wsOpened := time.Now()
	if _, _, err := ws.Read(ctx); err != nil { // welcome
		t.Fatal(err)
	}

	t.Run("idle keep-alive closed", func(t *testing.T) {
		c := dialHTTP(t, srv.addr)
		if resp := c.roundTrip(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
			t.Fatalf("GET /healthz: %d", resp.StatusCode)
		}
		took := c.closedWithin(t, 10*time.Second)
		t.Logf("idle connection closed %s after its response", took.Round(time.Millisecond))
	})

	trickle := func(c *rawHTTP, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := c.nc.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}
	post := func(auth string) string {
		return "POST /api/v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + auth +
			"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
	}

	t.Run("wrong key refused before the body", func(t *testing.T) {
		c := dialHTTP(t, srv.addr)
		stop := make(chan struct{})
		defer close(stop)
		start := time.Now()
		if _, err := io.WriteString(c.nc, post("wrong-key-0123456789")); err != nil {
			t.Fatal(err)
		}
		go trickle(c, stop)
		// Well within the 2 s read timeout: the key is checked before
		// any of the body is read, and the body is not waited for.
		if resp := c.response(t, time.Second); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong key: %d, want 401", resp.StatusCode)
		}
		c.closedWithin(t, time.Second)
		t.Logf("401 and close %s after the headers", time.Since(start).Round(time.Millisecond))
	})

	t.Run("trickled body cut by the read timeout", func(t *testing.T) {
		c := dialHTTP(t, srv.addr)
		stop := make(chan struct{})
		defer close(stop)
		start := time.Now()
		if _, err := io.WriteString(c.nc, post(key)); err != nil {
			t.Fatal(err)
		}
		go trickle(c, stop)
		// The server reads the body until the read timeout ends the
		// request; it answers 400 or just closes.
		_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if resp, err := http.ReadResponse(c.br, nil); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Fatalf("trickled body answered %d", resp.StatusCode)
			}
		} else {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("trickled body still being read after 10 s")
			}
		}
		took := time.Since(start)
		if took < time.Second {
			t.Errorf("cut after %s, before the 2 s read timeout", took)
		}
		t.Logf("trickled body cut after %s", took.Round(time.Millisecond))
	})

	t.Run("HTTP connections capped per IP", func(t *testing.T) {
		var held []*rawHTTP
		for i := range 4 {
			c := dialHTTP(t, srv.addr)
			if resp := c.roundTrip(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != 200 {
				t.Fatalf("connection %d: %d", i+1, resp.StatusCode)
			}
			held = append(held, c)
		}
		over := dialHTTP(t, srv.addr)
		if resp := over.roundTrip(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("fifth connection: %d, want 429", resp.StatusCode)
		}
		over.closedWithin(t, time.Second)
		// Upgrades are governed by the WebSocket limits, not this cap.
		extra, _, err := websocket.Dial(ctx, "ws://"+srv.addr+"/ws", nil)
		if err != nil {
			t.Fatalf("WebSocket refused while HTTP connections are capped: %v", err)
		}
		extra.CloseNow()
		for _, c := range held {
			c.nc.Close()
		}
		// Once they are gone, this IP may connect again (and read the count).
		waitForMetric(t, srv.base, "herald_http_conns_refused_total", 1)
	})

	// The WebSocket has outlived the read, write and idle timeouts.
	if wait := 3*time.Second - time.Since(wsOpened); wait > 0 {
		time.Sleep(wait)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","id":"j1","room":"after"}`)); err != nil {
		t.Fatalf("WebSocket cut by the HTTP timeouts: %v", err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	_, msg, err := ws.Read(rctx)
	if err != nil {
		t.Fatalf("WebSocket cut by the HTTP timeouts after %s: %v", time.Since(wsOpened), err)
	}
	if want := `"id":"j1"`; !strings.Contains(string(msg), want) {
		t.Fatalf("join after %s answered %s", time.Since(wsOpened), msg)
	}
	t.Logf("WebSocket still served %s after it opened", time.Since(wsOpened).Round(time.Millisecond))
}

// TestHTTPTimeoutsSpareTLSWebSockets: over TLS terminated by the binary,
// the transport keeps the hijacked net.Conn, whose deadlines net/http set
// from --http-read-timeout and --http-write-timeout: the upgrade must
// clear them, or they would cut the WebSocket. A connection quiet for
// longer than both timeouts still answers, and still receives.
func TestHTTPTimeoutsSpareTLSWebSockets(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	srv := startBinary(t, nil, "--tls-cert", certFile, "--tls-key", keyFile, "--api-key", "tls-bounds-key-0123456789",
		"--http-read-timeout", "1s", "--http-write-timeout", "1s", "--http-idle-timeout", "1s")
	addr, insecure := srv.addr, srv.client
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+addr+"/ws", &websocket.DialOptions{
		HTTPClient: insecure, HTTPHeader: http.Header{"X-Client-Id": {"tls-stayer"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	opened := time.Now()
	if _, _, err := ws.Read(ctx); err != nil { // welcome
		t.Fatal(err)
	}
	// Quiet for longer than the read and write timeouts (with margin):
	// the deadlines they set would have passed by now.
	time.Sleep(2500 * time.Millisecond)
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","id":"j1","room":"after"}`)); err != nil {
		t.Fatalf("WebSocket over TLS cut by the HTTP timeouts: %v", err)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil || !strings.Contains(string(msg), `"id":"j1"`) {
		t.Fatalf("WebSocket over TLS after %s: %q %v", time.Since(opened), msg, err)
	}
	t.Logf("WebSocket over TLS still served %s after it opened", time.Since(opened).Round(time.Millisecond))
}
