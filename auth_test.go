package herald_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// authServer starts a server verifying HS256 tokens with testSecret and
// RS256 tokens with a fresh RSA key, and returns the RSA key's PEM too.
func authServer(t *testing.T, cfg herald.Config, jcfg jwtauth.Config) (*testServer, *rsa.PrivateKey, []byte) {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rk.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	file := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(file, pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	jcfg.Secret = testSecret
	jcfg.PublicKeyFile = file
	if jcfg.Leeway == 0 {
		jcfg.Leeway = time.Millisecond
	}
	a, err := jwtauth.New(context.Background(), jcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	cfg.Authenticator = a
	return startServer(t, cfg), rk, pubPEM
}

func sign(t *testing.T, method gojwt.SigningMethod, key any, claims gojwt.MapClaims) string {
	t.Helper()
	s, err := gojwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub string, ttl time.Duration) gojwt.MapClaims {
	now := time.Now()
	return gojwt.MapClaims{"sub": sub, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": "jti-" + sub, "rooms": []string{"chat:*"}}
}

func with(c gojwt.MapClaims, kv ...any) gojwt.MapClaims {
	out := gojwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// hs256Raw signs header+claims with an arbitrary HMAC key, for tokens no
// library would make (alg none, key confusion).
func hs256Raw(header string, c gojwt.MapClaims, key []byte) string {
	b, _ := json.Marshal(c)
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(b)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// upgrade sends a handshake and returns the response without following it.
func upgrade(t *testing.T, ts *testServer, mutate func(*http.Request)) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.HTTP.URL+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	mutate(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := ""
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
	}
	resp.Body.Close()
	return resp, body
}

func bearer(tok string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func TestHostileHandshakesRefusedBeforeUpgrade(t *testing.T) {
	t.Parallel()
	ts, rk, pubPEM := authServer(t, herald.Config{AllowedOrigins: []string{"https://app.example.com"}},
		jwtauth.Config{Audience: "herald", Issuer: "https://id.example.com", MaxLifetime: 2 * time.Hour})
	good := with(claims("alice", time.Hour), "aud", "herald", "iss", "https://id.example.com")
	valid := sign(t, gojwt.SigningMethodHS256, testSecret, good)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherRSA, _ := rsa.GenerateKey(rand.Reader, 2048)

	// Revoke one jti first, through the API.
	revokedTok := sign(t, gojwt.SigningMethodHS256, testSecret, with(good, "jti", "stolen-1"))
	req, _ := http.NewRequest("POST", ts.HTTP.URL+"/api/v1/revoke", strings.NewReader(`{"jti":"stolen-1"}`))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}

	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":9999999999,"aud":"herald","iss":"https://id.example.com"}`)) + "." + parts[2]

	tests := []struct {
		name   string
		mutate func(*http.Request)
		status int
		reason string
	}{
		{"no token", func(*http.Request) {}, 401, "no_token"},
		{"garbage", bearer("not-a-jwt"), 401, "malformed"},
		{"three garbage parts", bearer("a.b.c"), 401, "malformed"},
		{"wrong signature", bearer(sign(t, gojwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), good)), 401, "bad_signature"},
		{"alg none", bearer(strings.TrimSuffix(sign(t, gojwt.SigningMethodNone, gojwt.UnsafeAllowNoneSignatureType, good), "")), 401, ""},
		{"HS256 signed with the RSA public key", bearer(hs256Raw(`{"alg":"HS256","typ":"JWT"}`, good, pubPEM)), 401, "bad_signature"},
		{"RS256 from an unknown key", bearer(sign(t, gojwt.SigningMethodRS256, otherRSA, good)), 401, ""},
		{"ES256 without an EC key configured", bearer(sign(t, gojwt.SigningMethodES256, ek, good)), 401, ""},
		{"expired", bearer(sign(t, gojwt.SigningMethodHS256, testSecret, with(good, "exp", time.Now().Add(-time.Minute).Unix()))), 401, "expired"},
		{"not yet valid", bearer(sign(t, gojwt.SigningMethodHS256, testSecret, with(good, "nbf", time.Now().Add(time.Hour).Unix()))), 401, "not_yet_valid"},
		{"no exp", bearer(sign(t, gojwt.SigningMethodHS256, testSecret, with(good, "exp", nil))), 401, ""},
		{"lifetime over the maximum", bearer(sign(t, gojwt.SigningMethodHS256, testSecret, with(good, "exp", time.Now().Add(48*time.Hour).Unix()))), 401, "lifetime_too_long"},
		{"no sub", bearer(sign(t, gojwt.SigningMethodHS256, testSecret, with(good, "sub", nil))), 401, ""},
		{"wrong audience", bearer(sign(t, gojwt.SigningMethodHS256, testSecret, with(good, "aud", "other"))), 401, "bad_audience"},
		{"wrong issuer", bearer(sign(t, gojwt.SigningMethodHS256, testSecret, with(good, "iss", "https://evil.example"))), 401, "bad_issuer"},
		{"tampered payload", bearer(tampered), 401, "bad_signature"},
		{"oversized token", bearer(strings.Repeat("a", 9000)), 401, "token_too_large"},
		{"revoked jti", bearer(revokedTok), 401, "revoked"},
		{"cross-origin with cookie", func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "token", Value: valid})
			r.Header.Set("Origin", "https://evil.example")
		}, 403, "origin_not_allowed"},
		{"cross-origin with header token, origin not listed", func(r *http.Request) {
			bearer(valid)(r)
			r.Header.Set("Origin", "https://evil.example")
		}, 403, "origin_not_allowed"},
		{"empty bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, 401, ""},
		{"basic auth instead of bearer", func(r *http.Request) { r.SetBasicAuth("alice", "pw") }, 401, ""},
		{"token in subprotocol without herald.v1", func(r *http.Request) {
			r.Header.Set("Sec-WebSocket-Protocol", "bearer.garbage")
		}, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := upgrade(t, ts, tt.mutate)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			var e struct{ Error, Message string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" || e.Message == "" {
				t.Fatalf("body %q is not a JSON error", body)
			}
			if tt.reason != "" && e.Error != tt.reason {
				t.Fatalf("reason %q, want %q", e.Error, tt.reason)
			}
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("401 without WWW-Authenticate")
			}
			if strings.Contains(body, valid) || (len(parts[2]) > 10 && strings.Contains(body, parts[2])) {
				t.Fatalf("the body echoes the token")
			}
		})
	}
	if n := ts.Connections(); n != 0 {
		t.Fatalf("%d WebSockets were created", n)
	}
	if v := metricValue(t, ts, "herald_connections_opened_total"); v != 0 {
		t.Fatalf("connections opened: %v", v)
	}
	if v := metricValue(t, ts, `herald_upgrades_rejected_total{reason="bad_signature"}`); v < 3 {
		t.Fatalf("failures not counted by reason: %v", v)
	}
	_ = rk
}

