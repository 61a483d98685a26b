//go:build linux

package herald_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

// BenchmarkServerConnect is one connect of herald bench's churn scenario
// as the server sees it, through Server.Serve with the default stores and
// an HS256 token: TCP connect, the upgrade request, the 101 and the
// welcome, a close frame (1000) and a reset. The client is made of bare
// system calls on buffers made once, so it allocates nothing: allocs/op
// and B/op are the server's own (BenchmarkConnect's include a client).
// Connects are serial over loopback; the server's cleanup of one connect
// may overlap the next.
func BenchmarkServerConnect(b *testing.B) {
	a, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	tok, err := jwtauth.Sign(testSecret, "bench-user", nil, nil, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	cfg := herald.Config{Authenticator: a,
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	srv := startRawServer(b, cfg, true)
	rc := newRawClient(b, srv.addr)
	req := []byte("GET /ws HTTP/1.1\r\nHost: " + srv.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + tok + "\r\n\r\n")
	benchConnects(b, func() error {
		fd, err := rc.socket()
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		if err := syscall.Connect(fd, rc.sa); err != nil {
			return err
		}
		if _, err := syscall.Write(fd, req); err != nil {
			return err
		}
		if err := rc.readUntil(fd, welcomeRead); err != nil { // the 101 head, then the welcome frame whole
			return err
		}
		return rc.hangUp(fd)
	})
}

// welcomeRead reports whether b holds a response head and one whole
// unmasked text frame after it (the welcome; lengths under 64 KiB).
func welcomeRead(b []byte) bool {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return false
	}
	return frameRead(b[i+4:])
}

// BenchmarkServerConnectSocketIO is BenchmarkServerConnect for a
// WebSocket-only Socket.IO client: TCP connect, the Engine.IO handshake
// (GET /socket.io/?EIO=4&transport=websocket, an HS256 token in its
// Authorization header), the 101 and the open packet, a CONNECT to "/"
// and its reply, a close frame and a reset. The handshake is served by
// Server.Serve's accept path (accept) or, as every Socket.IO request was
// before it, by net/http (net-http).
func BenchmarkServerConnectSocketIO(b *testing.B) {
	for _, path := range []struct {
		name string
		fast bool
	}{{"accept", true}, {"net-http", false}} {
		b.Run(path.name, func(b *testing.B) { benchSocketIOConnect(b, path.fast) })
	}
}

func benchSocketIOConnect(b *testing.B, fast bool) {
	a, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	tok, err := jwtauth.Sign(testSecret, "bench-user", nil, nil, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	cfg := herald.Config{Authenticator: a, SocketIO: herald.SocketIOConfig{Enabled: true},
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	srv := startRawServer(b, cfg, fast)
	rc := newRawClient(b, srv.addr)
	req := []byte("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + srv.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + tok + "\r\n\r\n")
	connectFrame := []byte{0x81, 0x82, 0, 0, 0, 0, '4', '0'} // "40", mask 0
	benchConnects(b, func() error {
		fd, err := rc.socket()
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		if err := syscall.Connect(fd, rc.sa); err != nil {
			return err
		}
		if _, err := syscall.Write(fd, req); err != nil {
			return err
		}
		if err := rc.readUntil(fd, welcomeRead); err != nil { // the 101 and the open packet
			return err
		}
		if _, err := syscall.Write(fd, connectFrame); err != nil {
			return err
		}
		if err := rc.readUntil(fd, frameRead); err != nil { // the CONNECT's reply
			return err
		}
		if rc.buf[2] != '4' || rc.buf[3] != '0' {
			return fmt.Errorf("CONNECT answered %q", rc.buf[2:])
		}
		return rc.hangUp(fd)
	})
}

// frameRead reports whether f holds one whole unmasked frame (lengths
// under 64 KiB).
func frameRead(f []byte) bool {
	if len(f) < 2 {
		return false
	}
	n, h := int(f[1]&0x7f), 2
	if n == 126 {
		if len(f) < 4 {
			return false
		}
		n, h = int(f[2])<<8|int(f[3]), 4
	}
	return len(f) >= h+n
}
