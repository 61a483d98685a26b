package admin_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/admin"
)

const password = "test-admin-password-1234"

// node is a Herald server with the console, behind httptest.
type node struct {
	srv *herald.Server
	ts  *httptest.Server
}

func startNode(t *testing.T, cfg herald.Config) *node {
	t.Helper()
	if cfg.Admin == nil {
		cfg.Admin = &admin.Config{Password: password}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.NodeID == "" {
		cfg.NodeID = "n1"
	}
	cfg.APIKeys = []string{"api-key-0123456789abcdef"}
	srv, err := herald.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	return &node{srv: srv, ts: ts}
}

// browser is an HTTP client with a cookie jar, as a browser is.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func newBrowser(t *testing.T, n *node) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: n.ts.URL + admin.Prefix, hc: &http.Client{Jar: jar}}
}

// do sends a request and decodes the JSON answer into a map.
func (b *browser) do(method, path string, body any, hdr ...string) (int, map[string]any, *http.Response) {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = strings.NewReader(string(raw))
	}
	req, _ := http.NewRequest(method, b.base+path, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out, resp
}

func (b *browser) login() {
	b.t.Helper()
	code, out, _ := b.do("POST", "api/login", map[string]string{"password": password})
	if code != 200 {
		b.t.Fatalf("login: %d %v", code, out)
	}
	b.csrf = out["csrf"].(string)
}

// post sends a change with the session's CSRF token.
func (b *browser) post(path string, body any) (int, map[string]any) {
	b.t.Helper()
	code, out, _ := b.do("POST", path, body, "X-CSRF-Token", b.csrf)
	return code, out
}

func TestSignIn(t *testing.T) {
	n := startNode(t, herald.Config{})
	b := newBrowser(t, n)

	if code, _, _ := b.do("GET", "api/overview", nil); code != http.StatusUnauthorized {
		t.Fatalf("overview before sign-in: %d, want 401", code)
	}
	code, out, resp := b.do("POST", "api/login", map[string]string{"password": password})
	if code != 200 || out["csrf"] == "" {
		t.Fatalf("login: %d %v", code, out)
	}
	b.csrf = out["csrf"].(string)
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == admin.CookieName {
			ck = c
		}
	}
	switch {
	case ck == nil:
		t.Fatal("no session cookie")
	case !ck.HttpOnly, ck.SameSite != http.SameSiteStrictMode, ck.Path != admin.Prefix:
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/admin/", ck)
	case ck.Secure:
		t.Fatal("cookie Secure over plain HTTP: the browser would not send it back")
	}
	if code, out, _ := b.do("GET", "api/session", nil); code != 200 || out["csrf"] != b.csrf {
		t.Fatalf("session: %d %v", code, out)
	}

	// A change needs the CSRF token, and a same-origin request.
	body := map[string]string{"room": "lobby", "event": "notice"}
	if code, out, _ := b.do("POST", "api/publish", body); code != http.StatusForbidden || out["error"] != "csrf" {
		t.Fatalf("publish without CSRF token: %d %v, want 403 csrf", code, out)
	}
	if code, _, _ := b.do("POST", "api/publish", body, "X-CSRF-Token", "wrong"); code != http.StatusForbidden {
		t.Fatalf("publish with a wrong CSRF token: %d, want 403", code)
	}
	if code, _, _ := b.do("POST", "api/publish", body, "X-CSRF-Token", b.csrf, "Origin", "https://evil.example"); code != http.StatusForbidden {
		t.Fatalf("cross-origin publish: %d, want 403", code)
	}
	if code, out := b.post("api/publish", body); code != 200 || out["msgId"] == "" {
		t.Fatalf("publish with CSRF token: %d %v", code, out)
	}

	if code, _ := b.post("api/logout", nil); code != 200 {
		t.Fatalf("logout: %d", code)
	}
	if code, _, _ := b.do("GET", "api/session", nil); code != http.StatusUnauthorized {
		t.Fatalf("session after sign-out: %d, want 401", code)
	}
}

