package backend_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrt/herald/backend"
)

// answer is the fake backend's logic for the tests below.
func answer(hook string, body map[string]any) any {
	switch hook {
	case "connect":
		if body["token"] == "deny-me" {
			return map[string]any{"allow": false, "status": 401, "code": "bad_session", "message": "log in again"}
		}
		return map[string]any{"allow": true, "user": fmt.Sprint("u-", body["token"]), "rooms": []string{"inbox"}, "data": map[string]any{"plan": "pro"}}
	case "join":
		if body["room"] == "secret" {
			return map[string]any{"allow": false, "message": "members only"}
		}
		return map[string]any{"allow": true}
	case "publish":
		switch body["event"] {
		case "deny":
			return map[string]any{"allow": false, "code": "moderated", "message": "no links"}
		case "rewrite":
			return map[string]any{"allow": true, "data": map[string]any{"clean": true}}
		}
		return map[string]any{"allow": true}
	case "emit":
		if body["event"] == "fail" {
			return map[string]any{"error": map[string]any{"code": "out_of_stock", "message": "sold out"}}
		}
		conn, _ := body["conn"].(map[string]any)
		return map[string]any{"reply": map[string]any{"echo": body["data"], "user": conn["user"], "connData": conn["data"]}}
	}
	return map[string]any{}
}

func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}, "X-Request-ID": {"trace-" + tok}, "Cookie": {"sid=abc"}}
}

func TestHooksAnswered(t *testing.T) {
	t.Parallel()
	fb := newFakeBackend(t, answer)
	n := startNode(t, backend.Config{URL: fb.srv.URL, Hooks: []string{"connect", "join", "publish", "emit"}, Timeout: time.Second})

	// connect: deny with the backend's status and code.
	_, resp, err := dialErr(t, n.url, bearer("deny-me"))
	if err == nil || status(resp) != 401 {
		t.Fatalf("denied connect: err %v status %v", err, status(resp))
	}
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if body["error"] != "bad_session" || body["message"] != "log in again" {
		t.Fatalf("denied connect body %v", body)
	}

	// connect: allow, with user, rooms and data.
	c := dial(t, n.url, bearer("alice"))
	if c.welcome["userId"] != "u-alice" || fmt.Sprint(c.welcome["rooms"]) != "[inbox]" {
		t.Fatalf("welcome %v", c.welcome)
	}
	got := fb.requests("connect")[1]
	if got.body["token"] != "alice" || got.body["tokenSource"] != "header" || got.body["correlationId"] != "trace-alice" ||
		got.header.Get("X-Request-ID") != "trace-alice" || fmt.Sprint(got.body["cookies"]) != "map[sid:abc]" ||
		got.body["remoteAddr"] == "" || got.body["clientIp"] != "127.0.0.1" {
		t.Fatalf("connect request %v / %v", got.body, got.header)
	}
	if h, _ := got.body["headers"].(map[string]any); h["Authorization"] == nil {
		t.Fatalf("connect request without headers: %v", got.body)
	}

	// join: deny and allow.
	if m := c.request(map[string]any{"type": "join", "id": "j1", "room": "secret"}); m["code"] != "forbidden" || m["message"] != "members only" {
		t.Fatalf("denied join: %v", m)
	}
	if m := c.request(map[string]any{"type": "join", "id": "j2", "room": "chat"}); m["type"] != "reply" {
		t.Fatalf("join: %v", m)
	}
	if j := fb.requests("join")[1]; j.body["room"] != "chat" || fmt.Sprint(j.body["conn"].(map[string]any)["data"]) != "map[plan:pro]" {
		t.Fatalf("join request %v", j.body)
	}

	// publish: deny, rewrite, allow.
	watcher := dial(t, n.url, bearer("bob"))
	if m := watcher.request(map[string]any{"type": "join", "id": "w", "room": "chat"}); m["type"] != "reply" {
		t.Fatal(m)
	}
	if m := c.request(map[string]any{"type": "publish", "id": "p1", "room": "chat", "event": "deny", "data": "x"}); m["code"] != "moderated" {
		t.Fatalf("denied publish: %v", m)
	}
	if m := c.request(map[string]any{"type": "publish", "id": "p2", "room": "chat", "event": "rewrite", "data": "http://spam"}); m["type"] != "reply" {
		t.Fatalf("rewritten publish: %v", m)
	}
	if ev := watcher.read(); ev["event"] != "rewrite" || fmt.Sprint(ev["data"]) != "map[clean:true]" {
		t.Fatalf("rewritten event %v", ev)
	}
	if m := c.request(map[string]any{"type": "publish", "id": "p3", "room": "chat", "event": "plain", "data": 5}); m["type"] != "reply" {
		t.Fatalf("publish: %v", m)
	}
	if ev := watcher.read(); ev["event"] != "plain" || fmt.Sprint(ev["data"]) != "5" {
		t.Fatalf("published event %v", ev)
	}

	// emit: the backend's answer is the reply, or the error.
	if m := c.request(map[string]any{"type": "emit", "id": "e1", "event": "buy", "data": map[string]any{"n": 2}}); m["type"] != "reply" ||
		fmt.Sprint(m["data"]) != "map[connData:map[plan:pro] echo:map[n:2] user:u-alice]" {
		t.Fatalf("emit: %v", m)
	}
	if m := c.request(map[string]any{"type": "emit", "id": "e2", "event": "fail"}); m["code"] != "out_of_stock" || m["message"] != "sold out" {
		t.Fatalf("failed emit: %v", m)
	}
	for _, h := range []string{"connect", "join", "publish", "emit"} {
		if v := metric(t, n.reg, "herald_backend_calls_total", map[string]string{"hook": h}); v == 0 {
			t.Errorf("no calls counted for %s", h)
		}
		if v := metric(t, n.reg, "herald_backend_call_duration_seconds", map[string]string{"hook": h}); v == 0 {
			t.Errorf("no latency observed for %s", h)
		}
	}
}

