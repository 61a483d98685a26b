package jwt

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestJWKSRotationRefreshesUnknownKID(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	js := newJWKSServer(t, map[string]any{"k1": &k.rsa.PublicKey})
	a := newAuth(t, Config{JWKSURL: js.URL})
	k1 := mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice"), "k1")
	k2 := mint(t, jwt.SigningMethodES256, k.ec, claims("alice"), "k2")

	if _, _, err := a.Verify(k1); err != nil {
		t.Fatalf("k1 before rotation: %v", err)
	}
	js.set(t, map[string]any{"k2": &k.ec.PublicKey})
	if _, _, err := a.Verify(k2); err != nil {
		t.Fatalf("k2 after rotation: %v", err)
	}
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2 (start, unknown kid)", n)
	}
	// k1 left the set with the refetch; the next unknown kid is rate
	// limited: refused at once, without another fetch.
	start := time.Now()
	if _, _, err := a.Verify(k1); reasonOf(err) != ReasonUnknownKID {
		t.Fatalf("retired k1: %v, want %s", err, ReasonUnknownKID)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("rate-limited unknown kid took %v", d)
	}
	if n := js.fetches.Load(); n != 2 {
		t.Errorf("fetches = %d after rate-limited kid, want 2", n)
	}
}

func TestJWKSBackgroundRefresh(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	js := newJWKSServer(t, map[string]any{"k1": &k.rsa.PublicKey})
	a := newAuth(t, Config{JWKSURL: js.URL, JWKSRefreshInterval: 20 * time.Millisecond})
	js.set(t, map[string]any{"k1": &k.rsa.PublicKey, "k2": k.ed.Public()})
	checkFor(t, 5*time.Second, func() bool { return js.fetches.Load() >= 3 })
	if _, _, err := a.Verify(mint(t, jwt.SigningMethodEdDSA, k.ed, claims("alice"), "k2")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// A fetch that Close cancelled in flight may still reach the server;
	// wait until three intervals pass without one, which a loop still
	// running every 20 ms would never allow.
	n := js.fetches.Load()
	checkFor(t, 5*time.Second, func() bool {
		time.Sleep(60 * time.Millisecond)
		m := js.fetches.Load()
		quiet := m == n
		n = m
		return quiet
	})
	time.Sleep(100 * time.Millisecond) // five more intervals: none may fetch
	if m := js.fetches.Load(); m != n {
		t.Errorf("fetched %d times after Close", m-n)
	}
	// Cached keys keep working after Close.
	if _, _, err := a.Verify(mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice"), "k1")); err != nil {
		t.Errorf("after Close: %v", err)
	}
	_ = a.Close() // idempotent
}

// syncBuffer is a bytes.Buffer safe for the refresh goroutine to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestJWKSRefreshFailureKeepsKeys(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	js := newJWKSServer(t, map[string]any{"k1": &k.rsa.PublicKey})
	var down bool
	var mu sync.Mutex
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		d := down
		mu.Unlock()
		if d {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		js.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(flaky.Close)
	logs := &syncBuffer{}
	a := newAuth(t, Config{
		JWKSURL:             flaky.URL,
		JWKSRefreshInterval: 20 * time.Millisecond,
		Logger:              slog.New(slog.NewTextHandler(logs, nil)),
	})
	mu.Lock()
	down = true
	mu.Unlock()
	checkFor(t, 5*time.Second, func() bool { return strings.Contains(logs.String(), "JWKS refresh failed") })
	if _, _, err := a.Verify(mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice"), "k1")); err != nil {
		t.Fatalf("cached key lost on failed refresh: %v", err)
	}
}

func TestJWKSIgnoresSymmetricKeys(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	js := newJWKSServer(t, map[string]any{"k1": &k.rsa.PublicKey})
	body := []byte(`{"keys":[{"kty":"oct","kid":"oct","k":"` + base64.RawURLEncoding.EncodeToString(testSecret) + `"}]}`)
	js.body.Store(&body)
	a := newAuth(t, Config{JWKSURL: js.URL})
	_, _, err := a.Verify(mint(t, jwt.SigningMethodHS256, testSecret, claims("alice"), "oct"))
	if reasonOf(err) != ReasonAlgNotAllowed {
		t.Fatalf("HS256 via JWKS oct key: %v, want %s", err, ReasonAlgNotAllowed)
	}
	_, _, err = a.Verify(mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice"), "oct"))
	if reasonOf(err) != ReasonAlgNotAllowed {
		t.Fatalf("RS256 under an oct kid: %v, want %s", err, ReasonAlgNotAllowed)
	}
}
