//go:build linux

package herald_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	ap, err := net.ResolveTCPAddr("tcp", srv.addr)
	if err != nil {
		b.Fatal(err)
	}
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	req := []byte("GET /ws HTTP/1.1\r\nHost: " + srv.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + tok + "\r\n\r\n")
	// A masked close frame, code 1000, mask 0.
	closeFrame := []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}
	linger := &syscall.Linger{Onoff: 1, Linger: 0}
	buf := make([]byte, 4096)
	tv := syscall.NsecToTimeval(int64(10 * time.Second))
	connect := func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
		if err := syscall.Connect(fd, sa); err != nil {
			return err
		}
		if _, err := syscall.Write(fd, req); err != nil {
			return err
		}
		// The 101 head, then the welcome frame whole.
		n := 0
		for {
			m, err := syscall.Read(fd, buf[n:])
			if err == syscall.EINTR {
				// A signal (the runtime's preemption) during a read
				// with SO_RCVTIMEO set is not restarted (signal(7)).
				continue
			}
			if err != nil || m <= 0 {
				return io.ErrUnexpectedEOF
			}
			n += m
			if welcomeRead(buf[:n]) {
				break
			}
		}
		if _, err := syscall.Write(fd, closeFrame); err != nil {
			return err
		}
		return syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, linger)
	}
	if err := connect(); err != nil { // warm up, and check the exchange
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
	ap, err := net.ResolveTCPAddr("tcp", srv.addr)
	if err != nil {
		b.Fatal(err)
	}
	sa := &syscall.SockaddrInet4{Port: ap.Port}
	copy(sa.Addr[:], ap.IP.To4())
	req := []byte("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + srv.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Authorization: Bearer " + tok + "\r\n\r\n")
	connectFrame := []byte{0x81, 0x82, 0, 0, 0, 0, '4', '0'} // "40", mask 0
	closeFrame := []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}
	linger := &syscall.Linger{Onoff: 1, Linger: 0}
	buf := make([]byte, 4096)
	tv := syscall.NsecToTimeval(int64(10 * time.Second))
	// readUntil reads into buf until whole reports the bytes read whole.
	readUntil := func(fd int, whole func([]byte) bool) error {
		n := 0
		for {
			m, err := syscall.Read(fd, buf[n:])
			if err == syscall.EINTR {
				continue // see BenchmarkServerConnect
			}
			if err != nil || m <= 0 {
				return io.ErrUnexpectedEOF
			}
			n += m
			if whole(buf[:n]) {
				return nil
			}
		}
	}
	connect := func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
		if err := syscall.Connect(fd, sa); err != nil {
			return err
		}
		if _, err := syscall.Write(fd, req); err != nil {
			return err
		}
		if err := readUntil(fd, welcomeRead); err != nil { // the 101 and the open packet
			return err
		}
		if _, err := syscall.Write(fd, connectFrame); err != nil {
			return err
		}
		if err := readUntil(fd, frameRead); err != nil { // the CONNECT's reply
			return err
		}
		if buf[2] != '4' || buf[3] != '0' {
			return fmt.Errorf("CONNECT answered %q", buf[2:])
		}
		if _, err := syscall.Write(fd, closeFrame); err != nil {
			return err
		}
		return syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, linger)
	}
	if err := connect(); err != nil { // warm up, and check the exchange
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
