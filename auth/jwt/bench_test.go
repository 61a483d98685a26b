package jwt

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// The handshake cost of token verification; ns/op is the inverse of
// verifications per second per core.

func BenchmarkVerifyHS256(b *testing.B) {
	a := newAuth(b, Config{Secret: testSecret})
	tok := mint(b, jwt.SigningMethodHS256, testSecret,
		with(claims("alice"), "rooms", []string{"chat:*"}, "publish", []string{"chat:general"}), "")
	benchVerify(b, a, tok)
}

// BenchmarkVerifyHS256Parser is BenchmarkVerifyHS256 without the fast
// path (golang-jwt's parser for every token), as before it: the pair is
// the fast path's gain.
func BenchmarkVerifyHS256Parser(b *testing.B) {
	a := newAuth(b, Config{Secret: testSecret})
	a.fast = nil
	tok := mint(b, jwt.SigningMethodHS256, testSecret,
		with(claims("alice"), "rooms", []string{"chat:*"}, "publish", []string{"chat:general"}), "")
	benchVerify(b, a, tok)
}

func BenchmarkVerifyES256(b *testing.B) {
	k := keysOnce()
	a := newAuth(b, Config{PublicKeyFile: writeFile(b, pemBlock(b, &k.ec.PublicKey, "ec-1"))})
	tok := mint(b, jwt.SigningMethodES256, k.ec,
		with(claims("alice"), "rooms", []string{"chat:*"}, "publish", []string{"chat:general"}), "ec-1")
	benchVerify(b, a, tok)
}

func benchVerify(b *testing.B, a *Authenticator, tok string) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := a.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkAuthenticateHS256 is the handshake's token check: the token
// from Authorization: Bearer, verified, and no Claims made.
func BenchmarkAuthenticateHS256(b *testing.B) {
	a := newAuth(b, Config{Secret: testSecret})
	tok := mint(b, jwt.SigningMethodHS256, testSecret,
		with(claims("alice"), "rooms", []string{"chat:*"}, "publish", []string{"chat:general"}), "")
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}
