package herald_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/auth"
)

func TestHeartbeatTerminatesClientThatIgnoresPings(t *testing.T) {
	t.Parallel()
	// The timeout leaves the answering client plenty of slack on a loaded
	// CI machine running -race; the zombie still goes within ~2.2 s.
	const interval, timeout = 200 * time.Millisecond, 2 * time.Second
	ts := startServer(t, herald.Config{HeartbeatInterval: interval, HeartbeatTimeout: timeout})
	alive := dial(t, ts.URL) // reads, so coder/websocket answers pings
	// The zombie cannot be terminated sooner than interval+timeout after
	// its upgrade, which comes after this: the lower bound holds however
	// late a loaded machine runs the checks below.
	start := time.Now()
	zombie := dialNoRead(t, ts.URL)
	// Waiting on the termination itself, not on the count of connections
	// (which is 1 before the zombie registers as after it is gone). The
	// deadlines only bound a hang.
	waitFor(t, 30*time.Second, "zombie terminated", func() bool {
		return metricValue(t, ts, "herald_heartbeat_terminations_total") >= 1
	})
	waitFor(t, 30*time.Second, "zombie's handler finished", func() bool { return ts.Connections() == 1 })
	t.Logf("terminated after %s", time.Since(start))
	if took := time.Since(start); took < interval+timeout {
		t.Errorf("terminated after %s, before interval+timeout (%s)", took, interval+timeout)
	}
	// The socket was closed without a close handshake: the zombie sees no close frame.
	zombie.startReader()
	for {
		m, err := zombie.tryRead(5 * time.Second)
		if errors.Is(err, errTimeout) {
			t.Fatal("the zombie's socket is still open after the server terminated it")
		}
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				t.Fatalf("zombie got a close frame %v; want the socket just closed", ce)
			}
			break
		}
		if m["type"] != "welcome" {
			t.Fatalf("zombie got %v", m)
		}
	}
	if got := metricValue(t, ts, "herald_heartbeat_terminations_total"); got != 1 {
		t.Errorf("herald_heartbeat_terminations_total = %v", got)
	}
	// Its termination is logged with its connection id.
	zid := ""
	for _, l := range ts.Logs.lines(t) {
		if l["msg"] == "connected" && l["conn_id"] != alive.welcome["connectionId"] {
			zid, _ = l["conn_id"].(string)
		}
	}
	found := false
	for _, l := range ts.Logs.lines(t) {
		if strings.Contains(fmt.Sprint(l["msg"]), "no pong") && l["conn_id"] == zid && zid != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("no heartbeat termination log line with conn_id %q", zid)
		for _, l := range ts.Logs.lines(t) {
			t.Log(l)
		}
	}
	// The client that answers pings outlives many intervals.
	time.Sleep(time.Second)
	if n := ts.Connections(); n != 1 {
		t.Fatalf("%d connections after a further second, want the live client's 1", n)
	}
	alive.join("still-here")
}

func TestCompressionAndReadLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{ReadLimit: 4096})
	c := dial(t, ts.URL, withCompression())
	if ext := c.resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") || !strings.Contains(ext, "server_no_context_takeover") {
		t.Fatalf("deflate not negotiated as expected: %q", ext)
	}
	c.join("big")
	big := strings.Repeat("herald ", 2000) // 14 KB, compresses well
	if _, err := ts.Publish(context.Background(), "big", "blob", big); err != nil {
		t.Fatal(err)
	}
	if m := c.expect("event"); m["data"] != big {
		t.Fatalf("large compressed event corrupted (len %d)", len(fmt.Sprint(m["data"])))
	}
	// 3 KB compressed well below the limit but over it once inflated: the
	// limit counts decompressed bytes.
	msg := `{"type":"publish","room":"big","event":"x","data":"` + strings.Repeat("a", 5000) + `"}`
	c.send(msg)
	code, reason := c.closeStatus(3 * time.Second)
	if code != websocket.StatusMessageTooBig || !strings.Contains(reason, "4096") {
		t.Fatalf("close = %d %q, want 1009 naming the limit", code, reason)
	}
}