// TestHookFailures: a backend that is slow, fails with 5xx, answers
// garbage or is not there gives the client backend_timeout or
// backend_unavailable, never a hang and never a connection the backend
// did not allow.
func TestHookFailures(t *testing.T) {
	t.Parallel()
	fb := newFakeBackend(t, answer)
	// The breaker stays out of the way here (TestBreaker).
	// A timeout long enough for a loaded machine to answer a 500, or to
	// read 1 MiB of the "huge" answer, within it: only "slow" may run
	// into it. (At 1 s, "huge" got 504 backend_timeout under -race at
	// load 12, 1 of 5 package runs.)
	const timeout = 3 * time.Second
	n := startNode(t, backend.Config{URL: fb.srv.URL, Hooks: []string{"connect", "join", "publish", "emit"},
		Timeout: timeout, BreakerFailures: 1000, Retries: -1})
	dead := deadURL(t)
	nd := startNode(t, backend.Config{URL: dead, Hooks: []string{"join", "publish", "emit"}, Timeout: timeout, BreakerFailures: 1000})
	ndc := startNode(t, backend.Config{URL: dead, Hooks: []string{"connect"}, Timeout: timeout, BreakerFailures: 1000})

	c := dial(t, n.url, bearer("carol"))
	if m := c.request(map[string]any{"type": "join", "id": "j", "room": "chat"}); m["type"] != "reply" {
		t.Fatal(m)
	}
	deadClient := dial(t, nd.url, nil)

	cases := []struct {
		mode   string // fake backend mode; "dead": the node whose backend is gone
		code   string
		status int
	}{
		{"slow", "backend_timeout", 504},
		{"500", "backend_unavailable", 503},
		{"garbage", "backend_unavailable", 503},
		{"huge", "backend_unavailable", 503}, // valid JSON, past the 1 MiB an answer may take
		{"dead", "backend_unavailable", 503},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			url, cl := n.url, c
			if tc.mode == "dead" {
				url, cl = ndc.url, deadClient
			} else {
				fb.mode.Store(tc.mode)
				defer fb.mode.Store("")
			}
			start := time.Now()
			_, resp, err := dialErr(t, url, bearer("dave"))
			if err == nil {
				t.Fatal("connect accepted while the backend failed")
			}
			var body map[string]any
			if resp != nil {
				_ = json.NewDecoder(resp.Body).Decode(&body)
			}
			if status(resp) != tc.status || body["error"] != tc.code {
				t.Fatalf("connect: status %v body %v, want %d %s", status(resp), body, tc.status, tc.code)
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("connect refused without Retry-After")
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("connect refusal took %s", took)
			}
			for _, req := range []map[string]any{
				{"type": "join", "id": "j-" + tc.mode, "room": "other"},
				{"type": "publish", "id": "p-" + tc.mode, "room": "chat", "event": "x", "data": 1},
				{"type": "emit", "id": "e-" + tc.mode, "event": "x"},
			} {
				if tc.mode == "dead" && req["type"] == "publish" {
					req["room"] = "user:" + fmt.Sprint(cl.welcome["userId"]) // the dead node's client joined nothing
				}
				if m := cl.request(req); m["type"] != "error" || m["code"] != tc.code {
					t.Errorf("%s: %v, want %s", req["type"], m, tc.code)
				}
			}
		})
	}
	if v := metric(t, n.reg, "herald_backend_errors_total", map[string]string{"hook": "join", "kind": "timeout"}); v != 1 {
		t.Errorf("join timeouts counted: %v", v)
	}
	if v := metric(t, n.reg, "herald_backend_errors_total", map[string]string{"hook": "emit", "kind": "garbage"}); v != 2 {
		t.Errorf("emit garbage (HTML, then an answer over the bound) counted: %v, want 2", v)
	}
	if v := metric(t, n.reg, "herald_backend_errors_total", map[string]string{"hook": "publish", "kind": "status"}); v != 1 {
		t.Errorf("publish 5xx counted: %v", v)
	}
	// Still usable once the backend is back.
	if m := c.request(map[string]any{"type": "emit", "id": "after", "event": "x"}); m["type"] != "reply" {
		t.Fatalf("emit after recovery: %v", m)
	}
}

