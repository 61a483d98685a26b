package transport

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testServer is an httptest server whose handler upgrades every request
// and runs handle (an echo loop when nil) on the connection.
type testServer struct {
	URL   string
	conns chan *Conn
}

func newTestServer(tb testing.TB, opts Options, handle func(*Conn)) *testServer {
	tb.Helper()
	ts := &testServer{conns: make(chan *Conn, 64)}
	var (
		mu  sync.Mutex
		all []*Conn
		wg  sync.WaitGroup
		hdr = http.Header{"X-Request-Id": {"req-42"}}
		h   = handle
	)
	if h == nil {
		h = echo
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		c, err := Upgrade(w, r, opts, hdr)
		if err != nil {
			return
		}
		mu.Lock()
		all = append(all, c)
		mu.Unlock()
		select {
		case ts.conns <- c:
		default:
		}
		h(c)
	}))
	ts.URL = srv.URL
	tb.Cleanup(func() {
		srv.Close()
		mu.Lock()
		conns := all
		mu.Unlock()
		for _, c := range conns {
			c.Terminate(nil)
			<-c.Done()
		}
		wg.Wait()
	})
	return ts
}

// echo sends every message back, as the server would a reply.
func echo(c *Conn) {
	for {
		typ, msg, err := c.Read(context.Background())
		if err != nil {
			return
		}
		if err := c.Send(NewPrepared(typ, msg, c.opts.CompressionThreshold, c.opts.CompressionLevel)); err != nil {
			return
		}
	}
}

// nextConn returns the server side of the latest upgraded connection.
func (ts *testServer) nextConn(tb testing.TB) *Conn {
	tb.Helper()
	select {
	case c := <-ts.conns:
		return c
	case <-time.After(5 * time.Second):
		tb.Fatal("no server connection")
		return nil
	}
}

func (ts *testServer) wsURL() string { return "ws" + strings.TrimPrefix(ts.URL, "http") }

// rawClient is a handwritten WebSocket client used to send frames a
// well-behaved library would refuse to send.
type rawClient struct {
	tb   testing.TB
	nc   net.Conn
	br   *bufio.Reader
	resp *http.Response
	key  string // the Sec-WebSocket-Key sent
}

func dialRaw(tb testing.TB, url string, extraHeader string) *rawClient {
	tb.Helper()
	return dialRawWith(tb, url, extraHeader, nil)
}

// dialRawWith sends early right behind the handshake request, in the same
// write.
func dialRawWith(tb testing.TB, url string, extraHeader string, early []byte) *rawClient {
	tb.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { nc.Close() })
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	key := base64.StdEncoding.EncodeToString(raw)
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n" +
		extraHeader + "\r\n"
	if _, err := nc.Write(append([]byte(req), early...)); err != nil {
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
	return &rawClient{tb: tb, nc: nc, br: br, resp: resp, key: key}
}

// frame encodes one client frame. rsv holds the RSV bits (0x40, 0x20, 0x10).
func frame(fin bool, rsv, op byte, payload []byte, masked bool) []byte {
	b0 := rsv | op
	if fin {
		b0 |= 0x80
	}
	var b1 byte
	if masked {
		b1 = 0x80
	}
	out := []byte{b0, 0}
	switch n := len(payload); {
	case n <= 125:
		out[1] = b1 | byte(n)
	case n <= 0xffff:
		out[1] = b1 | 126
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out[1] = b1 | 127
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	p := append([]byte(nil), payload...)
	if masked {
		key := [4]byte{0x12, 0x34, 0x56, 0x78}
		out = append(out, key[:]...)
		for i := range p {
			p[i] ^= key[i%4]
		}
	}
	return append(out, p...)
}

// mframe is a masked frame, as a client must send.
func mframe(fin bool, op byte, payload []byte) []byte { return frame(fin, 0, op, payload, true) }

func (rc *rawClient) write(frames ...[]byte) {
	rc.tb.Helper()
	_ = rc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := rc.nc.Write(bytes.Join(frames, nil)); err != nil {
		rc.tb.Fatal(err)
	}
}

type rawFrame struct {
	fin, rsv1 bool
	op        byte
	payload   []byte
	wireLen   int
}

func (rc *rawClient) readFrame() (rawFrame, error) {
	_ = rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var f rawFrame
	var h [2]byte
	if _, err := io.ReadFull(rc.br, h[:]); err != nil {
		return f, err
	}
	f.fin, f.rsv1, f.op = h[0]&0x80 != 0, h[0]&0x40 != 0, h[0]&0x0f
	if h[1]&0x80 != 0 {
		return f, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	f.wireLen = 2
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(rc.br, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
		f.wireLen += 2
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(rc.br, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
		f.wireLen += 8
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(rc.br, f.payload); err != nil {
		return f, err
	}
	f.wireLen += int(n)
	return f, nil
}

func (rc *rawClient) mustRead() rawFrame {
	rc.tb.Helper()
	f, err := rc.readFrame()
	if err != nil {
		rc.tb.Fatal(err)
	}
	return f
}

// expectClose reads frames until a close frame and returns its code and
// reason (1005 when empty).
func (rc *rawClient) expectClose() (int, string) {
	rc.tb.Helper()
	for {
		f := rc.mustRead()
		if f.op != opClose {
			continue
		}
		if len(f.payload) < 2 {
			return CloseNoStatus, ""
		}
		return int(binary.BigEndian.Uint16(f.payload)), string(f.payload[2:])
	}
}

func inflateBytes(tb testing.TB, p []byte) []byte {
	tb.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail)))
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// deflateBytes compresses p as a permessage-deflate message.
func deflateBytes(tb testing.TB, p []byte, level int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, level)
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// checkFor polls cond until it returns nil or timeout passes.
func checkFor(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone waits for c to end and returns its cause.
func waitDone(tb testing.TB, c *Conn, timeout time.Duration) error {
	tb.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(timeout):
		tb.Fatalf("connection not done after %v", timeout)
		return nil
	}
}

// text returns n bytes of compressible pseudo-text.
func text(n int) []byte {
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"}
	b := make([]byte, 0, n+32)
	x := uint32(12345)
	for len(b) < n {
		x = x*1664525 + 1013904223
		b = append(b, words[x>>28%uint32(len(words))]...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(x>>20), 10)
		b = append(b, ' ')
	}
	return b[:n]
}

// testOptions returns opts with their defaults, for a Conn made without
// an Upgrader.
func testOptions(opts Options) *Options {
	opts = opts.withDefaults()
	return &opts
}