func TestTokenSourcesAccepted(t *testing.T) {
	t.Parallel()
	ts, rk, _ := authServer(t, herald.Config{}, jwtauth.Config{})
	hs := sign(t, gojwt.SigningMethodHS256, testSecret, claims("alice", time.Hour))
	rs := sign(t, gojwt.SigningMethodRS256, rk, claims("bob", time.Hour))
	tests := []struct {
		name string
		url  string
		opts *websocket.DialOptions
		user string
	}{
		{"bearer header", ts.URL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + hs}}}, "alice"},
		{"RS256 bearer", ts.URL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + rs}}}, "bob"},
		{"cookie", ts.URL, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {"token=" + hs}}}, "alice"},
		{"cookie same-origin", ts.URL, &websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {"token=" + hs}, "Origin": {ts.HTTP.URL}}}, "alice"},
		{"subprotocol", ts.URL, &websocket.DialOptions{Subprotocols: []string{"herald.v1", "bearer." + hs}}, "alice"},
		{"query", ts.URL + "?token=" + hs, &websocket.DialOptions{}, "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, tt.url, tt.opts)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.CloseNow()
			if len(tt.opts.Subprotocols) > 0 && c.Subprotocol() != "herald.v1" {
				t.Fatalf("subprotocol echoed %q (header %q)", c.Subprotocol(), resp.Header.Get("Sec-WebSocket-Protocol"))
			}
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var w map[string]any
			_ = json.Unmarshal(b, &w)
			if w["type"] != "welcome" || w["userId"] != tt.user {
				t.Fatalf("welcome %v", w)
			}
		})
	}
}

