package herald_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
)

func TestOnUpgrade(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []*herald.ConnInfo
	var data []json.RawMessage
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnUpgrade: func(ctx context.Context, r *herald.UpgradeRequest) (*herald.UpgradeResult, error) {
			switch r.Request.Header.Get("X-Test") {
			case "deny":
				return nil, &herald.UpgradeError{Status: http.StatusForbidden, Code: "banned", Message: "go away"}
			case "plain-error":
				return nil, errors.New("no")
			case "panic":
				panic("boom")
			case "bad-user":
				return &herald.UpgradeResult{UserID: "a b"}, nil
			case "keep":
				return nil, nil
			}
			return &herald.UpgradeResult{UserID: "u-" + r.Identity.UserID, Rooms: []string{"lobby", "news", "lobby", ""},
				Data: json.RawMessage(`{"plan":"pro"}`)}, nil
		},
		OnConnect: func(ctx context.Context, c *herald.ConnInfo) error {
			mu.Lock()
			seen = append(seen, c)
			data = append(data, herald.ConnData(ctx))
			mu.Unlock()
			return nil
		},
	}})
	refused := []struct {
		name, header string
		status       int
		code         string
	}{
		{"deny", "deny", http.StatusForbidden, "banned"},
		{"plain error", "plain-error", http.StatusForbidden, "connect_refused"},
		{"panic", "panic", http.StatusInternalServerError, "internal"},
		{"bad user", "bad-user", http.StatusInternalServerError, "internal"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, ts.URL, &websocket.DialOptions{HTTPHeader: http.Header{"X-Test": {tc.header}, "X-Client-Id": {"alice"}}})
			if err == nil {
				_ = c.CloseNow()
				t.Fatal("upgrade accepted")
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("status %v, want %d", resp, tc.status)
			}
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if body["error"] != tc.code && body["code"] != tc.code {
				t.Fatalf("body %v, want code %s", body, tc.code)
			}
		})
	}

	c := dial(t, ts.URL, withHeader("X-Client-Id", "alice"))
	if c.welcome["userId"] != "u-alice" {
		t.Fatalf("welcome user %v", c.welcome["userId"])
	}
	if rooms := fmt.Sprint(c.welcome["rooms"]); rooms != "[lobby news]" {
		t.Fatalf("welcome rooms %s", rooms)
	}
	// Joined for real: a publish to the room reaches it.
	if code, m := apiPublish(t, ts, testAPIKey, `{"room":"news","event":"e","data":1}`); code != 200 {
		t.Fatalf("publish %d %v", code, m)
	}
	if ev := c.expect("event"); ev["room"] != "news" {
		t.Fatalf("event %v", ev)
	}
	// OnConnect runs after the welcome is sent: wait for it, not for the event.
	waitFor(t, 5*time.Second, "OnConnect for alice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0
	})
	mu.Lock()
	got, gotData := seen[len(seen)-1], data[len(data)-1]
	mu.Unlock()
	if string(gotData) != `{"plan":"pro"}` || got.UserID != "u-alice" {
		t.Fatalf("conn info %+v", got)
	}
	kept := dial(t, ts.URL, withHeader("X-Client-Id", "bob"), withHeader("X-Test", "keep"))
	if kept.welcome["userId"] != "bob" {
		t.Fatalf("nil result changed the user: %v", kept.welcome)
	}
}

func TestOnJoinAndOnPublish(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnJoin: func(ctx context.Context, c *herald.ConnInfo, room string) error {
			switch room {
			case "secret":
				return errors.New("members only")
			case "down":
				return &herald.EventError{Code: "backend_unavailable", Message: "try later"}
			}
			return nil
		},
		OnPublish: func(ctx context.Context, c *herald.ConnInfo, room, event string, data json.RawMessage) (json.RawMessage, error) {
			switch event {
			case "deny":
				return nil, &herald.EventError{Code: "forbidden", Message: "no"}
			case "rewrite":
				return json.RawMessage(`{"clean":true}`), nil
			case "garbage":
				return json.RawMessage(`{`), nil
			}
			return nil, nil
		},
	}})
	c := dial(t, ts.URL)
	for _, tc := range []struct{ room, code string }{{"secret", "forbidden"}, {"down", "backend_unavailable"}} {
		m := c.request(map[string]any{"type": "join", "id": tc.room, "room": tc.room})
		if m["type"] != "error" || m["code"] != tc.code {
			t.Fatalf("join %s: %v", tc.room, m)
		}
	}
	c.join("open")
	watcher := dial(t, ts.URL)
	watcher.join("open")
	for _, tc := range []struct{ event, code string }{{"deny", "forbidden"}, {"garbage", "internal"}} {
		m := c.request(map[string]any{"type": "publish", "id": tc.event, "room": "open", "event": tc.event, "data": 1})
		if m["type"] != "error" || m["code"] != tc.code {
			t.Fatalf("publish %s: %v", tc.event, m)
		}
	}
	if m := c.request(map[string]any{"type": "publish", "id": "r", "room": "open", "event": "rewrite", "data": map[string]any{"dirty": true}}); m["type"] != "reply" {
		t.Fatalf("publish rewrite: %v", m)
	}
	ev := watcher.expect("event")
	if d, _ := json.Marshal(ev["data"]); string(d) != `{"clean":true}` {
		t.Fatalf("rewritten data %s", d)
	}
	if m := c.request(map[string]any{"type": "publish", "id": "k", "room": "open", "event": "keep", "data": 7}); m["type"] != "reply" {
		t.Fatalf("publish keep: %v", m)
	}
	if ev := watcher.expect("event"); fmt.Sprint(ev["data"]) != "7" {
		t.Fatalf("kept data %v", ev)
	}
}

func TestOnPresence(t *testing.T) {
	t.Parallel()
	type call struct {
		user, room string
		joined     bool
	}
	calls := make(chan call, 16)
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnPresence: func(ctx context.Context, c *herald.ConnInfo, room string, joined bool) {
			calls <- call{c.UserID, room, joined}
		},
	}})
	a1 := dial(t, ts.URL, withHeader("X-Client-Id", "ann"))
	a2 := dial(t, ts.URL, withHeader("X-Client-Id", "ann"))
	a1.join("r")
	if got := recv(t, calls); got != (call{"ann", "r", true}) {
		t.Fatalf("first join: %+v", got)
	}
	a2.join("r") // second connection of the same user: no call
	if m := a2.request(map[string]any{"type": "leave", "id": 1, "room": "r"}); m["type"] != "reply" {
		t.Fatal(m)
	}
	_ = a1.c.Close(websocket.StatusNormalClosure, "")
	if got := recv(t, calls); got != (call{"ann", "r", false}) {
		t.Fatalf("last leave: %+v", got)
	}
	select {
	case got := <-calls:
		t.Fatalf("unexpected call %+v", got)
	case <-time.After(100 * time.Millisecond):
	}
}