func TestBadInputKeepsConnectionAndOthers(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	c := dial(t, ts.URL)
	other := dial(t, ts.URL)
	other.join("calm")

	for _, tc := range []struct {
		name, frame, code string
	}{
		{"not JSON", `{"type":`, "bad_message"},
		{"JSON array", `[1,2]`, "bad_message"},
		{"no type", `{"id":1}`, "bad_message"},
		{"wrong field type", `{"type":"join","id":"x1","room":5}`, "bad_message"},
		{"unknown type", `{"type":"launch","id":2}`, "unknown_type"},
	} {
		c.send(tc.frame)
		m := c.expect("error")
		if m["code"] != tc.code {
			t.Errorf("%s: code %v, want %s", tc.name, m["code"], tc.code)
		}
	}
	// The id survives a wrongly typed field so the client can match the error.
	c.send(`{"type":"join","id":"x9","room":5}`)
	if m := c.expect("error"); m["id"] != "x9" {
		t.Errorf("error lost the request id: %v", m)
	}
	// Binary frames: documented error, connection stays.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if m := c.expect("error"); m["code"] != "binary_unsupported" {
		t.Fatalf("binary frame: %v", m)
	}
	c.join("still-open")

	// Invalid UTF-8 in a text frame closes that connection with 1007...
	if err := c.c.Write(ctx, websocket.MessageText, []byte("{\"type\":\"join\",\"room\":\"\xff\xfe\"}")); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.closeStatus(3 * time.Second); code != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("invalid UTF-8: close %d, want 1007", code)
	}
	// ...and nobody else notices.
	if _, err := ts.Publish(context.Background(), "calm", "ok", 1); err != nil {
		t.Fatal(err)
	}
	other.expect("event")
}

// rawDial performs a WebSocket handshake by hand, for frames no real client
// library would send.
func rawDial(t *testing.T, httpURL string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(httpURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	fmt.Fprintf(nc, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n", base64.StdEncoding.EncodeToString(key))
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return nc, br
}

// readServerFrame reads one unmasked server frame.
func readServerFrame(t *testing.T, br *bufio.Reader) (op byte, payload []byte) {
	t.Helper()
	h := make([]byte, 2)
	if _, err := io_ReadFull(br, h); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		ext := make([]byte, 2)
		_, _ = io_ReadFull(br, ext)
		n = int(ext[0])<<8 | int(ext[1])
	}
	payload = make([]byte, n)
	_, _ = io_ReadFull(br, payload)
	return h[0] & 0x0f, payload
}

func TestProtocolViolationClosedPerRFC(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	nc, br := rawDial(t, ts.HTTP.URL)
	if op, _ := readServerFrame(t, br); op != 1 {
		t.Fatalf("first frame opcode %d, want text (welcome)", op)
	}
	// An unmasked client frame is a protocol error (RFC 6455 5.1).
	_, _ = nc.Write([]byte{0x81, 0x02, '{', '}'})
	op, payload := readServerFrame(t, br)
	if op != 8 || len(payload) < 2 || int(payload[0])<<8|int(payload[1]) != 1002 {
		t.Fatalf("got opcode %d payload %q, want close 1002", op, payload)
	}
}

func TestSlowConsumerDisconnectedOthersUnaffected(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{SendQueueSize: 16, WriteTimeout: 5 * time.Second})
	slow := dialNoRead(t, ts.URL) // never reads: kernel buffers, then its queue, fill up
	fast := dial(t, ts.URL)
	// The slow client joins by writing only; it never reads the reply.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := slow.c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"feed"}`)); err != nil {
		t.Fatal(err)
	}
	fast.join("feed")
	waitFor(t, 2*time.Second, "both clients in the room", func() bool {
		req, _ := http.NewRequest("GET", ts.HTTP.URL+"/api/v1/rooms/feed/presence", nil)
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var p struct{ Connections int }
		return jsonDecode(resp, &p) == nil && p.Connections == 2
	})

	// 400 x 64 KiB = 25 MiB: more than loopback socket buffers can hold
	// even after autotuning, so the slow client's queue must fill. The
	// publisher stays at most 8 messages ahead of the fast client, which
	// is what "keeps up" means.
	payload := strings.Repeat("x", 64<<10)
	const n, window = 400, 8
	for i := 0; i < n; i++ {
		if _, err := ts.Publish(context.Background(), "feed", "tick", payload); err != nil {
			t.Fatal(err)
		}
		if i >= window {
			if m := fast.read(); m["type"] != "event" {
				t.Fatalf("fast client got %v", m)
			}
		}
	}
	for i := 0; i < window; i++ {
		if m := fast.read(); m["type"] != "event" {
			t.Fatalf("fast client got %v", m)
		}
	}
	waitFor(t, 5*time.Second, "slow client disconnected", func() bool { return ts.Connections() == 1 })
	if got := metricValue(t, ts, "herald_slow_consumer_disconnects_total"); got != 1 {
		t.Errorf("slow consumer metric = %v", got)
	}
}