func TestRoomPermissionsFromClaims(t *testing.T) {
	t.Parallel()
	ts, _, _ := authServer(t, herald.Config{}, jwtauth.Config{})
	tok := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("alice", time.Hour), "publish", []string{"chat:general"}))
	c := dial(t, ts.URL, withHeader("Authorization", "Bearer "+tok))
	for _, tt := range []struct {
		req      map[string]any
		wantType string
		wantCode string
	}{
		{map[string]any{"type": "join", "id": 1, "room": "chat:general"}, "reply", ""},
		{map[string]any{"type": "join", "id": 2, "room": "chat:random"}, "reply", ""},
		{map[string]any{"type": "join", "id": 3, "room": "admin"}, "error", "forbidden"},
		{map[string]any{"type": "join", "id": 4, "room": "public:lobby"}, "reply", ""},
		{map[string]any{"type": "publish", "id": 5, "room": "chat:random", "event": "e"}, "error", "forbidden"},
		{map[string]any{"type": "publish", "id": 6, "room": "public:lobby", "event": "e"}, "error", "forbidden"},
		{map[string]any{"type": "publish", "id": 7, "room": "chat:general", "event": "e"}, "reply", ""},
		{map[string]any{"type": "publish", "id": 8, "room": "user:alice", "event": "e"}, "reply", ""},
		{map[string]any{"type": "join", "id": 9, "room": "user:bob"}, "error", "forbidden"},
	} {
		m := c.request(tt.req)
		if m["type"] != tt.wantType || (tt.wantCode != "" && m["code"] != tt.wantCode) {
			t.Errorf("%v: got %v", tt.req, m)
		}
	}
}

// TestTokenExpiryAndRefresh: a connection is warned before its token
// expires and closed with 4001 at exp unless it refreshes; a refresh with
// another user's token or garbage is refused, one with a fresh token of the
// same user is taken after the warning and the connection outlives its
// first token. The lifetimes leave the refresh seconds, not a fraction of
// one, between the warning and exp (exp has whole seconds: a "2 s" token
// may live 1.1 s), so a loaded machine does not let the token run out
// before the test's requests are answered.
func TestTokenExpiryAndRefresh(t *testing.T) {
	t.Parallel()
	const notice = 4 * time.Second
	ts, _, _ := authServer(t, herald.Config{TokenExpiryNotice: notice}, jwtauth.Config{})
	token := func(sub string, ttl time.Duration) (string, time.Time) {
		c := with(claims(sub, ttl), "jti", sub+"-short")
		return sign(t, gojwt.SigningMethodHS256, testSecret, c), time.Unix(c["exp"].(int64), 0)
	}
	// Warned at half its life (under the notice), closed at exp.
	expTok, _ := token("erin", 2*time.Second)
	// Warned notice before exp: that long to refresh.
	refTok, firstExp := token("fred", 2*notice+time.Second)
	expiring := dial(t, ts.URL, withHeader("Authorization", "Bearer "+expTok))
	refreshing := dial(t, ts.URL, withHeader("Authorization", "Bearer "+refTok))

	// Both are warned before exp.
	for _, c := range []*wsClient{expiring, refreshing} {
		m, err := c.tryRead(time.Minute) // a hang only: the warning comes within 5 s
		if err != nil || m["type"] != "token_expiring" {
			t.Fatalf("want token_expiring, got %v (%v)", m, err)
		}
		if m["expiresAt"] == nil || m["inMs"].(float64) > float64(notice.Milliseconds()) {
			t.Fatalf("token_expiring %v", m)
		}
	}
	// A token for someone else is refused; a fresh token for the same user is taken.
	other := sign(t, gojwt.SigningMethodHS256, testSecret, claims("mallory", time.Hour))
	if m := refreshing.request(map[string]any{"type": "refresh", "id": 1, "token": other}); m["code"] != "token_invalid" {
		t.Fatalf("refresh with another user's token: %v", m)
	}
	if m := refreshing.request(map[string]any{"type": "refresh", "id": 2, "token": "garbage"}); m["code"] != "token_invalid" {
		t.Fatalf("refresh with garbage: %v", m)
	}
	fresh := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("fred", time.Hour), "jti", "fred-2"))
	if m := refreshing.request(map[string]any{"type": "refresh", "id": 3, "token": fresh}); m["type"] != "reply" {
		t.Fatalf("refresh: %v (first token expires at %s, now %s)", m, firstExp.Format(time.TimeOnly), time.Now().Format(time.TimeOnly))
	}
	// The unrefreshed one is closed at exp with 4001.
	code, reason := expiring.closeStatus(time.Minute)
	if code != 4001 {
		t.Fatalf("expired connection closed with %d %q, want 4001", code, reason)
	}
	// The refreshed one outlives its first token.
	time.Sleep(time.Until(firstExp.Add(500 * time.Millisecond)))
	refreshing.join("chat:after-refresh")
}

