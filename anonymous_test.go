package herald_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/auth"
)

// upgradeVia sends a WebSocket upgrade to srv as if it had reached the
// server on the local address local.
func upgradeVia(t *testing.T, srv http.Handler, local string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", "/ws?clientId=ada", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	addr, err := net.ResolveTCPAddr("tcp", local)
	if err != nil {
		t.Fatal(err)
	}
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, addr))
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	return w
}

// TestAnonymousServesLoopbackOnly: the library applies herald serve's rule.
// With anonymous authentication (the default), an upgrade that reached the
// server on an address other than loopback is refused with 403 and logged
// once, loudly, with how to allow it; loopback is served; InsecureNoAuth,
// an Authenticator or an OnUpgrade hook lift the rule.
func TestAnonymousServesLoopbackOnly(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	ts := startServer(t, herald.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	for range 2 {
		w := upgradeVia(t, ts.Server, "192.0.2.10:8080")
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"error":"auth_required"`) ||
			!strings.Contains(w.Body.String(), "loopback only") {
			t.Fatalf("anonymous upgrade on a public address: %d %s, want 403 auth_required", w.Code, w.Body)
		}
	}
	loud := 0
	for _, l := range logs.lines(t) {
		if l["level"] == "ERROR" && strings.Contains(str(l["msg"]), "Config.InsecureNoAuth") && strings.Contains(str(l["msg"]), "Config.Authenticator") {
			loud++
		}
	}
	if loud != 1 {
		t.Fatalf("the refusal was logged loudly %d times, want once:\n%v", loud, logs.lines(t))
	}
	if got := metricValue(t, ts, `herald_upgrades_rejected_total{reason="auth_required"}`); got != 2 {
		t.Errorf("rejections counted: %v, want 2", got)
	}
	// Loopback, IPv4 and IPv6, passes the rule (the recorder cannot be
	// hijacked, so the upgrade fails later, not with 403).
	for _, local := range []string{"127.0.0.1:8080", "[::1]:8080"} {
		if w := upgradeVia(t, ts.Server, local); w.Code == http.StatusForbidden {
			t.Errorf("anonymous upgrade on %s refused: %s", local, w.Body)
		}
	}
	// A real client over loopback is served.
	c := dial(t, ts.URL)
	c.join("r")

	for name, cfg := range map[string]herald.Config{
		"InsecureNoAuth": {InsecureNoAuth: true},
		"Authenticator":  {Authenticator: headerAuth{}},
		"OnUpgrade": {Hooks: herald.Hooks{OnUpgrade: func(context.Context, *herald.UpgradeRequest) (*herald.UpgradeResult, error) {
			return nil, nil
		}}},
	} {
		cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		s := startServer(t, cfg)
		if w := upgradeVia(t, s.Server, "192.0.2.10:8080"); w.Code == http.StatusForbidden {
			t.Errorf("with %s: refused: %s", name, w.Body)
		}
	}
}

// headerAuth is an Authenticator that is not anonymous.
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request) (*auth.Identity, error) {
	return auth.Anonymous{}.Authenticate(r)
}

// TestAnonymousRefusedThroughARealPublicAddress: a listener on all
// interfaces reached through this machine's own non-loopback address, as
// the README's old snippet (":8080") was from another machine.
func TestAnonymousRefusedThroughARealPublicAddress(t *testing.T) {
	t.Parallel()
	var public net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil && !n.IP.IsLinkLocalUnicast() {
			public = n.IP
			break
		}
	}
	if public == nil {
		t.Skip("this machine has no non-loopback IPv4 address (the refusal itself is tested by TestAnonymousServesLoopbackOnly)")
	}
	srv, err := herald.New(herald.Config{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), APIKeys: []string{testAPIKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for host, want := range map[string]int{public.String(): http.StatusForbidden, "127.0.0.1": http.StatusSwitchingProtocols} {
		req, _ := http.NewRequest("GET", "http://"+net.JoinHostPort(host, strconv.Itoa(port))+"/ws", nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("upgrade through %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
}
