package herald_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldrt/herald"
)

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	if code, body, _ := get(t, ts.HTTP.URL+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz: %d %s", code, body)
	}
	if code, body, _ := get(t, ts.HTTP.URL+"/readyz"); code != 200 || !strings.Contains(body, `"broker":"up"`) {
		t.Fatalf("/readyz: %d %s", code, body)
	}
	c := dial(t, ts.URL)
	c.join("m")
	code, body, _ := get(t, ts.HTTP.URL+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, name := range []string{
		"herald_connections 1", "herald_connections_opened_total 1", `herald_messages_received_total{type="join"} 1`,
		`herald_messages_sent_total{type="welcome"} 1`, "herald_received_bytes_total", "herald_sent_bytes_total",
		"herald_heartbeat_terminations_total 0", "herald_slow_consumer_disconnects_total 0",
		"herald_fanout_duration_seconds_bucket", "go_goroutines", "process_cpu_seconds_total",
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
}

func TestMetricsPassPromlint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	ts := startServer(t, herald.Config{Registry: reg})
	c := dial(t, ts.URL)
	c.join("lint")
	c.send(`{"type":"nope"}`)
	c.expect("error")
	if _, err := ts.Publish(context.Background(), "lint", "e", 1); err != nil {
		t.Fatal(err)
	}
	c.expect("event")
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestAPIPublish(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{APIKeys: []string{"old-key-0123456789", testAPIKey}})
	c := dial(t, ts.URL)
	c.join("news")

	tests := []struct {
		name     string
		key      string
		body     string
		wantCode int
		wantErr  string
	}{
		{"no key", "", `{"room":"news","event":"e"}`, 401, "unauthorized"},
		{"wrong key", "nope-nope-nope-nope", `{"room":"news","event":"e"}`, 401, "unauthorized"},
		{"not JSON", testAPIKey, `{"room":`, 400, "bad_request"},
		{"empty body", testAPIKey, ``, 400, "bad_request"},
		{"no target", testAPIKey, `{"event":"e"}`, 400, "bad_request"},
		{"room and user", testAPIKey, `{"room":"a","user":"b","event":"e"}`, 400, "bad_request"},
		{"no event", testAPIKey, `{"room":"news"}`, 400, "bad_request"},
		{"unknown field", testAPIKey, `{"room":"news","event":"e","colour":1}`, 400, "bad_request"},
		{"data not JSON", testAPIKey, `{"room":"news","event":"e","data":nope}`, 400, "bad_request"},
		{"room not UTF-8", testAPIKey, "{\"room\":\"news\xff\",\"event\":\"e\"}", 400, "bad_request"},
		{"room escapes a lone surrogate", testAPIKey, `{"room":"news\udc00","event":"e"}`, 400, "bad_request"},
		{"user not UTF-8", testAPIKey, "{\"user\":\"bob\xc3\",\"event\":\"e\"}", 400, "bad_request"},
		{"user too long", testAPIKey, `{"user":"` + strings.Repeat("u", 300) + `","event":"e"}`, 400, "bad_request"},
		{"ok", testAPIKey, `{"room":"news","event":"headline","data":{"title":"Herald ships"}}`, 200, ""},
		{"rotated old key still works", "old-key-0123456789", `{"room":"news","event":"headline","data":2}`, 200, ""},
	}
	for _, tt := range tests {
		code, body := apiPublish(t, ts, tt.key, tt.body)
		if code != tt.wantCode {
			t.Errorf("%s: status %d, want %d (%v)", tt.name, code, tt.wantCode, body)
		}
		if tt.wantErr != "" && (body["error"] != tt.wantErr || str(body["message"]) == "") {
			t.Errorf("%s: body %v, want error %q with a message", tt.name, body, tt.wantErr)
		}
		if tt.wantCode == 200 && str(body["msgId"]) == "" {
			t.Errorf("%s: no msgId: %v", tt.name, body)
		}
	}
	m := c.expect("event")
	if m["event"] != "headline" || fmt.Sprint(m["data"]) != "map[title:Herald ships]" {
		t.Fatalf("got %v", m)
	}
	c.expect("event")
	// Wrong method on the endpoint.
	if code, _, _ := get(t, ts.HTTP.URL+"/api/v1/publish"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET publish: %d", code)
	}
}