// TestTokenExpiryClosesOnTime: connections whose tokens expire at
// different seconds are each closed with 4001 at their exp, not before it
// and within expirySlack after it, while others leave the server's token
// clock before theirs (a heap of all of them: see expiryClock).
func TestTokenExpiryClosesOnTime(t *testing.T) {
	t.Parallel()
	// The documented slack is the runtime timer's (microseconds); a
	// loaded test machine gets a second.
	const expirySlack = time.Second
	ts, _, _ := authServer(t, herald.Config{TokenExpiryNotice: time.Minute}, jwtauth.Config{})
	type live struct {
		c      *wsClient
		exp    time.Time
		closed chan time.Time
	}
	var expiring []live
	for i := range 12 {
		c := with(claims(fmt.Sprintf("user-%d", i), time.Duration(1+i%3)*time.Second+500*time.Millisecond), "jti", fmt.Sprintf("tok-%d", i))
		exp := time.Unix(c["exp"].(int64), 0)
		wc := dial(t, ts.URL, withHeader("Authorization", "Bearer "+sign(t, gojwt.SigningMethodHS256, testSecret, c)))
		if i%4 == 1 {
			_ = wc.c.Close(websocket.StatusNormalClosure, "") // leaves before its exp
			continue
		}
		l := live{c: wc, exp: exp, closed: make(chan time.Time, 1)}
		go func() { <-wc.done; l.closed <- time.Now() }()
		expiring = append(expiring, l)
	}
	for _, l := range expiring {
		code, reason := l.c.closeStatus(time.Minute)
		if code != 4001 {
			t.Fatalf("closed with %d %q, want 4001", code, reason)
		}
		at := <-l.closed
		if at.Before(l.exp) || at.After(l.exp.Add(expirySlack)) {
			t.Errorf("token expiring at %s closed at %s", l.exp.Format(time.StampMilli), at.Format(time.StampMilli))
		}
	}
}

