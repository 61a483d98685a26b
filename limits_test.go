package herald_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// TestClientIP checks which address per-IP limits count: the TCP peer
// unless it is a trusted proxy, then X-Forwarded-For from the right.
func TestClientIP(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.DiscardHandler)
	none := newQuietServer(t, herald.Config{Logger: quiet})
	proxies := newQuietServer(t, herald.Config{Logger: quiet, TrustedProxies: []string{"10.0.0.0/8", "192.168.1.1", "fd00::/8"}})
	legacy := newQuietServer(t, herald.Config{Logger: quiet, TrustForwardedFor: true})
	both := newQuietServer(t, herald.Config{Logger: quiet, TrustForwardedFor: true, TrustedProxies: []string{"10.0.0.0/8"}})
	tests := []struct {
		name string
		s    *herald.Server
		peer string
		xff  []string
		want string
	}{
		{"no proxies: the peer, header ignored", none, "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7"},
		{"untrusted peer forging the header", proxies, "203.0.113.7:5000", []string{"10.1.1.1, 1.2.3.4"}, "203.0.113.7"},
		{"trusted proxy: the address it appended", proxies, "10.0.0.5:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"forged entries left of the appended one", proxies, "10.0.0.5:80", []string{"1.2.3.4, 5.6.7.8, 198.51.100.9"}, "198.51.100.9"},
		{"chain of trusted proxies skipped", proxies, "10.0.0.5:80", []string{"1.2.3.4, 198.51.100.9, 192.168.1.1, 10.9.9.9"}, "198.51.100.9"},
		{"several header lines, last one nearest", proxies, "10.0.0.5:80", []string{"1.2.3.4", "198.51.100.9, 10.2.2.2"}, "198.51.100.9"},
		{"all trusted: the leftmost", proxies, "10.0.0.5:80", []string{"10.3.3.3, 10.4.4.4"}, "10.3.3.3"},
		{"garbage stops the walk", proxies, "10.0.0.5:80", []string{"1.2.3.4, nonsense, 10.4.4.4"}, "10.4.4.4"},
		{"no header from a proxy: the proxy", proxies, "10.0.0.5:80", nil, "10.0.0.5"},
		{"entry with a port", proxies, "10.0.0.5:80", []string{"198.51.100.9:4711"}, "198.51.100.9"},
		{"IPv6 client behind an IPv6 proxy", proxies, "[fd00::1]:80", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4-mapped peer", proxies, "[::ffff:10.0.0.5]:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"deprecated flag: the last entry, not the first", legacy, "203.0.113.7:5000", []string{"1.2.3.4, 198.51.100.9"}, "198.51.100.9"},
		{"deprecated flag with proxies", both, "203.0.113.7:5000", []string{"1.2.3.4, 198.51.100.9, 10.0.0.9"}, "198.51.100.9"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.RemoteAddr = tt.peer
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := tt.s.ClientIP(r); got != tt.want {
			t.Errorf("%s: clientIP = %s, want %s", tt.name, got, tt.want)
		}
	}
	if _, err := herald.New(herald.Config{Logger: quiet, TrustedProxies: []string{"10.0.0.0/33"}}); !errors.Is(err, herald.ErrConfig) {
		t.Errorf("New with a bad prefix: %v, want ErrConfig", err)
	}
}

func newQuietServer(t *testing.T, cfg herald.Config) *herald.Server {
	t.Helper()
	cfg.APIKeys = []string{testAPIKey}
	s, err := herald.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

// TestForwardedForSpoof is the attack on per-IP limits: a client that
// writes its own X-Forwarded-For, a new address on each upgrade, directly
// and as if it came through a trusted proxy that appends to the header.
// Neither gets it past MaxConnsPerIP or UpgradeRatePerIP.
func TestForwardedForSpoof(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		proxies []string
		forged  func(i int) string
	}{
		// The peer (127.0.0.1) is not a proxy: the header is ignored.
		{"direct", []string{"10.0.0.0/8"}, func(i int) string { return fmt.Sprintf("203.0.113.%d", i) }},
		// The peer (127.0.0.1) is a trusted proxy that appended the
		// client's address (198.51.100.1) to the client's own header:
		// what the client wrote on the left is never read.
		{"through a proxy that appends", []string{"127.0.0.1/32"}, func(i int) string {
			return fmt.Sprintf("203.0.113.%d, 198.51.100.1", i)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := startServer(t, herald.Config{MaxConnsPerIP: 2, TrustedProxies: tc.proxies})
			for i := range 3 {
				hdr := http.Header{"X-Client-Id": {fmt.Sprintf("spoofer-%d", i)}, "X-Forwarded-For": {tc.forged(i)}}
				want := http.StatusSwitchingProtocols
				if i == 2 {
					want = http.StatusTooManyRequests
				}
				if code := dialStatus(t, ts.URL, hdr); code != want {
					t.Fatalf("upgrade %d with X-Forwarded-For %q: %d, want %d", i+1, tc.forged(i), code, want)
				}
			}
			rated := startServer(t, herald.Config{UpgradeRatePerIP: 0.001, UpgradeBurstPerIP: 2, TrustedProxies: tc.proxies})
			for i := range 3 {
				hdr := http.Header{"X-Forwarded-For": {tc.forged(i)}}
				want := http.StatusSwitchingProtocols
				if i == 2 {
					want = http.StatusTooManyRequests
				}
				if code := dialStatus(t, rated.URL, hdr); code != want {
					t.Fatalf("rated upgrade %d with X-Forwarded-For %q: %d, want %d", i+1, tc.forged(i), code, want)
				}
			}
		})
	}
}

// TestUpgradesInFlightBounded: with MaxUpgradesInFlight connections being
// admitted (here held in OnUpgrade), the next upgrade is refused at once
// with 503 "overloaded" and Retry-After; once the first is through, the
// slot is free again.
func TestUpgradesInFlightBounded(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	ts := startServer(t, herald.Config{MaxUpgradesInFlight: 1, Hooks: herald.Hooks{
		OnUpgrade: func(ctx context.Context, r *herald.UpgradeRequest) (*herald.UpgradeResult, error) {
			if r.Request.URL.Query().Get("hold") != "" {
				once.Do(func() { close(entered) })
				<-release
			}
			return nil, nil
		},
	}})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(free) // before the server's cleanup, which waits for the held upgrade
	held := make(chan *wsClient, 1)
	go func() { held <- dial(t, ts.URL+"?hold=1") }()
	<-entered

	resp, body := upgrade(t, ts, func(*http.Request) {})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, `"overloaded"`) {
		t.Fatalf("upgrade while one is admitted: %d %s, want 503 overloaded", resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 overloaded without Retry-After")
	}
	if got := metricValue(t, ts, `herald_limit_rejections_total{limit="upgrades_in_flight"}`); got != 1 {
		t.Errorf(`herald_limit_rejections_total{limit="upgrades_in_flight"} = %v, want 1`, got)
	}

	free()
	c := <-held
	c.join("chat:after")
	dial(t, ts.URL).join("chat:after") // the slot is free again
}
