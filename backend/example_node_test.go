package backend_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/backend"
)

// startNodeBackend runs examples/backend/server.js and returns its URL.
func startNodeBackend(t *testing.T) string {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node not found: install Node.js 20 (apt-get install nodejs)")
		}
		t.Skip("node not found: install Node.js 20 to run the example backend")
	}
	script, _ := filepath.Abs("../examples/backend/server.js")
	cmd := exec.Command(nodeBin, script, "0")
	cmd.Env = append(os.Environ(), "HERALD_BACKEND_SECRET="+string(testSecret))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case l := <-lines:
		port, ok := strings.CutPrefix(l, "listening ")
		if !ok {
			t.Fatalf("example backend said %q", l)
		}
		return "http://127.0.0.1:" + port
	case <-time.After(20 * time.Second):
		t.Fatal("example backend did not start")
	}
	return ""
}

// TestNodeExampleBackend runs every hook against the example backend in
// examples/backend, a Node script that verifies the signatures.
func TestNodeExampleBackend(t *testing.T) {
	url := startNodeBackend(t)
	n := startNode(t, backend.Config{URL: url, Hooks: backend.AllHooks, Timeout: 5 * time.Second})

	_, resp, err := dialErr(t, n.url, bearer("deny"))
	if err == nil || status(resp) != http.StatusUnauthorized {
		t.Fatalf("denied connect: %v %v", err, status(resp))
	}
	c := dial(t, n.url, bearer("ada"))
	if c.welcome["userId"] != "ada" || fmt.Sprint(c.welcome["rooms"]) != "[lobby]" {
		t.Fatalf("welcome %v", c.welcome)
	}
	if m := c.request(map[string]any{"type": "join", "id": "j1", "room": "private:bob"}); m["code"] != "forbidden" {
		t.Fatalf("join other's private room: %v", m)
	}
	if m := c.request(map[string]any{"type": "join", "id": "j2", "room": "private:ada"}); m["type"] != "reply" {
		t.Fatalf("join own private room: %v", m)
	}
	if m := c.request(map[string]any{"type": "publish", "id": "p1", "room": "lobby", "event": "spam"}); m["code"] != "moderated" {
		t.Fatalf("spam: %v", m)
	}
	if m := c.request(map[string]any{"type": "publish", "id": "p2", "room": "lobby", "event": "msg", "data": map[string]any{"text": "see https://x.example now"}}); m["type"] != "reply" {
		t.Fatalf("publish: %v", m)
	}
	for {
		ev := c.read()
		if ev["type"] == "event" {
			if d := fmt.Sprint(ev["data"]); d != "map[text:see [link removed] now]" {
				t.Fatalf("rewritten data %s", d)
			}
			break
		}
	}
	if m := c.request(map[string]any{"type": "emit", "id": "e1", "event": "add", "data": map[string]any{"a": 2, "b": 3}}); fmt.Sprint(m["data"]) != "map[by:ada sum:5]" {
		t.Fatalf("emit: %v", m)
	}
	if m := c.request(map[string]any{"type": "emit", "id": "e2", "event": "nope"}); m["code"] != "unknown_event" {
		t.Fatalf("emit unknown: %v", m)
	}
	connID := fmt.Sprint(c.welcome["connectionId"])
	_ = c.c.Close(websocket.StatusNormalClosure, "done")
	var got []backend.Event
	waitFor(t, 15*time.Second, "the disconnected webhook", func() bool {
		got = nil
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url+"/events", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var all []backend.Event
		_ = json.NewDecoder(resp.Body).Decode(&all)
		for _, e := range all {
			if e.Conn.ConnID == connID {
				got = append(got, e)
			}
		}
		return len(got) > 0 && got[len(got)-1].Type == "disconnected"
	})
	if s := summary(got); s != "[connected presence:join:lobby presence:join:private:ada presence:leave:lobby presence:leave:private:ada disconnected:1000]" &&
		s != "[connected presence:join:lobby presence:join:private:ada presence:leave:private:ada presence:leave:lobby disconnected:1000]" {
		t.Fatalf("webhooks %s", s)
	}
}
