package herald_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
)

// dialStatus attempts an upgrade and returns the HTTP status of a refusal
// (101 when it succeeded).
func dialStatus(t *testing.T, url string, hdr http.Header) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	return resp.StatusCode
}

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{MaxConnsPerUser: 2, MaxConnsPerIP: 3})
	alice := http.Header{"X-Client-Id": {"alice"}}
	for i := 0; i < 2; i++ {
		if code := dialStatus(t, ts.URL, alice); code != 101 {
			t.Fatalf("alice #%d: %d", i+1, code)
		}
	}
	if code := dialStatus(t, ts.URL, alice); code != http.StatusTooManyRequests {
		t.Fatalf("alice #3: %d, want 429", code)
	}
	if code := dialStatus(t, ts.URL, http.Header{"X-Client-Id": {"bob"}}); code != 101 {
		t.Fatalf("bob: %d", code)
	}
	if code := dialStatus(t, ts.URL, http.Header{"X-Client-Id": {"carol"}}); code != http.StatusTooManyRequests {
		t.Fatalf("4th connection from one IP: %d, want 429", code)
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="conns_per_user"}`); v != 1 {
		t.Errorf("conns_per_user rejections = %v", v)
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="conns_per_ip"}`); v != 1 {
		t.Errorf("conns_per_ip rejections = %v", v)
	}
}

func TestUpgradeRateLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{UpgradeRatePerIP: 0.5, UpgradeBurstPerIP: 3})
	var refused int
	for i := 0; i < 5; i++ {
		if dialStatus(t, ts.URL, nil) == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused != 2 {
		t.Fatalf("%d of 5 rapid upgrades refused, want 2 (burst 3)", refused)
	}
}

func TestMessageRateLimit(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{MessageRate: 1, MessageBurst: 5})
	c := dial(t, ts.URL)
	for i := 0; i < 8; i++ {
		c.send(`{"type":"join","room":"r"}`)
	}
	limited := 0
	for i := 0; i < 3; i++ {
		if m := c.expect("error"); m["code"] == "rate_limited" {
			limited++
		}
	}
	if limited != 3 {
		t.Fatalf("%d rate_limited errors, want 3", limited)
	}
	// Keep hammering: a whole burst of refusals closes with 1008.
	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"r"}`))
		cancel()
		if err != nil {
			break // already closed by the server
		}
	}
	code, reason := c.closeStatus(5 * time.Second)
	if code != websocket.StatusPolicyViolation || !strings.Contains(reason, "rate") {
		t.Fatalf("close %d %q, want 1008 rate limit", code, reason)
	}
	// Frames that arrive during the close handshake are refused too, but
	// the abuse is logged once.
	if warned := logCount(t, ts, "closing: sustained message rate abuse"); warned != 1 {
		t.Errorf("abuse logged %d times, want once", warned)
	}
}

func TestOriginCheck(t *testing.T) {
	t.Parallel()
	open := startServer(t, herald.Config{})
	strict := startServer(t, herald.Config{AllowedOrigins: []string{"https://app.example.com", "*.trusted.test"}})
	tests := []struct {
		name   string
		ts     *testServer
		origin string
		want   int
	}{
		{"no origin (non-browser)", strict, "", 101},
		{"listed origin", strict, "https://app.example.com", 101},
		{"host pattern", strict, "https://eu.trusted.test", 101},
		{"other origin", strict, "https://evil.example", http.StatusForbidden},
		{"same origin", strict, "http://" + strings.TrimPrefix(strict.HTTP.URL, "http://"), 101},
		{"scheme differs from listed", strict, "http://app.example.com", http.StatusForbidden},
		{"garbage origin", strict, "::::", http.StatusForbidden},
		{"cross origin without cookie credentials, empty list", open, "https://elsewhere.example", 101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			if got := dialStatus(t, tt.ts.URL, hdr); got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRevokeAPIClosesAndRefuses(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	eve := dial(t, ts.URL, withHeader("X-Client-Id", "eve"))
	frank := dial(t, ts.URL, withHeader("X-Client-Id", "frank"))

	req, _ := http.NewRequest("POST", ts.HTTP.URL+"/api/v1/revoke", strings.NewReader(`{"sub":"eve","reason":"account locked"}`))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	start := time.Now()
	code, reason := eve.closeStatus(5 * time.Second)
	if code != 4003 || reason != "account locked" {
		t.Fatalf("eve closed with %d %q, want 4003", code, reason)
	}
	t.Logf("closed %s after the revoke", time.Since(start))
	frank.join("unaffected")
	if got := dialStatus(t, ts.URL, http.Header{"X-Client-Id": {"eve"}}); got != http.StatusUnauthorized {
		t.Fatalf("revoked user reconnect: %d, want 401", got)
	}
}
