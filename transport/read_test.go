package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func closeBody(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// readResult is what the server's Read returned.
type readResult struct {
	typ MessageType
	msg []byte
	err error
}

// readingServer records every Read result.
func readingServer(tb testing.TB, opts Options) (*testServer, chan readResult) {
	results := make(chan readResult, 16)
	ts := newTestServer(tb, opts, func(c *Conn) {
		for {
			typ, msg, err := c.Read(context.Background())
			results <- readResult{typ, msg, err}
			if err != nil {
				return
			}
		}
	})
	return ts, results
}

// tryReadingServer is readingServer reading as Herald does: TryRead
// until ErrWouldBlock, then NotifyReadable. It skips where the epoll
// watcher is missing.
func tryReadingServer(tb testing.TB, opts Options) (*testServer, chan readResult) {
	if runtime.GOOS != "linux" {
		tb.Skip("the epoll watcher is Linux only")
	}
	results := make(chan readResult, 16)
	ts := newTestServer(tb, opts, func(c *Conn) {
		var serve func()
		serve = func() {
			for {
				typ, msg, err := c.TryRead()
				if err == ErrWouldBlock {
					if !c.NotifyReadable(serve) {
						results <- readResult{err: errors.New("NotifyReadable unsupported")}
					}
					return
				}
				results <- readResult{typ, msg, err}
				if err != nil {
					return
				}
			}
		}
		serve()
	})
	return ts, results
}

func nextResult(tb testing.TB, ch chan readResult) readResult {
	tb.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		tb.Fatal("no Read result")
		return readResult{}
	}
}