// deadURL is the URL of a port nothing listens on: port 1 (tcpmux),
// which no test binds. A port found free (listen on :0, close) could be
// bound by another test's server meanwhile, which would then answer.
func deadURL(testing.TB) string { return "http://127.0.0.1:1" }

// TestBreaker: repeated failures open the breaker, which fails calls at
// once without reaching the backend; after the cooldown one probe goes
// through and, the backend being back, closes it.
func TestBreaker(t *testing.T) {
	t.Parallel()
	fb := newFakeBackend(t, answer)
	// The cooldown is long enough for the calls below to find the breaker
	// still open on a loaded machine.
	n := startNode(t, backend.Config{URL: fb.srv.URL, Hooks: []string{"emit"}, BreakerFailures: 3, BreakerCooldown: 2 * time.Second, Retries: -1})
	c := dial(t, n.url, nil)
	fb.mode.Store("500")
	for i := range 3 {
		if m := c.request(map[string]any{"type": "emit", "id": fmt.Sprint("f", i), "event": "x"}); m["code"] != "backend_unavailable" {
			t.Fatal(m)
		}
	}
	if len(fb.requests("emit")) != 3 {
		t.Fatalf("backend saw %d calls", len(fb.requests("emit")))
	}
	if v := metric(t, n.reg, "herald_backend_breaker_open", nil); v != 1 {
		t.Fatalf("breaker gauge %v", v)
	}
	fb.mode.Store("")
	for i := range 5 {
		if m := c.request(map[string]any{"type": "emit", "id": fmt.Sprint("o", i), "event": "x"}); m["code"] != "backend_unavailable" {
			t.Fatalf("call while open: %v", m)
		}
	}
	if len(fb.requests("emit")) != 3 {
		t.Fatalf("backend reached while the breaker was open: %d calls", len(fb.requests("emit")))
	}
	if v := metric(t, n.reg, "herald_backend_errors_total", map[string]string{"hook": "emit", "kind": "breaker_open"}); v != 5 {
		t.Fatalf("breaker refusals counted: %v", v)
	}
	i := 0
	waitFor(t, 10*time.Second, "the probe after the cooldown", func() bool {
		i++
		m := c.request(map[string]any{"type": "emit", "id": fmt.Sprint("p", i), "event": "x"})
		if m["type"] != "reply" && m["code"] != "backend_unavailable" {
			t.Fatalf("while waiting for the probe: %v", m)
		}
		return m["type"] == "reply"
	})
	if len(fb.requests("emit")) != 4 {
		t.Fatalf("backend reached %d times: the probe should be the only call after the failures", len(fb.requests("emit")))
	}
	if v := metric(t, n.reg, "herald_backend_breaker_open", nil); v != 0 {
		t.Fatalf("breaker still open: %v", v)
	}
	if m := c.request(map[string]any{"type": "emit", "id": "closed", "event": "x"}); m["type"] != "reply" {
		t.Fatalf("after close: %v", m)
	}
}

