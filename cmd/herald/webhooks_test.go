package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/backend"
	"github.com/heraldrt/herald/internal/testserver"
)

const webhookSecret = "webhook-test-secret-0123456789abcdef"

// webhookSink is the application's backend of the test: it verifies each
// request's signature and keeps every event it is posted, duplicates
// included.
type webhookSink struct {
	t   *testing.T
	mu  sync.Mutex
	all []backend.Event
}

func (s *webhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := backend.Verify([]byte(webhookSecret), body, r.Header.Get(backend.HeaderSignature), time.Now(), time.Minute); err != nil {
		s.t.Errorf("unsigned %s: %v", r.URL.Path, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.URL.Path != "/events" {
		http.Error(w, "unexpected hook", http.StatusNotFound)
		return
	}
	var req struct{ Events []backend.Event }
	if err := json.Unmarshal(body, &req); err != nil {
		s.t.Errorf("events body: %v", err)
	}
	s.mu.Lock()
	s.all = append(s.all, req.Events...)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// unique returns the events of type typ de-duplicated by id, and how many
// were posted in all.
func (s *webhookSink) unique(typ string) (map[string]backend.Event, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out, n := map[string]backend.Event{}, 0
	for _, e := range s.all {
		if e.Type == typ {
			out[e.ID] = e
			n++
		}
	}
	return out, n
}

// TestWebhooksAfterSIGKILL: three nodes on Redis post webhooks to the
// backend; 300 clients, 100 per node; the node holding 100 of them is
// SIGKILLed. Another node sends exactly one disconnected event (after
// de-duplication by the idempotency key) for each of the 100 lost
// connections, once the dead node's lease lapsed, and none for the 200
// connections still open.
func TestWebhooksAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	bin := buildBinary(t)
	redis := testserver.StartRedis(t)
	sink := &webhookSink{t: t}
	bs := httptest.NewServer(sink)
	defer bs.Close()
	const lease = 3 * time.Second // startNodeWith's --lease-ttl
	var nodes []*node
	for _, name := range []string{"wa", "wb", "wc"} {
		nodes = append(nodes, startNodeWith(t, bin, name, "--redis-url", redis.URL(),
			"--backend-url", bs.URL, "--backend-hooks", "events", "--backend-secret", webhookSecret))
	}
	const perNode = 100
	connsOf := make([][]string, len(nodes)) // connection ids by node
	for i, n := range nodes {
		for j := range perNode {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, _, err := websocket.Dial(ctx, n.ws()+fmt.Sprintf("?clientId=u%d-%d", i, j), nil)
			if err != nil {
				cancel()
				t.Fatalf("dial %s: %v", n.name, err)
			}
			_, b, err := c.Read(ctx)
			cancel()
			if err != nil {
				t.Fatalf("welcome from %s: %v", n.name, err)
			}
			var welcome struct{ ConnectionID string }
			_ = json.Unmarshal(b, &welcome)
			connsOf[i] = append(connsOf[i], welcome.ConnectionID)
			// Read (and drop) whatever comes, so pings are answered.
			go func() {
				for {
					if _, _, err := c.Read(context.Background()); err != nil {
						return
					}
				}
			}()
			t.Cleanup(func() { _ = c.CloseNow() })
		}
	}
	waitUntil(t, 30*time.Second, "300 connected events", func() bool {
		got, _ := sink.unique(backend.EventConnected)
		return len(got) == len(nodes)*perNode
	})

	victim := nodes[1]
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	lost := connsOf[1]
	var took time.Duration
	waitUntil(t, 4*lease, "a disconnected event for each lost connection", func() bool {
		got, _ := sink.unique(backend.EventDisconnected)
		for _, id := range lost {
			if _, ok := got[id+"/"+backend.EventDisconnected]; !ok {
				return false
			}
		}
		took = time.Since(killed)
		return true
	})
	// The lease lapses at most lease after the kill and the survivors
	// look every quarter of it: 1.25 x lease, plus the posting (logged
	// below); 3 x lease leaves room for a loaded machine.
	if took > 3*lease {
		t.Errorf("the lost connections' disconnected events took %s after the kill (lease %s)", took, lease)
	}
	// A moment for duplicates or strays to show up, then the exact count.
	time.Sleep(lease / 2)
	got, posted := sink.unique(backend.EventDisconnected)
	if len(got) != perNode {
		t.Errorf("%d distinct disconnected events, want %d (only the dead node's connections)", len(got), perNode)
	}
	sent := map[string]string{}
	for _, e := range got {
		if !e.Lost || e.Code != 1006 || e.Node != "" && e.Time != 0 {
			t.Errorf("disconnected event of a lost connection: %+v", e)
		}
		sent[e.Conn.ConnID] = e.Node
	}
	for _, id := range lost {
		if _, ok := sent[id]; !ok {
			t.Errorf("no disconnected event for %s", id)
		}
	}
	// Per connection, connected came before disconnected.
	sink.mu.Lock()
	seenConnected := map[string]bool{}
	for _, e := range sink.all {
		switch e.Type {
		case backend.EventConnected:
			seenConnected[e.Conn.ConnID] = true
		case backend.EventDisconnected:
			if !seenConnected[e.Conn.ConnID] {
				t.Errorf("disconnected before connected for %s", e.Conn.ConnID)
			}
		}
	}
	sink.mu.Unlock()
	t.Logf("%d lost connections: %d distinct disconnected events (%d posted) %s after the SIGKILL (lease %s)",
		len(lost), len(got), posted, took.Round(time.Millisecond), lease)
}

// TestServeBackendHooks runs `herald serve --backend-url` with the
// connect, join and emit hooks against a backend of the test's: the
// backend decides who connects and as whom, who joins, what emit answers;
// once it is gone, connects are refused with 503 and emits answered
// backend_unavailable.
func TestServeBackendHooks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	bin := buildBinary(t)
	bs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := backend.Verify([]byte(webhookSecret), body, r.Header.Get(backend.HeaderSignature), time.Now(), time.Minute); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var req map[string]any
		_ = json.Unmarshal(body, &req)
		var answer any
		switch r.URL.Path {
		case "/connect":
			if req["token"] == "deny" {
				answer = map[string]any{"allow": false, "status": 401, "code": "login_required"}
			} else {
				answer = map[string]any{"allow": true, "user": fmt.Sprint("app-", req["token"]), "rooms": []string{"news"}}
			}
		case "/join":
			answer = map[string]any{"allow": req["room"] != "staff"}
		case "/emit":
			answer = map[string]any{"reply": map[string]any{"user": req["conn"].(map[string]any)["user"], "event": req["event"]}}
		}
		_ = json.NewEncoder(w).Encode(answer)
	}))
	defer bs.Close()
	n := startNodeWith(t, bin, "bk", "--backend-url", bs.URL, "--backend-hooks", "connect,join,emit",
		"--backend-secret", webhookSecret, "--backend-hook-timeout", "1s")
	dial := func(token string) (*websocket.Conn, map[string]any, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, n.ws(), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
		if err != nil {
			return nil, nil, resp, err
		}
		t.Cleanup(func() { _ = c.CloseNow() })
		_, b, err := c.Read(ctx)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return c, m, resp, err
	}
	request := func(c *websocket.Conn, req map[string]any) map[string]any {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, _ := json.Marshal(req)
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			if m["id"] == req["id"] {
				return m
			}
		}
	}
	if _, _, resp, err := dial("deny"); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("refused connect: %v %v", err, resp)
	}
	c, welcome, _, err := dial("zoe")
	if err != nil || welcome["userId"] != "app-zoe" || fmt.Sprint(welcome["rooms"]) != "[news]" {
		t.Fatalf("welcome %v %v", welcome, err)
	}
	if m := request(c, map[string]any{"type": "join", "id": "j1", "room": "staff"}); m["code"] != "forbidden" {
		t.Fatalf("join staff: %v", m)
	}
	if m := request(c, map[string]any{"type": "join", "id": "j2", "room": "lobby"}); m["type"] != "reply" {
		t.Fatalf("join lobby: %v", m)
	}
	if m := request(c, map[string]any{"type": "emit", "id": "e1", "event": "hello"}); fmt.Sprint(m["data"]) != "map[event:hello user:app-zoe]" {
		t.Fatalf("emit: %v", m)
	}
	bs.Close() // the backend goes away
	if m := request(c, map[string]any{"type": "emit", "id": "e2", "event": "hello"}); m["code"] != "backend_unavailable" {
		t.Fatalf("emit with the backend gone: %v", m)
	}
	if _, _, resp, err := dial("yan"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("connect with the backend gone: %v %v", err, resp)
	}
}