func TestGeneratedAPIKeyLoggedOnce(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	ts := startServer(t, herald.Config{APIKeys: []string{}, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	var keys []string
	for _, l := range logs.lines(t) {
		if k, ok := l["api_key"].(string); ok {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 || keys[0] != ts.APIKey() {
		t.Fatalf("generated key logged %d times (%v), want once", len(keys), keys)
	}
	// The library reads Config.APIKeys, not the binary's HERALD_API_KEY:
	// the line must not send a library user to a variable nothing reads.
	for _, l := range logs.lines(t) {
		if _, ok := l["api_key"]; ok {
			if msg := str(l["msg"]); !strings.Contains(msg, "Config.APIKeys") || strings.Contains(msg, "HERALD_") {
				t.Errorf("generated-key line %q should point to Config.APIKeys and no HERALD_ variable", msg)
			}
		}
	}
	if code, _ := apiPublish(t, ts, keys[0], `{"room":"r","event":"e"}`); code != 200 {
		t.Fatalf("generated key refused: %d", code)
	}
}

func TestCorrelationIDOnEveryLogLine(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{Hooks: herald.Hooks{
		OnEvent: func(ctx context.Context, c *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
			return "pong", nil
		},
	}})
	c := dial(t, ts.URL, withHeader("X-Request-ID", "trace-42"))
	other := dial(t, ts.URL, withHeader("X-Request-ID", "trace-43"))
	c.join("logs")
	c.request(map[string]any{"type": "emit", "id": 1, "event": "ping"})
	c.request(map[string]any{"type": "leave", "id": 2, "room": "nope"}) // an error
	connID := c.welcome["connectionId"]
	_ = c.c.Close(websocket.StatusNormalClosure, "done")
	waitFor(t, 3*time.Second, "disconnect logged", func() bool {
		for _, l := range ts.Logs.lines(t) {
			if l["msg"] == "disconnected" && l["conn_id"] == connID {
				return true
			}
		}
		return false
	})
	_ = other

	seen := map[string]bool{}
	for _, l := range ts.Logs.lines(t) {
		if l["conn_id"] != connID {
			continue
		}
		if l["correlation_id"] != "trace-42" {
			t.Errorf("log line about conn %v without its correlation id: %v", connID, l)
		}
		seen[fmt.Sprint(l["msg"])] = true
	}
	for _, want := range []string{"connected", "message handled", "hook called", "request failed", "disconnected"} {
		if !seen[want] {
			t.Errorf("no %q log line for the connection (saw %v)", want, seen)
		}
	}
	for _, l := range ts.Logs.lines(t) {
		if l["msg"] == "disconnected" && l["conn_id"] == connID && (l["code"] != float64(1000) || l["reason"] != "done") {
			t.Errorf("disconnect line lacks code/reason: %v", l)
		}
	}
}

func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	// 6 s, not 2: the paced closes (from 3 s to 4.8 s) leave the last
	// stayer 1.2 s to answer its close before the terminations at 5.4 s
	// (a 2 s drain left it 0.33 s, which a loaded machine missed).
	const drain = 6 * time.Second
	ts := startServer(t, herald.Config{DrainTimeout: drain, DrainRetryAfter: time.Second})
	leaver := dial(t, ts.URL) // leaves as soon as told
	stayers := []*wsClient{dial(t, ts.URL), dial(t, ts.URL), dial(t, ts.URL)}
	zombie := dialNoRead(t, ts.URL) // never reads: must be terminated at the end
	waitFor(t, 30*time.Second, "all connected", func() bool { return ts.Connections() == 5 })

	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- ts.Shutdown(context.Background()) }()

	m := leaver.expect("server_shutdown")
	if ms, ok := m["retryAfterMs"].(float64); !ok || ms < 500 || ms > 1500 {
		t.Errorf("retryAfterMs = %v, want 500..1500", m["retryAfterMs"])
	}
	_ = leaver.c.Close(websocket.StatusNormalClosure, "moving on")

	// Readiness fails and new upgrades are refused with Retry-After at once.
	if code, body, _ := get(t, ts.HTTP.URL+"/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("/readyz during drain: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, resp, err := websocket.Dial(ctx, ts.URL, nil)
	cancel()
	if err == nil || resp == nil {
		t.Errorf("upgrade during drain: err %v, resp %v; want a 503", err, resp)
	} else if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "draining") {
		t.Errorf("upgrade during drain: %d %q Retry-After=%q", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	if code, _, _ := get(t, ts.HTTP.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz must stay 200 while draining: %d", code)
	}

	var closedAt []time.Duration
	for _, s := range stayers {
		s.expect("server_shutdown")
		code, reason := s.closeStatus(30 * time.Second) // a hang only
		if code != websocket.StatusGoingAway || reason != "server shutdown" {
			t.Errorf("stayer closed with %d %q, want 1001", code, reason)
		}
		closedAt = append(closedAt, time.Since(start))
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	took := time.Since(start)
	if took > 2*drain {
		t.Errorf("Shutdown took %s with a %s drain timeout", took, drain)
	}
	// Stayers are closed from half the drain on, not all at once.
	for _, at := range closedAt {
		if at < drain/2-100*time.Millisecond {
			t.Errorf("a client was closed %s into a %s drain; closes start at %s", at, drain, drain/2)
		}
	}
	if ts.Connections() != 0 {
		t.Errorf("%d connections left", ts.Connections())
	}
	// Every close is the drain's, including the leaver's own close after
	// it was told to go: the metric operators watch during a rollout.
	waitFor(t, 30*time.Second, "closes counted as server_shutdown", func() bool {
		return metricValue(t, ts, `herald_connections_closed_total{reason="server_shutdown"}`) == 5
	})
	if n := metricValue(t, ts, `herald_connections_closed_total{reason="client_close"}`); n != 0 {
		t.Errorf("%v drain closes counted as client_close", n)
	}
	zombie.startReader()
	if _, err := ts.Publish(context.Background(), "x", "y", nil); err == nil {
		t.Errorf("Publish after Shutdown succeeded")
	}
}

// TestAPIRefusalsAreConsistent: every API endpoint answers a body over
// 1 MiB with 413 and a wrong method with 405 and Allow.
// TestAPIErrorsAreNotHTMLEscaped: API bodies are read by programs and
// people, never embedded in HTML: "Bearer <key>", not "Bearer \u003ckey\u003e".
func TestAPIErrorsAreNotHTMLEscaped(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	req, _ := http.NewRequest("POST", ts.HTTP.URL+"/api/v1/publish", strings.NewReader(`{"room":"r","event":"e"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "Bearer <key>") || strings.Contains(string(body), `\u00`) {
		t.Fatalf("401 body %d %s: want the message with <key> as is", resp.StatusCode, body)
	}
	// A publish's data keeps its characters too.
	c := dial(t, ts.URL)
	c.join("r")
	if code, _ := apiPublish(t, ts, testAPIKey, `{"room":"r","event":"e","data":{"html":"<b>&</b>"}}`); code != 200 {
		t.Fatalf("publish: %d", code)
	}
	if _, err := ts.Publish(context.Background(), "r", "e", map[string]string{"html": "<i>&</i>"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<b>&</b>`, `<i>&</i>`} {
		select {
		case b := <-c.frames:
			if !strings.Contains(string(b), want) {
				t.Errorf("event frame %s lacks %s", b, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no event carrying %s", want)
		}
	}
}

func TestAPIRefusalsAreConsistent(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	huge := `{"room":"news","event":"e","data":"` + strings.Repeat("x", 1<<20) + `"}`
	call := func(method, path, body string) (int, http.Header, map[string]any) {
		t.Helper()
		return apiCall(t, ts, method, path, testAPIKey, body)
	}
	for _, path := range []string{"/api/v1/publish", "/api/v1/revoke"} {
		if code, _, m := call("POST", path, huge); code != http.StatusRequestEntityTooLarge || m["error"] != "too_large" {
			t.Errorf("POST %s with a 1 MiB body: %d %v, want 413 too_large", path, code, m)
		}
	}
	for _, tt := range []struct{ method, path, allow string }{
		{"GET", "/api/v1/publish", "POST"},
		{"DELETE", "/api/v1/revoke", "POST"},
		{"POST", "/api/v1/rooms/news/presence", "GET"},
	} {
		code, h, m := call(tt.method, tt.path, "")
		if code != http.StatusMethodNotAllowed || h.Get("Allow") != tt.allow || m["error"] != "method_not_allowed" {
			t.Errorf("%s %s: %d Allow %q %v, want 405 Allow %s", tt.method, tt.path, code, h.Get("Allow"), m, tt.allow)
		}
	}
}

// TestHandshakeRefusalsComeFirstAsJSON: a request that is not a WebSocket
// upgrade is told so before authentication and limits are consulted
// (here an invalid client id that would otherwise get 400 bad_client_id),
// in the same JSON shape as every other refusal.
func TestHandshakeRefusalsComeFirstAsJSON(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	wsURL := ts.HTTP.URL + "/ws"
	upgrade := http.Header{
		"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
		"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="},
		"X-Client-Id": {"bad id!"},
	}
	tests := []struct {
		name       string
		method     string
		edit       func(http.Header)
		status     int
		code       string
		header, hv string
	}{
		{"POST", "POST", func(http.Header) {}, 405, "method_not_allowed", "Allow", "GET"},
		{"plain GET", "GET", func(h http.Header) { h.Del("Upgrade") }, 400, "bad_handshake", "", ""},
		{"bad key", "GET", func(h http.Header) { h.Set("Sec-Websocket-Key", "short") }, 400, "bad_handshake", "", ""},
		{"version 8", "GET", func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, 426, "unsupported_version", "Sec-Websocket-Version", "13"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, wsURL, nil)
		req.Header = upgrade.Clone()
		tt.edit(req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tt.status || m["error"] != tt.code || str(m["message"]) == "" {
			t.Errorf("%s: %d %v (%v), want %d %s", tt.name, resp.StatusCode, m, err, tt.status, tt.code)
		}
		if tt.header != "" && resp.Header.Get(tt.header) != tt.hv {
			t.Errorf("%s: %s %q, want %q", tt.name, tt.header, resp.Header.Get(tt.header), tt.hv)
		}
	}
	if got := metricValue(t, ts, `herald_upgrades_rejected_total{reason="bad_handshake"}`); got != float64(len(tests)) {
		t.Errorf("bad_handshake refusals counted %v, want %d", got, len(tests))
	}
}