func TestProtocolViolations(t *testing.T) {
	t.Parallel()
	long := bytes.Repeat([]byte("a"), 126)
	bomb := deflateBytes(t, make([]byte, 1<<20), 9)
	tests := []struct {
		name     string
		deflate  bool
		limit    int64
		frames   [][]byte
		code     int
		inReason string
	}{
		{name: "unmasked", frames: [][]byte{frame(true, 0, opText, []byte("hi"), false)}, code: CloseProtocolError},
		{name: "rsv2", frames: [][]byte{frame(true, 0x20, opText, []byte("hi"), true)}, code: CloseProtocolError},
		{name: "rsv3", frames: [][]byte{frame(true, 0x10, opBinary, []byte("hi"), true)}, code: CloseProtocolError},
		{name: "rsv1 without deflate", frames: [][]byte{frame(true, 0x40, opText, []byte("hi"), true)}, code: CloseProtocolError},
		{name: "rsv1 on continuation", deflate: true, frames: [][]byte{
			frame(false, 0x40, opText, deflateBytes(t, []byte("hi"), 1), true),
			frame(true, 0x40, opContinuation, nil, true)}, code: CloseProtocolError},
		{name: "rsv1 on ping", deflate: true, frames: [][]byte{frame(true, 0x40, opPing, nil, true)}, code: CloseProtocolError},
		{name: "unknown opcode", frames: [][]byte{mframe(true, 0x3, nil)}, code: CloseProtocolError},
		{name: "unknown control opcode", frames: [][]byte{mframe(true, 0xb, nil)}, code: CloseProtocolError},
		{name: "long ping", frames: [][]byte{mframe(true, opPing, long)}, code: CloseProtocolError},
		{name: "fragmented ping", frames: [][]byte{mframe(false, opPing, nil)}, code: CloseProtocolError},
		{name: "continuation first", frames: [][]byte{mframe(true, opContinuation, []byte("x"))}, code: CloseProtocolError},
		{name: "text inside fragments", frames: [][]byte{mframe(false, opText, []byte("a")), mframe(true, opText, []byte("b"))}, code: CloseProtocolError},
		{name: "length msb", frames: [][]byte{{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}}, code: CloseProtocolError},
		{name: "bad utf8", frames: [][]byte{mframe(true, opText, []byte{'a', 0xff, 'b'})}, code: CloseInvalidPayload, inReason: "invalid UTF-8"},
		{name: "bad utf8 split", frames: [][]byte{mframe(false, opText, []byte{'a', 0xe2}), mframe(true, opContinuation, []byte{0x28, 0xa1})}, code: CloseInvalidPayload},
		{name: "over limit", limit: 1024, frames: [][]byte{mframe(true, opBinary, make([]byte, 1025))}, code: CloseMessageTooBig, inReason: "message too big: limit 1024 bytes"},
		{name: "over limit fragments", limit: 1024, frames: [][]byte{mframe(false, opBinary, make([]byte, 1000)), mframe(true, opContinuation, make([]byte, 1000))}, code: CloseMessageTooBig},
		{name: "over limit, larger than the read buffer", frames: [][]byte{mframe(true, opBinary, make([]byte, DefaultReadLimit+1))}, code: CloseMessageTooBig, inReason: "limit 65536 bytes"},
		{name: "over limit, fragments larger than the read buffer", limit: 8000, frames: [][]byte{mframe(false, opBinary, make([]byte, 5000)), mframe(true, opContinuation, make([]byte, 5000))}, code: CloseMessageTooBig},
		{name: "zip bomb", deflate: true, frames: [][]byte{frame(true, 0x40, opBinary, bomb, true)}, code: CloseMessageTooBig, inReason: "limit 65536 bytes"},
		{name: "bad deflate data", deflate: true, frames: [][]byte{frame(true, 0x40, opBinary, []byte{0xff, 0xff, 0xff, 0xff}, true)}, code: CloseInvalidPayload},
		{name: "close length 1", frames: [][]byte{mframe(true, opClose, []byte{3})}, code: CloseProtocolError},
		{name: "close code 999", frames: [][]byte{mframe(true, opClose, closeBody(999, ""))}, code: CloseProtocolError},
		{name: "close code 1005", frames: [][]byte{mframe(true, opClose, closeBody(1005, ""))}, code: CloseProtocolError},
		{name: "close code 1006", frames: [][]byte{mframe(true, opClose, closeBody(1006, ""))}, code: CloseProtocolError},
		{name: "close code 1015", frames: [][]byte{mframe(true, opClose, closeBody(1015, ""))}, code: CloseProtocolError},
		{name: "close code 2000", frames: [][]byte{mframe(true, opClose, closeBody(2000, ""))}, code: CloseProtocolError},
		{name: "close code 5000", frames: [][]byte{mframe(true, opClose, closeBody(5000, ""))}, code: CloseProtocolError},
		{name: "close reason bad utf8", frames: [][]byte{mframe(true, opClose, closeBody(1000, "\xff"))}, code: CloseInvalidPayload},
		// Only the header of a bad frame: the close comes without its payload.
		{name: "header only: unmasked", frames: [][]byte{frame(true, 0, opText, make([]byte, 1000), false)[:4]}, code: CloseProtocolError, inReason: "unmasked"},
		{name: "header only: rsv2", frames: [][]byte{frame(true, 0x20, opText, make([]byte, 1000), true)[:8]}, code: CloseProtocolError},
		{name: "header only: unknown opcode", frames: [][]byte{mframe(true, 0x3, make([]byte, 1000))[:8]}, code: CloseProtocolError, inReason: "unknown opcode"},
		{name: "header only: long ping", frames: [][]byte{mframe(true, opPing, make([]byte, 1024))[:8]}, code: CloseProtocolError, inReason: "control frame too long"},
		{name: "header only: continuation first", frames: [][]byte{mframe(true, opContinuation, make([]byte, 1000))[:8]}, code: CloseProtocolError},
		{name: "header only: over limit", limit: 1024, frames: [][]byte{mframe(true, opBinary, make([]byte, 2000))[:8]}, code: CloseMessageTooBig},
		// Text that can no longer be valid UTF-8 fails before the rest
		// of its frame has come (fail fast, RFC 6455 section 8.1).
		{name: "part only: invalid UTF-8", frames: [][]byte{mframe(true, opText, append([]byte("ab\xf4\x90"), make([]byte, 1000)...))[:12]}, code: CloseInvalidPayload, inReason: "invalid UTF-8"},
		{name: "part only: invalid UTF-8 in a continuation", frames: [][]byte{
			mframe(false, opText, []byte("\xce\xba")),
			mframe(true, opContinuation, append([]byte{0xe1, 0xbd, 0xb9, 0xed, 0xa0}, make([]byte, 1000)...))[:13]}, code: CloseInvalidPayload},
		{name: "header only: fragments over limit", limit: 1024, frames: [][]byte{mframe(false, opBinary, make([]byte, 1000)), mframe(true, opContinuation, make([]byte, 100))[:6]}, code: CloseMessageTooBig},
	}
	servers := []struct {
		name  string
		start func(testing.TB, Options) (*testServer, chan readResult)
	}{{"Read", readingServer}, {"TryRead", tryReadingServer}}
	for _, srv := range servers {
		for _, tt := range tests {
			t.Run(srv.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ts, results := srv.start(t, Options{Compression: tt.deflate, ReadLimit: tt.limit})
				ext := ""
				if tt.deflate {
					ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
				}
				rc := dialRaw(t, ts.URL, ext)
				rc.write(tt.frames...)
				code, reason := rc.expectClose()
				if code != tt.code || !strings.Contains(reason, tt.inReason) {
					t.Errorf("client got close %d %q, want %d containing %q", code, reason, tt.code, tt.inReason)
				}
				// The server closes TCP first: the client sees EOF, then
				// closes its side as RFC 6455 7.1.1 asks.
				if _, err := rc.readFrame(); err == nil {
					t.Error("expected EOF after close frame")
				}
				rc.nc.Close()
				r := nextResult(t, results)
				var ce *CloseError
				if !errors.As(r.err, &ce) || ce.Code != tt.code {
					t.Fatalf("server Read error = %v, want CloseError %d", r.err, tt.code)
				}
				c := ts.nextConn(t)
				if err := waitDone(t, c, 3*time.Second); !errors.As(err, &ce) || ce.Code != tt.code {
					t.Errorf("Err() = %v", err)
				}
			})
		}
	}
}

func TestPeerClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		body   []byte
		code   int
		reason string
	}{
		{name: "normal", body: closeBody(1000, "bye"), code: 1000, reason: "bye"},
		{name: "application code", body: closeBody(4000, ""), code: 4000},
		{name: "service restart", body: closeBody(1012, ""), code: 1012},
		{name: "empty", body: nil, code: CloseNoStatus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts, results := readingServer(t, Options{})
			rc := dialRaw(t, ts.URL, "")
			rc.write(mframe(true, opClose, tt.body))
			code, _ := rc.expectClose()
			if code != tt.code {
				t.Errorf("echoed code %d, want %d", code, tt.code)
			}
			r := nextResult(t, results)
			var ce *CloseError
			if !errors.As(r.err, &ce) || ce.Code != tt.code || ce.Reason != tt.reason {
				t.Fatalf("Read error = %v, want close %d %q", r.err, tt.code, tt.reason)
			}
			c := ts.nextConn(t)
			waitDone(t, c, time.Second)
			if _, _, err := c.Read(context.Background()); !errors.As(err, &ce) {
				t.Errorf("second Read = %v, want the same CloseError", err)
			}
		})
	}
}

func TestFragmentsAndControl(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{}, nil)
	rc := dialRaw(t, ts.URL, "")
	rc.write(
		mframe(false, opText, []byte("hel")),
		mframe(true, opPing, []byte("ping!")),
		mframe(false, opContinuation, []byte("lo ")),
		mframe(true, opPong, nil),
		mframe(false, opContinuation, nil),
		mframe(true, opContinuation, []byte("wörld")),
		mframe(true, opBinary, []byte{1, 2, 3}),
	)
	f := rc.mustRead()
	if f.op != opPong || string(f.payload) != "ping!" {
		t.Fatalf("first frame op %d %q, want pong ping!", f.op, f.payload)
	}
	f = rc.mustRead()
	if f.op != opText || !f.fin || string(f.payload) != "hello wörld" {
		t.Fatalf("got op %d %q", f.op, f.payload)
	}
	f = rc.mustRead()
	if f.op != opBinary || !bytes.Equal(f.payload, []byte{1, 2, 3}) {
		t.Fatalf("got op %d %v", f.op, f.payload)
	}
}

