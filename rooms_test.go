package herald_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald"
)

func TestWelcome(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{HeartbeatInterval: 7 * time.Second})
	c := dial(t, ts.URL, withHeader("X-Request-ID", "req-abc-123"), withHeader("X-Client-Id", "alice"))
	w := c.welcome
	for _, f := range []string{"connectionId", "sessionId", "correlationId", "userId", "heartbeatMs", "protocol"} {
		if _, ok := w[f]; !ok {
			t.Errorf("welcome lacks %q: %v", f, w)
		}
	}
	if w["correlationId"] != "req-abc-123" {
		t.Errorf("correlationId = %v, want the X-Request-ID", w["correlationId"])
	}
	if got := c.resp.Header.Get("X-Request-ID"); got != "req-abc-123" {
		t.Errorf("upgrade response X-Request-ID = %q", got)
	}
	if w["userId"] != "alice" || w["heartbeatMs"] != float64(7000) || w["protocol"] != float64(1) {
		t.Errorf("welcome = %v", w)
	}
	// 120 random bits each, 24 characters: every connection keeps both,
	// and 24 bytes is an allocation size class (26 would take 32).
	for _, f := range []string{"sessionId", "resumeToken"} {
		if v, _ := w[f].(string); len(v) != 24 {
			t.Errorf("%s = %q: %d characters, want 24", f, v, len(v))
		}
	}

	// Without X-Request-ID the connection id serves and is echoed; so
	// with one that cannot go into a log line as it is.
	for _, h := range []string{"", "bad id", strings.Repeat("x", 129)} {
		var opts []dialOpt
		if h != "" {
			opts = append(opts, withHeader("X-Request-ID", h))
		}
		c2 := dial(t, ts.URL, opts...)
		cid := c2.welcome["correlationId"].(string)
		if cid != c2.welcome["connectionId"] || c2.resp.Header.Get("X-Request-ID") != cid {
			t.Errorf("X-Request-ID %q: correlation id %q, want the connection id %q, echoed (header %q)", h, cid, c2.welcome["connectionId"], c2.resp.Header.Get("X-Request-ID"))
		}
	}
	c2 := dial(t, ts.URL)
	if uid := c2.welcome["userId"].(string); len(uid) < 6 {
		t.Errorf("generated user id %q", uid)
	}
}

func TestBadClientIDRefusedBeforeUpgrade(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	req, _ := http.NewRequest("GET", ts.HTTP.URL+"/ws", nil)
	req.Header.Set("X-Client-Id", "bad id with spaces")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}

func TestRoomsDeliverOnceInOrder(t *testing.T) {
	t.Parallel()
	// A burst of msgs from one publisher may sit in the queues at once on a
	// loaded machine: give the queues room for it.
	ts := startServer(t, herald.Config{SendQueueSize: 1024, MessageRate: -1})
	const members, msgs = 4, 300
	var clients []*wsClient
	for i := 0; i < members; i++ {
		c := dial(t, ts.URL)
		c.join("chat")
		clients = append(clients, c)
	}
	outsider := dial(t, ts.URL)
	outsider.join("other")

	pub := clients[0]
	for i := 0; i < msgs; i++ {
		pub.send(map[string]any{"type": "publish", "room": "chat", "event": "msg", "data": map[string]int{"n": i}})
	}
	for ci, c := range clients {
		for i := 0; i < msgs; i++ {
			m := c.expect("event")
			var d struct{ N int }
			b, _ := json.Marshal(m["data"])
			_ = json.Unmarshal(b, &d)
			if m["room"] != "chat" || m["event"] != "msg" || d.N != i {
				t.Fatalf("client %d: message %d = %v", ci, i, m)
			}
			if str(m["msgId"]) == "" || m["ts"] == nil || m["from"] != pub.welcome["userId"] {
				t.Fatalf("event lacks msgId/ts/from: %v", m)
			}
		}
	}
	// Nothing more for members (each message exactly once), nothing for the outsider.
	for ci, c := range append(clients, outsider) {
		if m, err := c.tryRead(150 * time.Millisecond); err == nil {
			t.Fatalf("client %d got an extra frame: %v", ci, m)
		}
	}
}

