package herald_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald"
)

// rawDialPath performs a WebSocket handshake by hand on path.
func rawDialPath(t *testing.T, httpURL, path string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(httpURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", path, wsKey())
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake on %s: %v %v", path, resp, err)
	}
	return nc, br
}

// A client that declares a large frame and sends only its start makes
// the node hold a buffer of the frame's size; v1's and Socket.IO's
// WebSockets count those in one node-wide budget (MaxNodeReadingBytes),
// shown in herald_read_buffer_bytes: the connection that does not fit is
// closed with 1013 and counted in {limit="node_reading_bytes"}, and the
// bytes come back when the holders go away mid-frame. Socket.IO's
// long-polling POST bodies count in it too.
func TestReadBuffersNodeBound(t *testing.T) {
	t.Parallel()
	const size = 60_000
	const grown = 8 + size // 16-bit length and mask, then the payload
	ts := startServer(t, herald.Config{MaxNodeReadingBytes: 2 * grown,
		SocketIO: herald.SocketIOConfig{Enabled: true, PingInterval: time.Minute, PingTimeout: time.Minute}})
	partial := maskedFrame(2, make([]byte, size))[:grown-1000]
	waitGauge := func(want float64) {
		t.Helper()
		waitFor(t, 5*time.Second, fmt.Sprintf("herald_read_buffer_bytes = %v", want), func() bool {
			return metricValue(t, ts, "herald_read_buffer_bytes") == want
		})
	}

	v1, _ := rawDialPath(t, ts.HTTP.URL, "/ws")
	_, _ = v1.Write(partial)
	waitGauge(grown)
	eio, _ := rawDialPath(t, ts.HTTP.URL, "/socket.io/?EIO=4&transport=websocket")
	_, _ = eio.Write(partial)
	waitGauge(2 * grown)

	over, br := rawDialPath(t, ts.HTTP.URL, "/ws")
	_, _ = over.Write(partial)
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		op, payload, err := readFrame(br)
		if err != nil {
			t.Fatalf("no close frame for the connection over the bound: %v", err)
		}
		if op != 8 {
			continue // the welcome
		}
		if code := binary.BigEndian.Uint16(payload); code != 1013 ||
			string(payload[2:]) != "server busy: too many large messages being read" {
			t.Fatalf("close %d %q, want 1013", code, payload[2:])
		}
		break
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="node_reading_bytes"}`); v != 1 {
		t.Fatalf(`herald_limit_rejections_total{limit="node_reading_bytes"} = %v, want 1`, v)
	}
	if v := metricValue(t, ts, "herald_read_buffer_bytes"); v != 2*grown {
		t.Fatalf("herald_read_buffer_bytes = %v after the refusal, want %v", v, 2*grown)
	}
	v1.Close()
	eio.Close()
	waitGauge(0)

	// A long-polling POST body arriving slowly counts too (its buffer
	// beyond 4 KiB, 64 KiB once 40,000 B have come); one that does not
	// fit is answered 503.
	post := func() net.Conn {
		_, sid, _ := pollHandshake(t, ts, 0)
		nc, err := net.Dial("tcp", strings.TrimPrefix(ts.HTTP.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		fmt.Fprintf(nc, "POST /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 200000\r\n\r\n4%s", sid, strings.Repeat("a", 40_000-1))
		return nc
	}
	slow := post()
	waitGauge(64 << 10)
	refused := post()
	_ = refused.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(refused), nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST over the bound: %v %v, want 503", resp, err)
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="node_reading_bytes"}`); v != 2 {
		t.Fatalf(`herald_limit_rejections_total{limit="node_reading_bytes"} = %v, want 2`, v)
	}
	slow.Close()
	waitGauge(0)
}