func TestSignInThrottled(t *testing.T) {
	reg := herald.Config{}
	n := startNode(t, reg)
	b := newBrowser(t, n)
	wrong := map[string]string{"password": "not-the-password"}
	for i := 0; i < 5; i++ {
		if code, _, _ := b.do("POST", "api/login", wrong); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, code)
		}
	}
	code, out, resp := b.do("POST", "api/login", wrong)
	if code != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("6th wrong password: %d %v, want 429 with Retry-After", code, out)
	}
	// While throttled, even the right password is not checked.
	if code, _, _ := b.do("POST", "api/login", map[string]string{"password": password}); code != http.StatusTooManyRequests {
		t.Fatalf("right password while throttled: %d, want 429", code)
	}
	// Scripts share the throttle.
	if code, _, _ := b.do("GET", "api/overview", nil, "Authorization", "Bearer "+password); code != http.StatusTooManyRequests {
		t.Fatalf("script while throttled: %d, want 429", code)
	}
	metrics := scrape(t, n)
	for _, want := range []string{`herald_admin_logins_total{result="bad_credential"} 5`, `herald_admin_logins_total{result="throttled"} 3`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func scrape(t *testing.T, n *node) string {
	t.Helper()
	resp, err := http.Get(n.ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return string(raw)
}

func TestScriptAccess(t *testing.T) {
	n := startNode(t, herald.Config{})
	b := newBrowser(t, n)
	if code, _, _ := b.do("GET", "api/overview", nil, "Authorization", "Bearer wrong-password-000"); code != http.StatusUnauthorized {
		t.Fatalf("wrong bearer: %d, want 401", code)
	}
	code, out, _ := b.do("GET", "api/overview", nil, "Authorization", "Bearer "+password)
	if code != 200 {
		t.Fatalf("overview: %d %v", code, out)
	}
	if nodes := out["nodes"].([]any); len(nodes) != 1 || nodes[0].(map[string]any)["node"] != "n1" {
		t.Fatalf("nodes: %v", out["nodes"])
	}
	// No cookie, no forgery: a script's change needs no CSRF token.
	code, out, _ = b.do("POST", "api/publish", map[string]string{"user": "u1", "event": "hi"}, "Authorization", "Bearer "+password)
	if code != 200 || out["room"] != "user:u1" {
		t.Fatalf("publish: %d %v", code, out)
	}
}

func TestRefusedOverPlainHTTPFromAfar(t *testing.T) {
	tests := []struct {
		name     string
		insecure bool
		remote   string
		tls      bool
		want     int
	}{
		{"loopback", false, "127.0.0.1:5000", false, 200},
		{"remote plain HTTP", false, "203.0.113.9:5000", false, 403},
		{"remote plain HTTP, opted in", true, "203.0.113.9:5000", false, 200},
		{"remote TLS", false, "203.0.113.9:5000", true, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, herald.Config{Admin: &admin.Config{Password: password, AllowInsecure: tt.insecure}})
			req := httptest.NewRequest("POST", admin.Prefix+"api/login", strings.NewReader(`{"password":"`+password+`"}`))
			req.RemoteAddr = tt.remote
			if tt.tls {
				req.TLS = &tls.ConnectionState{}
			}
			rec := httptest.NewRecorder()
			n.srv.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tt.want)
			}
			if tt.tls && !strings.Contains(rec.Header().Get("Set-Cookie"), "Secure") {
				t.Fatalf("cookie over TLS not Secure: %s", rec.Header().Get("Set-Cookie"))
			}
		})
	}
}

func TestPageServed(t *testing.T) {
	n := startNode(t, herald.Config{})
	for _, p := range []string{"", "app.js", "style.css"} {
		resp, err := http.Get(n.ts.URL + admin.Prefix + p)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("%s: %d, CSP %q", p, resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
		}
		// No external assets: the page must work on an offline network.
		if s := string(raw); strings.Contains(s, "http://") || strings.Contains(s, "https://") || strings.Contains(s, "//cdn") {
			t.Errorf("%s refers to an external address", p)
		}
	}
}

// wsClient is a WebSocket client of the node under test.
func connect(t *testing.T, n *node, user string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.ts.URL, "http")+"/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Client-Id": {user}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	readUntil(t, c, "welcome")
	return c
}

// readUntil reads frames until one of type typ and returns it.
func readUntil(t *testing.T, c *websocket.Conn, typ string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, raw, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		var f map[string]any
		_ = json.Unmarshal(raw, &f)
		if f["type"] == typ {
			return f
		}
	}
}

