package herald_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
	redisbroker "github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/internal/testserver"
	"github.com/heraldrt/herald/protocol"
	redissession "github.com/heraldrt/herald/session/redis"
)

// revocationNode starts a node as `herald serve --redis-url` wires one:
// Redis broker and Redis revocations, JWT authentication. A node of its
// own, not the previous one's memory: a restart is a new node.
func revocationNode(t *testing.T, brokerRedis, revRedis *testserver.Redis, cfg herald.Config) *testServer {
	t.Helper()
	b, err := redisbroker.New(redisbroker.Config{URL: brokerRedis.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Revocations == nil {
		rv, err := redissession.NewRevocations(redissession.Config{URL: revRedis.URL()})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Revocations = rv
	}
	a, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: testSecret, Leeway: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	cfg.Broker, cfg.Authenticator = b, a
	return startServer(t, cfg)
}

func bearerHeader(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}

func revoke(t *testing.T, ts *testServer, body string) (int, map[string]any) {
	t.Helper()
	code, _, resp := apiCall(t, ts, "POST", "/api/v1/revoke", testAPIKey, body)
	return code, resp
}

// TestRevocationsSurviveRestart revokes a jti and a sub, then replaces
// the node by a new one on the same Redis, as a rolling deploy does: the
// new node refuses both before it says it is ready.
func TestRevocationsSurviveRestart(t *testing.T) {
	t.Parallel()
	r := testserver.StartRedis(t)
	first := revocationNode(t, r, r, herald.Config{})
	stolen := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("mallory", time.Hour), "jti", "stolen-1"))
	eve := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("eve", time.Hour), "jti", "eve-1"))
	for _, body := range []string{`{"jti":"stolen-1"}`, `{"sub":"eve","reason":"account locked"}`} {
		if code, resp := revoke(t, first, body); code != 200 {
			t.Fatalf("revoke %s: %d %v", body, code, resp)
		}
	}
	for _, tok := range []string{stolen, eve} {
		if code := dialStatus(t, first.URL, bearerHeader(tok)); code != http.StatusUnauthorized {
			t.Fatalf("revoked token on the node that revoked it: %d, want 401", code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	second := revocationNode(t, r, r, herald.Config{})
	code, body, _ := get(t, second.HTTP.URL+"/readyz")
	if code != 200 {
		t.Fatalf("restarted node not ready: %d %s", code, body)
	}
	for name, tok := range map[string]string{"revoked jti": stolen, "revoked sub": eve} {
		if code := dialStatus(t, second.URL, bearerHeader(tok)); code != http.StatusUnauthorized {
			t.Errorf("%s after a restart: %d, want 401", name, code)
		}
	}
	other := sign(t, gojwt.SigningMethodHS256, testSecret, with(claims("mallory", time.Hour), "jti", "fresh-1"))
	if code := dialStatus(t, second.URL, bearerHeader(other)); code != http.StatusSwitchingProtocols {
		t.Errorf("a token that was not revoked after a restart: %d, want 101", code)
	}
}

// TestNotReadyUntilRevocationsLoaded starts a node while the revocation
// store does not answer: it says it is not ready and refuses upgrades
// until it has read the revocations, then serves.
func TestNotReadyUntilRevocationsLoaded(t *testing.T) {
	t.Parallel()
	msgs, revs := testserver.StartRedis(t), testserver.StartRedis(t)
	// A revocation made before the node starts, and the node's store,
	// connected before the store stops answering.
	rv, err := redissession.NewRevocations(redissession.Config{URL: revs.URL()})
	if err != nil {
		t.Fatal(err)
	}
	seed := revocationNode(t, msgs, revs, herald.Config{})
	eve := sign(t, gojwt.SigningMethodHS256, testSecret, claims("eve", time.Hour)) // issued before the revocation
	if code, resp := revoke(t, seed, `{"sub":"eve"}`); code != 200 {
		t.Fatalf("revoke: %d %v", code, resp)
	}
	revs.Freeze()
	thawed := false
	defer func() {
		if !thawed {
			revs.Thaw()
		}
	}()
	ts := revocationNode(t, msgs, revs, herald.Config{BackendTimeout: 200 * time.Millisecond, Revocations: rv})
	code, body, _ := get(t, ts.HTTP.URL+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("readyz before revocations are loaded: %d %s, want 503", code, body)
	}
	anyone := sign(t, gojwt.SigningMethodHS256, testSecret, claims("zed", time.Hour))
	if code := dialStatus(t, ts.URL, bearerHeader(anyone)); code != http.StatusServiceUnavailable {
		t.Fatalf("upgrade before revocations are loaded: %d, want 503", code)
	}
	revs.Thaw()
	thawed = true
	waitFor(t, 10*time.Second, "ready once the revocations are read", func() bool {
		code, _, _ := get(t, ts.HTTP.URL+"/readyz")
		return code == 200
	})
	if code := dialStatus(t, ts.URL, bearerHeader(eve)); code != http.StatusUnauthorized {
		t.Fatalf("revoked user once ready: %d, want 401", code)
	}
	if code := dialStatus(t, ts.URL, bearerHeader(anyone)); code != http.StatusSwitchingProtocols {
		t.Fatalf("other user once ready: %d, want 101", code)
	}
}

// TestRevocationsDuringPubSubBreak sends revocations while every node's
// pub/sub connection is being re-established (CLIENT KILL TYPE pubsub,
// with SUBSCRIBE refused for a while so that the window is certain): each
// is answered 200, applied at once on the node that took it, and applied
// on the other node once it has resubscribed and re-read the revocations.
func TestRevocationsDuringPubSubBreak(t *testing.T) {
	t.Parallel()
	r := testserver.StartRedis(t)
	a := revocationNode(t, r, r, herald.Config{})
	b := revocationNode(t, r, r, herald.Config{})
	const victims = 5
	var onA, onB []*wsClient
	var toks []string
	for i := range victims {
		tok := sign(t, gojwt.SigningMethodHS256, testSecret, claims(fmt.Sprintf("victim-%d", i), time.Hour))
		toks = append(toks, tok)
		onA = append(onA, dial(t, a.URL, withHeader("Authorization", "Bearer "+tok)))
		onB = append(onB, dial(t, b.URL, withHeader("Authorization", "Bearer "+tok)))
	}

	mustCommand := func(args ...string) {
		t.Helper()
		if _, err := r.Command(args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	mustCommand("ACL", "SETUSER", "default", "-subscribe", "-ssubscribe")
	restored := false
	defer func() {
		if !restored {
			_, _ = r.Command("ACL", "SETUSER", "default", "+subscribe", "+ssubscribe")
		}
	}()
	mustCommand("CLIENT", "KILL", "TYPE", "pubsub")
	for i := range victims {
		body := fmt.Sprintf(`{"sub":"victim-%d","reason":"locked"}`, i)
		if code, resp := revoke(t, a, body); code != 200 {
			t.Fatalf("revoke during the break: %d %v", code, resp)
		}
		// Applied where it was answered, before the answer.
		if code, reason := onA[i].closeStatus(5 * time.Second); code != protocol.CloseRevoked {
			t.Fatalf("victim %d on the node that revoked: closed %d %q, want %d", i, code, reason, protocol.CloseRevoked)
		}
	}
	mustCommand("ACL", "SETUSER", "default", "+subscribe", "+ssubscribe")
	restored = true
	for i, c := range onB {
		if code, reason := c.closeStatus(15 * time.Second); code != protocol.CloseRevoked {
			t.Fatalf("victim %d on the other node: closed %d %q, want %d", i, code, reason, protocol.CloseRevoked)
		}
	}
	// The revoked tokens (issued before the revocations) stay refused; a
	// login after a revocation would work.
	for i, tok := range toks {
		for name, ts := range map[string]*testServer{"a": a, "b": b} {
			if code := dialStatus(t, ts.URL, bearerHeader(tok)); code != http.StatusUnauthorized {
				t.Errorf("victim %d reconnecting to %s: %d, want 401", i, name, code)
			}
		}
	}
}

// TestRevokeUntilInThePast: a revocation that would do nothing is refused.
func TestRevokeUntilInThePast(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{})
	for _, body := range []string{`{"sub":"x","until":1}`, fmt.Sprintf(`{"jti":"j","until":%d}`, time.Now().Unix()-1), `{}`, `{"reason":"r"}`} {
		code, resp := revoke(t, ts, body)
		if code != http.StatusBadRequest || resp["error"] != "bad_request" || str(resp["message"]) == "" {
			t.Errorf("revoke %s: %d %v, want 400 bad_request with a message", body, code, resp)
		}
	}
	if code, resp := revoke(t, ts, fmt.Sprintf(`{"sub":"x","until":%d}`, time.Now().Add(time.Hour).Unix())); code != 200 {
		t.Errorf("revoke with a future until: %d %v", code, resp)
	}
}