// A Socket.IO binary packet is held, with its attachments so far, until
// its last attachment arrives, which the client may never send, and
// before it has joined any namespace: those bytes count in the node's
// read budget too (frames of 4 KiB, which the WebSocket's own reading
// never counts, here), and the connection whose packet does not fit is
// closed.
func TestSocketIOAttachmentsCountInReadBudget(t *testing.T) {
	t.Parallel()
	const budget = 50_000
	ts := startServer(t, herald.Config{MaxNodeReadingBytes: budget,
		SocketIO: herald.SocketIOConfig{Enabled: true, PingInterval: time.Minute, PingTimeout: time.Minute}})
	nc, br := rawDialPath(t, ts.HTTP.URL, "/socket.io/?EIO=4&transport=websocket")
	var placeholders []string
	for i := range 20 {
		placeholders = append(placeholders, fmt.Sprintf(`{"_placeholder":true,"num":%d}`, i))
	}
	packet := `4520-["e",` + strings.Join(placeholders, ",") + `]`
	_, _ = nc.Write(maskedFrame(1, []byte(packet)))
	attachment := maskedFrame(2, make([]byte, 4000))
	for range 12 { // 48,000 B and the packet: under the budget
		_, _ = nc.Write(attachment)
	}
	held := float64(len(packet) - 1 + 12*4000) // without the Engine.IO type
	waitFor(t, 5*time.Second, fmt.Sprintf("herald_read_buffer_bytes = %v", held), func() bool {
		return metricValue(t, ts, "herald_read_buffer_bytes") == held
	})
	_, _ = nc.Write(attachment) // over it
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		op, _, err := readFrame(br)
		if err != nil {
			t.Fatalf("the connection over the budget was not closed: %v", err)
		}
		if op == 8 {
			break
		}
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="node_reading_bytes"}`); v != 1 {
		t.Fatalf(`herald_limit_rejections_total{limit="node_reading_bytes"} = %v, want 1`, v)
	}
	waitFor(t, 5*time.Second, "herald_read_buffer_bytes = 0", func() bool {
		return metricValue(t, ts, "herald_read_buffer_bytes") == 0
	})
}

// A compressed message of about a hundred bytes inflates to 60 KB, which
// the node holds while its OnEvent hook (an application, a backend over
// HTTP) handles it: the inflated message counts in the node's read
// budget until the connection reads on, so clients that each have one
// being handled fill MaxNodeReadingBytes (herald_read_buffer_bytes) and
// the next is closed with 1013, counted in {limit="node_reading_bytes"}.
func TestInflatedMessagesCountInReadBudget(t *testing.T) {
	t.Parallel()
	// The inflated message's buffer: the read limit and a byte, rounded
	// up to the allocator's size.
	const output = 73_728
	entered := make(chan struct{}, 8)
	release := make(chan struct{})
	ts := startServer(t, herald.Config{
		// Three messages being handled, and the growth of a fourth's
		// buffer short of its last step (57,344 B to 73,728 B), which
		// counts both while it copies.
		MaxNodeReadingBytes: 4 * output,
		Hooks: herald.Hooks{OnEvent: func(ctx context.Context, c *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
			entered <- struct{}{}
			<-release
			return nil, nil
		}},
	})
	t.Cleanup(func() { // before the server's: its hooks must return
		select {
		case <-release:
		default:
			close(release)
		}
	})
	emit := map[string]any{"type": "emit", "id": "e", "event": "upload", "data": strings.Repeat("a", 60_000)}
	for i := range 3 {
		wc := dial(t, ts.URL, withCompression())
		wc.send(emit)
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatalf("emit %d did not reach the hook", i)
		}
		if v := metricValue(t, ts, "herald_read_buffer_bytes"); v != float64((i+1)*output) {
			t.Fatalf("%d inflated messages being handled: herald_read_buffer_bytes = %v, want %v", i+1, v, (i+1)*output)
		}
	}
	over := dial(t, ts.URL, withCompression())
	over.send(emit)
	if code, reason := over.closeStatus(5 * time.Second); code != 1013 ||
		reason != "server busy: too many large messages being read" {
		t.Fatalf("a fourth inflated message: close %d %q, want 1013", code, reason)
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="node_reading_bytes"}`); v != 1 {
		t.Fatalf(`herald_limit_rejections_total{limit="node_reading_bytes"} = %v, want 1`, v)
	}
	close(release)
	waitFor(t, 5*time.Second, "herald_read_buffer_bytes = 0", func() bool {
		return metricValue(t, ts, "herald_read_buffer_bytes") == 0
	})
}