func TestJoinLeavePublishErrors(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{MaxRoomsPerConn: 2})
	c := dial(t, ts.URL, withHeader("X-Client-Id", "alice"))
	tests := []struct {
		name     string
		req      map[string]any
		wantType string
		wantCode string
	}{
		{"publish before join", map[string]any{"type": "publish", "id": 1, "room": "a", "event": "e"}, "error", "not_joined"},
		{"join a", map[string]any{"type": "join", "id": 2, "room": "a"}, "reply", ""},
		{"join a again is idempotent", map[string]any{"type": "join", "id": 3, "room": "a"}, "reply", ""},
		{"publish after join", map[string]any{"type": "publish", "id": 4, "room": "a", "event": "e", "data": 1}, "reply", ""},
		{"join another user's room", map[string]any{"type": "join", "id": 5, "room": "user:bob"}, "error", "forbidden"},
		{"publish to another user's room", map[string]any{"type": "publish", "id": 6, "room": "user:bob", "event": "e"}, "error", "forbidden"},
		{"join own user room", map[string]any{"type": "join", "id": 7, "room": "user:alice"}, "reply", ""},
		{"leave own user room", map[string]any{"type": "leave", "id": 8, "room": "user:alice"}, "error", "bad_request"},
		{"join b", map[string]any{"type": "join", "id": 9, "room": "b"}, "reply", ""},
		{"room limit", map[string]any{"type": "join", "id": 10, "room": "c"}, "error", "too_many_rooms"},
		{"leave a", map[string]any{"type": "leave", "id": 11, "room": "a"}, "reply", ""},
		{"leave a twice", map[string]any{"type": "leave", "id": 12, "room": "a"}, "error", "not_joined"},
		{"join without room", map[string]any{"type": "join", "id": 13}, "error", "bad_request"},
		{"publish without event", map[string]any{"type": "publish", "id": 14, "room": "b"}, "error", "bad_request"},
		{"emit without hook", map[string]any{"type": "emit", "id": 15, "event": "x"}, "error", "no_handler"},
		{"unknown type", map[string]any{"type": "subscribe", "id": "u1", "room": "a"}, "error", "unknown_type"},
		{"ack", map[string]any{"type": "ack", "id": 16, "msgIds": []string{"nope"}}, "reply", ""},
		{"room with control char", map[string]any{"type": "join", "id": 17, "room": "a\nb"}, "error", "bad_request"},
		{"id of wrong type", map[string]any{"type": "join", "id": map[string]int{"x": 1}, "room": "a"}, "error", "bad_request"},
		{"ping", map[string]any{"type": "ping", "id": "hb-1"}, "reply", ""},
	}
	for _, tt := range tests {
		// Sequential: the cases share one connection's state.
		m := c.request(tt.req) // skips the publisher's own events
		if m["type"] != tt.wantType || (tt.wantCode != "" && m["code"] != tt.wantCode) {
			t.Errorf("%s: got %v, want %s %s", tt.name, m, tt.wantType, tt.wantCode)
		}
		if tt.wantType == "error" && str(m["message"]) == "" {
			t.Errorf("%s: error without message: %v", tt.name, m)
		}
	}
}

func TestDirectToUserReachesAllConnections(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	a1 := dial(t, ts.URL, withHeader("X-Client-Id", "alice"))
	a2 := dial(t, ts.URL+"?clientId=alice")
	bob := dial(t, ts.URL, withHeader("X-Client-Id", "bob"))

	if _, err := ts.PublishToUser(context.Background(), "alice", "dm", map[string]string{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*wsClient{a1, a2} {
		m := c.expect("event")
		if m["room"] != "user:alice" || m["event"] != "dm" {
			t.Fatalf("alice conn %d got %v", i, m)
		}
	}
	if m, err := bob.tryRead(100 * time.Millisecond); err == nil {
		t.Fatalf("bob got %v", m)
	}
	// The API reaches users too.
	code, body := apiPublish(t, ts, testAPIKey, `{"user":"bob","event":"dm","data":{"n":1}}`)
	if code != 200 || body["room"] != "user:bob" {
		t.Fatalf("API: %d %v", code, body)
	}
	if m := bob.expect("event"); m["event"] != "dm" {
		t.Fatalf("bob got %v", m)
	}
}

func TestLeaveStopsDelivery(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	a := dial(t, ts.URL)
	b := dial(t, ts.URL)
	a.join("r")
	b.join("r")
	if m := b.request(map[string]any{"type": "leave", "id": "l", "room": "r"}); m["type"] != "reply" {
		t.Fatal(m)
	}
	if _, err := ts.Publish(context.Background(), "r", "e", 1); err != nil {
		t.Fatal(err)
	}
	a.expect("event")
	if m, err := b.tryRead(100 * time.Millisecond); err == nil {
		t.Fatalf("left member got %v", m)
	}
}

func TestManyRoomsManyClients(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	const rooms = 5
	var cs []*wsClient
	for i := 0; i < rooms*3; i++ {
		c := dial(t, ts.URL)
		c.join(fmt.Sprintf("room-%d", i%rooms))
		cs = append(cs, c)
	}
	for r := 0; r < rooms; r++ {
		if _, err := ts.Publish(context.Background(), fmt.Sprintf("room-%d", r), "hello", r); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cs {
		m := c.expect("event")
		if m["room"] != fmt.Sprintf("room-%d", i%rooms) || m["data"] != float64(i%rooms) {
			t.Fatalf("client %d got %v", i, m)
		}
	}
}