func TestHookPanicRecovered(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnEvent: func(ctx context.Context, c *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
			switch event {
			case "boom":
				panic("hook exploded")
			case "fail":
				return nil, errors.New("no such order")
			case "coded":
				return nil, &herald.EventError{Code: "out_of_stock", Message: "none left"}
			}
			return map[string]any{"echo": json.RawMessage(data), "user": c.UserID}, nil
		},
	}})
	c := dial(t, ts.URL, withHeader("X-Client-Id", "carol"))
	other := dial(t, ts.URL)
	other.join("r")

	if m := c.request(map[string]any{"type": "emit", "id": 1, "event": "boom"}); m["code"] != "internal" {
		t.Fatalf("panicking hook: %v", m)
	}
	if m := c.request(map[string]any{"type": "emit", "id": 2, "event": "fail"}); m["code"] != "event_failed" || m["message"] != "no such order" {
		t.Fatalf("failing hook: %v", m)
	}
	if m := c.request(map[string]any{"type": "emit", "id": 3, "event": "coded"}); m["code"] != "out_of_stock" {
		t.Fatalf("coded error: %v", m)
	}
	m := c.request(map[string]any{"type": "emit", "id": 4, "event": "echo", "data": map[string]int{"a": 1}})
	if m["type"] != "reply" || fmt.Sprint(m["data"]) != "map[echo:map[a:1] user:carol]" {
		t.Fatalf("reply: %v", m)
	}
	if _, err := ts.Publish(context.Background(), "r", "e", 1); err != nil {
		t.Fatal(err)
	}
	other.expect("event")
	if got := metricValue(t, ts, `herald_hook_panics_total{hook="on_event"}`); got != 1 {
		t.Errorf("hook panics metric = %v", got)
	}
}

func TestConnectAndDisconnectHooks(t *testing.T) {
	t.Parallel()
	type ev struct {
		kind, user string
		code       int
	}
	events := make(chan ev, 10)
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnConnect: func(ctx context.Context, c *herald.ConnInfo) error {
			events <- ev{"connect", c.UserID, 0}
			// With hooks set, the upgrade request's headers and context
			// values stay with the connection.
			if got := c.Header.Get("X-Client-Id"); got != c.UserID {
				t.Errorf("ConnInfo.Header X-Client-Id = %q, want %q", got, c.UserID)
			}
			if ctx.Value(http.ServerContextKey) == nil {
				t.Error("hook context lacks the request's values")
			}
			if c.UserID == "mallory" {
				return errors.New("banned")
			}
			return nil
		},
		OnDisconnect: func(ctx context.Context, c *herald.ConnInfo, code int, reason string) {
			events <- ev{"disconnect", c.UserID, code}
		},
	}})
	c := dial(t, ts.URL, withHeader("X-Client-Id", "dave"))
	if e := recv(t, events); e != (ev{"connect", "dave", 0}) {
		t.Fatalf("got %v", e)
	}
	_ = c.c.Close(websocket.StatusNormalClosure, "bye")
	if e := recv(t, events); e != (ev{"disconnect", "dave", 1000}) {
		t.Fatalf("got %v", e)
	}
	m := dial(t, ts.URL, withHeader("X-Client-Id", "mallory"))
	if code, reason := m.closeStatus(3 * time.Second); code != websocket.StatusPolicyViolation || reason != "banned" {
		t.Fatalf("refused by hook: %d %q", code, reason)
	}
}

// panickyPermissions is an application's Permissions with a bug: it
// panics for one room.
type panickyPermissions struct{}

func (panickyPermissions) CanJoin(room string) bool {
	if room == "boom" {
		panic("bug in CanJoin")
	}
	return true
}
func (panickyPermissions) CanPublish(string) bool { return true }

type permissionsAuthenticator struct{ p auth.Permissions }

func (a permissionsAuthenticator) Authenticate(r *http.Request) (*auth.Identity, error) {
	return &auth.Identity{UserID: r.Header.Get("X-Client-Id"), Permissions: a.p}, nil
}

// TestPanicWhileServingClosesWith1011: a panic on a connection's goroutine
// (here in application code outside the hooks) costs that connection
// alone: it is closed with 1011 "internal error", the panic is logged with
// its stack, and the other clients keep their messages.
func TestPanicWhileServingClosesWith1011(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{Authenticator: permissionsAuthenticator{panickyPermissions{}}})
	victim := dial(t, ts.URL, withHeader("X-Client-Id", "victim"))
	bystander := dial(t, ts.URL, withHeader("X-Client-Id", "bystander"))
	bystander.join("news")
	victim.send(map[string]any{"type": "join", "id": "j1", "room": "boom"})
	code, reason := victim.closeStatus(5 * time.Second)
	if code != websocket.StatusInternalError || reason != "internal error" {
		t.Fatalf("closed with %d %q, want 1011 \"internal error\"", code, reason)
	}
	if _, err := ts.Publish(context.Background(), "news", "still", "here"); err != nil {
		t.Fatal(err)
	}
	if m := bystander.expect("event"); m["event"] != "still" {
		t.Fatalf("bystander got %v", m)
	}
	waitFor(t, 2*time.Second, "panic logged and counted", func() bool {
		logged := false
		for _, l := range ts.Logs.lines(t) {
			if l["msg"] == "panic while serving a connection" && strings.Contains(fmt.Sprint(l["stack"]), "CanJoin") {
				logged = true
			}
		}
		return logged && metricValue(t, ts, `herald_connections_closed_total{reason="internal_error"}`) == 1
	})
}