func send(t *testing.T, c *websocket.Conn, frame string) {
	t.Helper()
	if err := c.Write(context.Background(), websocket.MessageText, []byte(frame)); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or 5 s have passed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConsoleOnOneNode(t *testing.T) {
	n := startNode(t, herald.Config{})
	b := newBrowser(t, n)
	b.login()
	conns := func() float64 {
		_, out, _ := b.do("GET", "api/overview", nil)
		return out["totals"].(map[string]any)["connections"].(float64)
	}
	if got := conns(); got != 0 {
		t.Fatalf("connections before any client: %v", got)
	}
	ada := connect(t, n, "ada")
	send(t, ada, `{"type":"join","id":"1","room":"lobby"}`)
	readUntil(t, ada, "reply")
	eventually(t, "the overview to count ada", func() bool { return conns() == 1 })

	// Find her connection by user id; it shows her room.
	_, out, _ := b.do("GET", "api/connections?user=ada", nil)
	list := out["connections"].([]any)
	if len(list) != 1 {
		t.Fatalf("connections of ada: %v", out)
	}
	ci := list[0].(map[string]any)
	if ci["node"] != "n1" || ci["rooms"].([]any)[0] != "lobby" || ci["remoteAddr"] == "" || ci["protocol"] == "" {
		t.Fatalf("connection: %v", ci)
	}
	connID := ci["id"].(string)
	if _, out, _ := b.do("GET", "api/connections?cid="+ci["cid"].(string), nil); len(out["connections"].([]any)) != 1 {
		t.Fatalf("by correlation id: %v", out)
	}

	// The room is found by prefix, with its member and presence.
	_, out, _ = b.do("GET", "api/rooms?prefix=lob", nil)
	if rooms := out["rooms"].([]any); len(rooms) != 1 || rooms[0].(map[string]any)["room"] != "lobby" {
		t.Fatalf("rooms: %v", out)
	}
	_, out, _ = b.do("GET", "api/room?name=lobby", nil)
	if m := out["members"].([]any); len(m) != 1 || m[0].(map[string]any)["user"] != "ada" {
		t.Fatalf("members: %v", out)
	}
	if h := out["history"].(map[string]any); h["enabled"] != false {
		t.Fatalf("history: %v", h)
	}

	// Publish from the console reaches her.
	if code, out := b.post("api/publish", map[string]any{"room": "lobby", "event": "notice", "data": map[string]string{"text": "from admin"}}); code != 200 {
		t.Fatalf("publish: %d %v", code, out)
	}
	if ev := readUntil(t, ada, "event"); ev["event"] != "notice" || ev["data"].(map[string]any)["text"] != "from admin" {
		t.Fatalf("event: %v", ev)
	}

	// Disconnect her connection: she is closed with 4004.
	if code, out := b.post("api/disconnect", map[string]string{"conn": connID}); code != 200 || out["node"] != "n1" {
		t.Fatalf("disconnect: %d %v", code, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, err := ada.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != 4004 {
				t.Fatalf("ada closed with %v, want 4004", err)
			}
			break
		}
	}
	eventually(t, "the overview to see ada go", func() bool { return conns() == 0 })
	if code, _ := b.post("api/disconnect", map[string]string{"conn": connID}); code != http.StatusNotFound {
		t.Fatalf("disconnect of a gone connection: %d, want 404", code)
	}
}

func TestTailThrottled(t *testing.T) {
	n := startNode(t, herald.Config{})
	b := newBrowser(t, n)
	b.login()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.base+"api/tail?room=busy", nil)
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("tail: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("tail ended")
			}
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no tail line in 5 s")
		}
		return ""
	}
	if l := next(); l != "event: open" {
		t.Fatalf("first line %q", l)
	}
	// A burst far over the tail's rate: some are shown, the rest counted.
	const burst = 500
	for i := 0; i < burst; i++ {
		if _, err := n.srv.Publish(context.Background(), "busy", "tick", i); err != nil {
			t.Fatal(err)
		}
	}
	shown, dropped := 0, 0
	for shown+dropped < burst {
		l := next()
		switch {
		case strings.HasPrefix(l, "data: {\"t\""):
			shown++
		case l == "event: dropped":
			var d struct{ Count int }
			_ = json.Unmarshal([]byte(strings.TrimPrefix(next(), "data: ")), &d)
			dropped += d.Count
		}
	}
	if shown == 0 || shown > 64 || dropped == 0 {
		t.Fatalf("shown %d, dropped %d of %d: want a few shown and the rest counted", shown, dropped, burst)
	}
	cancel()
}

func TestRoomHistory(t *testing.T) {
	n := startNode(t, herald.Config{History: []herald.HistoryRule{{Pattern: "chat:*", Size: 100}}})
	b := newBrowser(t, n)
	b.login()
	for i := 1; i <= 30; i++ {
		if _, err := n.srv.Publish(context.Background(), "chat:x", "msg", i); err != nil {
			t.Fatal(err)
		}
	}
	_, out, _ := b.do("GET", "api/room?name=chat:x", nil)
	h := out["history"].(map[string]any)
	msgs, _ := h["messages"].([]any)
	if h["enabled"] != true || len(msgs) != 20 {
		t.Fatalf("history: %v", h)
	}
	first, last := msgs[0].(map[string]any), msgs[19].(map[string]any)
	if first["offset"] != 11.0 || last["offset"] != 30.0 || last["data"] != 30.0 {
		t.Fatalf("history from %v to %v, want offsets 11 to 30", first, last)
	}
	// A room outside the rules says so.
	_, out, _ = b.do("GET", "api/room?name=lobby", nil)
	if h := out["history"].(map[string]any); h["enabled"] != false {
		t.Fatalf("lobby history: %v", h)
	}
}