func TestRevocationClosesLiveConnectionsWithin5s(t *testing.T) {
	t.Parallel()
	ts, _, _ := authServer(t, herald.Config{}, jwtauth.Config{})
	tok := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("gina", time.Hour), "jti", "gina-laptop"))
	c1 := dial(t, ts.URL, withHeader("Authorization", "Bearer "+tok))
	c2 := dial(t, ts.URL, withHeader("Authorization", "Bearer "+tok))
	other := dial(t, ts.URL, withHeader("Authorization", "Bearer "+sign(t, gojwt.SigningMethodHS256, testSecret, claims("hank", time.Hour))))
	start := time.Now()
	if err := ts.Revoke(context.Background(), herald.RevokeRequest{TokenID: "gina-laptop"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wsClient{c1, c2} {
		if code, _ := c.closeStatus(5 * time.Second); code != 4003 {
			t.Fatalf("revoked connection closed with %d, want 4003", code)
		}
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("revocation took %s", took)
	}
	other.join("chat:still-here")
	if resp, _ := upgrade(t, ts, bearer(tok)); resp.StatusCode != 401 {
		t.Fatalf("revoked token at the upgrade: %d", resp.StatusCode)
	}
	// A new token for the same user still works (revocation was by jti).
	fresh := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("gina", time.Hour), "jti", "gina-phone"))
	dial(t, ts.URL, withHeader("Authorization", "Bearer "+fresh))
}

// TestRefreshLeavesRoomsTheNewTokenForbids: permissions follow the newest
// token, so a refresh with narrower rooms leaves the rooms it no longer
// allows, names them in the reply, and their messages stop.
func TestRefreshLeavesRoomsTheNewTokenForbids(t *testing.T) {
	t.Parallel()
	ts, _, _ := authServer(t, herald.Config{}, jwtauth.Config{})
	wide := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("ivy", time.Hour), "rooms", []string{"chat:*", "news"}))
	c := dial(t, ts.URL, withHeader("Authorization", "Bearer "+wide))
	c.join("chat:secret")
	c.join("news")
	narrow := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("ivy", time.Hour), "rooms", []string{"news"}, "jti", "ivy-2"))
	m := c.request(map[string]any{"type": "refresh", "id": 1, "token": narrow})
	if m["type"] != "reply" {
		t.Fatalf("refresh: %v", m)
	}
	if d, _ := m["data"].(map[string]any); fmt.Sprint(d["left"]) != "[chat:secret]" {
		t.Fatalf("refresh reply %v, want left [chat:secret]", m)
	}
	for _, room := range []string{"chat:secret", "news"} {
		if _, err := ts.Publish(context.Background(), room, "e", room); err != nil {
			t.Fatal(err)
		}
	}
	if m := c.expect("event"); m["room"] != "news" {
		t.Fatalf("got %v, want only the news event", m)
	}
	if extra, err := c.tryRead(300 * time.Millisecond); err == nil {
		t.Fatalf("event after leaving: %v", extra)
	}
	if m := c.request(map[string]any{"type": "join", "id": 2, "room": "chat:secret"}); m["code"] != "forbidden" {
		t.Fatalf("re-join with the narrow token: %v", m)
	}
}

// TestRevocationWhileConnecting revokes a token while its connection is
// being admitted (from OnUpgrade: after the upgrade checked the
// credential, before the connection is registered where a revocation
// looks for it). The connection must still be closed with 4003.
func TestRevocationWhileConnecting(t *testing.T) {
	t.Parallel()
	var ts *testServer
	hooks := herald.Hooks{OnUpgrade: func(ctx context.Context, r *herald.UpgradeRequest) (*herald.UpgradeResult, error) {
		if r.Identity.TokenID == "ivy-racing" {
			if err := ts.Revoke(ctx, herald.RevokeRequest{TokenID: "ivy-racing"}); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}}
	ts, _, _ = authServer(t, herald.Config{Hooks: hooks}, jwtauth.Config{})
	tok := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("ivy", time.Hour), "jti", "ivy-racing"))
	c := dial(t, ts.URL, withHeader("Authorization", "Bearer "+tok))
	if code, reason := c.closeStatus(5 * time.Second); code != 4003 {
		t.Fatalf("connection revoked while connecting closed with %d %q, want 4003", code, reason)
	}
	other := dial(t, ts.URL, withHeader("Authorization", "Bearer "+sign(t, gojwt.SigningMethodHS256, testSecret, claims("jack", time.Hour))))
	other.join("chat:unaffected")
}