// TestBreakerDeadBackend: a backend that is gone (connection refused)
// opens the breaker; once it listens again, the probe after the cooldown
// closes it.
func TestBreakerDeadBackend(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	fb := newFakeBackend(t, answer) // its handler, served on addr below
	serve := func(ln net.Listener) *http.Server {
		srv := &http.Server{Handler: http.HandlerFunc(fb.serve)}
		go func() { _ = srv.Serve(ln) }()
		return srv
	}
	srv := serve(ln)
	n := startNode(t, backend.Config{URL: "http://" + addr, Hooks: []string{"emit"}, BreakerFailures: 2, BreakerCooldown: 2 * time.Second, Retries: -1})
	c := dial(t, n.url, nil)
	if m := c.request(map[string]any{"type": "emit", "id": "up", "event": "x"}); m["type"] != "reply" {
		t.Fatal(m)
	}
	_ = srv.Close() // the backend dies
	for i := range 2 {
		if m := c.request(map[string]any{"type": "emit", "id": fmt.Sprint("d", i), "event": "x"}); m["code"] != "backend_unavailable" {
			t.Fatalf("emit to a dead backend: %v", m)
		}
	}
	if v := metric(t, n.reg, "herald_backend_breaker_open", nil); v != 1 {
		t.Fatalf("breaker gauge %v after two refused connections", v)
	}
	if m := c.request(map[string]any{"type": "emit", "id": "open", "event": "x"}); m["code"] != "backend_unavailable" {
		t.Fatal(m)
	}
	if v := metric(t, n.reg, "herald_backend_errors_total", map[string]string{"hook": "emit", "kind": "breaker_open"}); v != 1 {
		t.Fatalf("breaker refusals %v", v)
	}
	ln, err = net.Listen("tcp", addr) // the backend comes back on its address
	if err != nil {
		t.Skipf("address %s taken meanwhile: %v", addr, err)
	}
	srv = serve(ln)
	defer srv.Close()
	i := 0
	waitFor(t, 10*time.Second, "the breaker to close", func() bool {
		i++
		return c.request(map[string]any{"type": "emit", "id": fmt.Sprint("p", i), "event": "x"})["type"] == "reply"
	})
	if v := metric(t, n.reg, "herald_backend_breaker_open", nil); v != 0 {
		t.Fatalf("breaker gauge %v after the probe", v)
	}
}

// TestRetries: connect and join (questions) are asked again after a 503;
// publish and emit are not, since the backend may have acted on them.
func TestRetries(t *testing.T) {
	t.Parallel()
	fb := newFakeBackend(t, answer)
	n := startNode(t, backend.Config{URL: fb.srv.URL, Hooks: []string{"connect", "join", "publish", "emit"}, Retries: 1, BreakerFailures: 1000})
	c := dial(t, n.url, bearer("erin"))
	fb.mode.Store("503")
	_, _, err := dialErr(t, n.url, bearer("frank"))
	if err == nil {
		t.Fatal("connect accepted")
	}
	c.request(map[string]any{"type": "join", "id": "j", "room": "r"})
	c.request(map[string]any{"type": "publish", "id": "p", "room": "inbox", "event": "x"})
	c.request(map[string]any{"type": "emit", "id": "e", "event": "x"})
	for hook, want := range map[string]int{"connect": 3, "join": 2, "publish": 1, "emit": 1} {
		if got := len(fb.requests(hook)); got != want {
			t.Errorf("%s: backend saw %d requests, want %d", hook, got, want)
		}
	}
}

