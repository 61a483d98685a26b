package engineio

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// A client that answered the ping is not timed out while its pong waits
// in the WebSocket's read buffer behind a message the handler still
// holds: read from the socket together with that message, the pong is
// where FIONREAD does not see it (the reference server, reading the
// segment at once, takes both). After the handler returns, what waited is
// handled in order, a message behind the held one included, and the
// session carries on.
func TestNoPingTimeoutWhilePongWaitsInReadBuffer(t *testing.T) {
	const interval, timeout = 200 * time.Millisecond, 600 * time.Millisecond
	for _, tc := range []struct {
		name   string
		frames []string // sent in one write, after the first ping
		echo   string   // what the handler answers once released
	}{
		{name: "pong behind the held message", frames: []string{"4hold", "3"}},
		{name: "message and pong behind it", frames: []string{"4hold", "4more", "3"}, echo: "4more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release, held := make(chan struct{}), make(chan struct{}, 1)
			var once sync.Once
			e := newEnv(t, Config{PingInterval: interval, PingTimeout: timeout,
				OnConnection: func(*Socket, *http.Request) Handler {
					return blockingHandler{release: release, held: held, once: &once}
				}})
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			c := dialRawWS(t, e, "EIO=4&transport=websocket")
			c.read(t) // open
			if m := c.read(t); m != "2" {
				t.Fatalf("got %q, want a ping", m)
			}
			c.write(t, tc.frames...)
			select {
			case <-held:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler did not get 4hold")
			}
			// The held message gave the pong interval+timeout from when
			// it came: wait past that, and past two more checks.
			time.Sleep(interval + 3*timeout)
			if n := e.srv.Len(); n != 1 {
				t.Fatalf("sessions = %d while the pong waited in the read buffer, want 1", n)
			}
			once.Do(func() { close(release) })
			if tc.echo != "" {
				m := c.read(t)
				for m == "2" {
					c.write(t, "3")
					m = c.read(t)
				}
				if m != tc.echo {
					t.Fatalf("after the release got %q, want %q", m, tc.echo)
				}
			}
			// The pong was taken: the next ping comes and is answered.
			if m := c.read(t); m != "2" {
				t.Fatalf("got %q, want the next ping", m)
			}
			c.write(t, "3")
			time.Sleep(interval)
			if n := e.srv.Len(); n != 1 {
				t.Fatalf("sessions = %d after the release, want 1", n)
			}
		})
	}
}

// What keeps a session whose handler holds a message is what its client
// sent: a client that sends nothing more, or only part of a frame, still
// times out.
func TestPingTimeoutOfSilentClient(t *testing.T) {
	const interval, timeout = 200 * time.Millisecond, 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		write func(*rawWS)
	}{
		{name: "nothing behind the held message", write: func(c *rawWS) { c.write(t, "4hold") }},
		{name: "part of a frame behind the held message", write: func(c *rawWS) {
			// In one write, so that the server reads both from its socket
			// together: part of a frame in the socket counts as unread
			// (this process has not looked at it) until the reader has
			// taken it into its buffer, which it does not while the
			// handler holds the message.
			c.writeRaw(t, append(textFrames(t, "4hold"), partialFrame...))
		}},
		{name: "part of a frame", write: func(c *rawWS) { c.writeRaw(t, partialFrame) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			sockets := make(chan *Socket, 1)
			e := newEnv(t, Config{PingInterval: interval, PingTimeout: timeout,
				OnConnection: func(so *Socket, _ *http.Request) Handler {
					sockets <- so
					return blockingHandler{release: release, once: &once}
				}})
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			start := time.Now() // the deadline counts from the handshake
			c := dialRawWS(t, e, "EIO=4&transport=websocket")
			c.read(t) // open
			so := <-sockets
			tc.write(c)
			// OnClose waits for the held message; the session's end does not.
			for so.Err() == nil {
				if time.Since(start) > 5*time.Second {
					t.Fatal("the session of a silent client was not closed")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := so.Err(); err != ErrPingTimeout {
				t.Fatalf("closed with %v, want %v", err, ErrPingTimeout)
			}
			if d := time.Since(start); d < interval+timeout {
				t.Errorf("closed after %v, before its deadline", d)
			}
		})
	}
}

// rawWS is a WebSocket client that writes several frames in one write,
// so that the server reads them from its socket together.
type rawWS struct {
	nc net.Conn
	br *bufio.Reader
}

func dialRawWS(tb testing.TB, e *testEnv, query string) *rawWS {
	tb.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	_, err = io.WriteString(nc, "GET /engine.io/?"+query+" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"+
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+
		base64.StdEncoding.EncodeToString(key)+"\r\n\r\n")
	if err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("handshake: %v %v", resp, err)
	}
	return &rawWS{nc: nc, br: br}
}

// read returns the payload of the next frame from the server (unmasked,
// small), failing after 3 s.
func (c *rawWS) read(tb testing.TB) string {
	tb.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		tb.Fatalf("read: %v", err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			tb.Fatalf("read: %v", err)
		}
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		tb.Fatal("read: frame too large for the test")
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		tb.Fatalf("read: %v", err)
	}
	return string(p)
}

// partialFrame is the header of a masked 10-byte text frame and 1 byte
// of its payload.
var partialFrame = []byte{0x81, 0x80 | 10, 1, 2, 3, 4, 'x'}

// write sends each text as a masked text frame, all in one write.
func (c *rawWS) write(tb testing.TB, texts ...string) {
	tb.Helper()
	c.writeRaw(tb, textFrames(tb, texts...))
}

// textFrames returns each text as a masked text frame.
func textFrames(tb testing.TB, texts ...string) []byte {
	tb.Helper()
	var b bytes.Buffer
	key := [4]byte{1, 2, 3, 4}
	for _, s := range texts {
		if len(s) > 125 {
			tb.Fatal("write: text too long for the test")
		}
		b.Write([]byte{0x81, 0x80 | byte(len(s))})
		b.Write(key[:])
		for i := range len(s) {
			b.WriteByte(s[i] ^ key[i%4])
		}
	}
	return b.Bytes()
}

func (c *rawWS) writeRaw(tb testing.TB, b []byte) {
	tb.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		tb.Fatalf("write: %v", err)
	}
}
