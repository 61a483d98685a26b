package transport

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// loopConn is a net.Conn whose reads repeat one byte stream forever, for
// benchmarks of the read path without a socket; writes are discarded.
type loopConn struct {
	net.Conn // nil: only the methods below are used
	data     []byte
	off      int
}

func (l *loopConn) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}
func (l *loopConn) Write(p []byte) (int, error)      { return len(p), nil }
func (l *loopConn) Close() error                     { return nil }
func (l *loopConn) SetDeadline(time.Time) error      { return nil }
func (l *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (l *loopConn) SetWriteDeadline(time.Time) error { return nil }
func (l *loopConn) RemoteAddr() net.Addr             { return nil }
func (l *loopConn) LocalAddr() net.Addr              { return nil }

// BenchmarkReadText reads single-frame text messages (the common
// client message: JSON), which Read checks for UTF-8 as it unmasks them.
func BenchmarkReadText(b *testing.B) {
	for _, size := range []int{64, 1024, 16 << 10} {
		b.Run(sizeName(size), func(b *testing.B) {
			payload := []byte(strings.Repeat(`{"type":"publish","room":"lobby","data":"héllo"}`, size/48+1)[:size])
			// Cut on a rune boundary: the message must be valid.
			for !utf8.Valid(payload) {
				payload = payload[:len(payload)-1]
			}
			var stream []byte
			for range 64 {
				stream = append(stream, frame(true, 0, opText, payload, true)...)
			}
			opts := testOptions(Options{PingInterval: -1, ReadLimit: 1 << 20})
			c := newConn(&loopConn{data: stream}, nil, opts, negotiated{})
			ctx := context.Background()
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1024 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// BenchmarkReadCompressed reads single-frame compressed text messages,
// whose inflated output over 4 KiB counts in the read budget until the
// next read.
func BenchmarkReadCompressed(b *testing.B) {
	for _, size := range []int{1024, 16 << 10, 60_000} {
		b.Run(sizeName(size), func(b *testing.B) {
			payload := []byte(strings.Repeat(`{"type":"publish","room":"lobby","data":"hello 12345"}`, size/54+1)[:size])
			var stream []byte
			for range 64 {
				stream = append(stream, frame(true, 0x40, opText, deflateBytes(b, payload, 1), true)...)
			}
			opts := testOptions(Options{PingInterval: -1, ReadLimit: 64 << 10})
			opts.reading = NewReadBudget(0)
			c := newConn(&loopConn{data: stream}, nil, opts, negotiated{deflate: deflateOn})
			ctx := context.Background()
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