func TestPingPong(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{}, nil)
	rc := dialRaw(t, ts.URL, "")
	c := ts.nextConn(t)
	before := c.LastSeen()
	time.Sleep(2 * time.Millisecond)
	rc.write(mframe(true, opPing, []byte("abc")))
	f := rc.mustRead()
	if f.op != opPong || string(f.payload) != "abc" {
		t.Fatalf("got op %d %q, want pong abc", f.op, f.payload)
	}
	if !c.LastSeen().After(before) {
		t.Error("LastSeen did not advance")
	}
}

func TestReadContextCancel(t *testing.T) {
	t.Parallel()
	got := make(chan error, 2)
	ts := newTestServer(t, Options{}, func(c *Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, _, err := c.Read(ctx)
		cancel()
		got <- err
		_, msg, err := c.Read(context.Background())
		if err == nil && string(msg) != "after" {
			err = errors.New("unexpected message " + string(msg))
		}
		got <- err
	})
	rc := dialRaw(t, ts.URL, "")
	if err := <-got; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read = %v, want DeadlineExceeded", err)
	}
	rc.write(mframe(true, opText, []byte("after")))
	if err := <-got; err != nil {
		t.Fatalf("Read after cancel: %v", err)
	}
}

func TestPipelinedFrames(t *testing.T) {
	t.Parallel()
	// Frames sent in the same packet as the handshake request must not
	// be lost in net/http's buffer.
	ts := newTestServer(t, Options{}, nil)
	rc := dialRawWith(t, ts.URL, "", mframe(true, opText, []byte("early")))
	f := rc.mustRead()
	if string(f.payload) != "early" {
		t.Fatalf("got %q", f.payload)
	}
}

// TestControlFrameFlood: pings (or pongs) beyond ControlFrameRate in one
// second close the connection with 1008, on both read paths; below the
// rate they are answered and the connection stays.
func TestControlFrameFlood(t *testing.T) {
	t.Parallel()
	servers := []struct {
		name  string
		start func(testing.TB, Options) (*testServer, chan readResult)
	}{{"Read", readingServer}, {"TryRead", tryReadingServer}}
	for _, srv := range servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			ts, results := srv.start(t, Options{ControlFrameRate: 10})
			rc := dialRaw(t, ts.URL, "")
			for range 5 {
				rc.write(mframe(true, opPing, []byte("ok")))
			}
			rc.write(mframe(true, opText, []byte("still here")))
			if r := nextResult(t, results); r.err != nil || string(r.msg) != "still here" {
				t.Fatalf("after 5 pings: %q, %v", r.msg, r.err)
			}
			var flood []byte
			for range 100 {
				flood = append(flood, mframe(true, opPong, nil)...)
			}
			rc.write(flood)
			code, reason := rc.expectClose()
			if code != ClosePolicyViolation || reason != "too many control frames" {
				t.Fatalf("close %d %q, want 1008 \"too many control frames\"", code, reason)
			}
		})
	}
}

// TestViolationAfterReply: what the application queued in answer to the
// peer's valid messages goes out before the close frame that fails the
// connection for a later, invalid one (Autobahn 3.2, 4.1.3, 5.15: the
// echo, then 1002).
func TestViolationAfterReply(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{}, nil)
	rc := dialRaw(t, ts.URL, "")
	rc.write(mframe(true, opText, []byte("hello")), frame(true, 0x20, opText, []byte("hello"), true), mframe(true, opPing, nil))
	f := rc.mustRead()
	if f.op != opText || string(f.payload) != "hello" {
		t.Fatalf("got op %d %q, want the echo of hello before the close frame", f.op, f.payload)
	}
	if code, _ := rc.expectClose(); code != CloseProtocolError {
		t.Errorf("close %d, want %d", code, CloseProtocolError)
	}
}