// TestConcurrencyBound: no more calls are in flight than MaxConcurrent;
// one that finds no slot within its timeout fails with backend_timeout.
func TestConcurrencyBound(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var inFlight, most int32
	var mu = make(chan struct{}, 1)
	fb := newFakeBackend(t, func(hook string, body map[string]any) any {
		mu <- struct{}{}
		inFlight++
		most = max(most, inFlight)
		<-mu
		<-release
		mu <- struct{}{}
		inFlight--
		<-mu
		return map[string]any{"reply": "ok"}
	})
	n := startNode(t, backend.Config{URL: fb.srv.URL, Hooks: []string{"emit", "join"}, MaxConcurrent: 2, Timeout: 10 * time.Second,
		HookTimeouts: map[string]time.Duration{"join": 200 * time.Millisecond}, BreakerFailures: 1000})
	clients := make([]*client, 3)
	for i := range clients {
		clients[i] = dial(t, n.url, nil)
	}
	results := make(chan map[string]any, 3)
	for i, c := range clients[:2] {
		go func() { results <- c.request(map[string]any{"type": "emit", "id": fmt.Sprint(i), "event": "x"}) }()
	}
	waitFor(t, 5*time.Second, "two calls in flight", func() bool { return len(fb.requests("emit")) == 2 })
	if m := clients[2].request(map[string]any{"type": "join", "id": "third", "room": "r"}); m["code"] != "backend_timeout" {
		t.Fatalf("third call: %v", m)
	}
	close(release)
	for range 2 {
		if m := <-results; m["type"] != "reply" {
			t.Fatalf("held call: %v", m)
		}
	}
	if v := metric(t, n.reg, "herald_backend_errors_total", map[string]string{"hook": "join", "kind": "overloaded"}); v != 1 {
		t.Errorf("overloaded calls counted: %v", v)
	}
	if most != 2 || len(fb.requests("emit")) != 2 || len(fb.requests("join")) != 0 {
		t.Fatalf("at most %d in flight, %d reached the backend", most, len(fb.requests("emit")))
	}
}

// TestH2C: with H2C the proxy speaks HTTP/2 without TLS.
func TestH2C(t *testing.T) {
	t.Parallel()
	fb := newFakeBackend(t, answer)
	n := startNode(t, backend.Config{URL: fb.srv.URL, Hooks: []string{"emit"}, H2C: true})
	c := dial(t, n.url, nil)
	for i := range 3 {
		if m := c.request(map[string]any{"type": "emit", "id": fmt.Sprint(i), "event": "x"}); m["type"] != "reply" {
			t.Fatal(m)
		}
	}
	for _, r := range fb.requests("emit") {
		if r.proto != 2 {
			t.Fatalf("request over HTTP/%d", r.proto)
		}
	}
	n1 := startNode(t, backend.Config{URL: fb.srv.URL, Hooks: []string{"emit"}})
	c1 := dial(t, n1.url, nil)
	c1.request(map[string]any{"type": "emit", "id": "h1", "event": "x"})
	if r := fb.requests("emit"); r[len(r)-1].proto != 1 {
		t.Fatalf("default request over HTTP/%d", r[len(r)-1].proto)
	}
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	now := time.Unix(1700000000, 0)
	body := []byte(`{"a":1}`)
	sig := backend.Sign(testSecret, body, now)
	if sig != "t=1700000000,v1="+sig[len("t=1700000000,v1="):] || len(sig) != len("t=1700000000,v1=")+64 {
		t.Fatalf("signature %q", sig)
	}
	tests := []struct {
		name string
		body []byte
		sig  string
		at   time.Time
		want error
	}{
		{"good", body, sig, now, nil},
		{"other body", []byte(`{"a":2}`), sig, now, backend.ErrBadSignature},
		{"other secret", body, backend.Sign([]byte("x"), body, now), now, backend.ErrBadSignature},
		{"stale", body, sig, now.Add(10 * time.Minute), backend.ErrStale},
		{"garbage", body, "v1=zz", now, backend.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := backend.Verify(testSecret, tc.body, tc.sig, tc.at, 5*time.Minute); err != tc.want {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []backend.Config{
		{Hooks: []string{"emit"}},
		{URL: "ftp://x", Hooks: []string{"emit"}},
		{URL: "http://x"},
		{URL: "http://x", Hooks: []string{"subscribe"}},
		{URL: "http://x", Hooks: []string{"emit"}, HookTimeouts: map[string]time.Duration{"emit": -1}},
	} {
		if _, err := backend.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := backend.ParseHooks("connect, emit"); err != nil {
		t.Error(err)
	}
	if _, err := backend.ParseHooks("connect,nope"); err == nil {
		t.Error("ParseHooks accepted nope")
	}
}
