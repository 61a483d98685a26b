package floor

import (
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

var testSecret = []byte("floor-test-secret-0123456789abcdef")

func TestVerifier(t *testing.T) {
	t.Parallel()
	now := time.Now()
	good, err := jwtauth.Sign(testSecret, "alice", nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := jwtauth.Sign([]byte("another-secret-0123456789abcdefgh"), "alice", nil, nil, time.Hour)
	sign := func(m gojwt.SigningMethod, key any, c gojwt.MapClaims) string {
		s, err := gojwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hs := func(c gojwt.MapClaims) string { return sign(gojwt.SigningMethodHS256, testSecret, c) }
	tests := []struct {
		name, token, sub string
	}{
		{"signed by herald token", good, "alice"},
		{"other secret", other, ""},
		{"expired", hs(gojwt.MapClaims{"sub": "a", "exp": now.Add(-time.Minute).Unix()}), ""},
		{"no exp", hs(gojwt.MapClaims{"sub": "a"}), ""},
		{"not yet valid", hs(gojwt.MapClaims{"sub": "a", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}), ""},
		{"no subject", hs(gojwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), ""},
		{"HS384", sign(gojwt.SigningMethodHS384, testSecret, gojwt.MapClaims{"sub": "a", "exp": now.Add(time.Hour).Unix()}), ""},
		{"alg none", sign(gojwt.SigningMethodNone, gojwt.UnsafeAllowNoneSignatureType, gojwt.MapClaims{"sub": "a", "exp": now.Add(time.Hour).Unix()}), ""},
		{"two parts", "a.b", ""},
		{"empty", "", ""},
		{"signature not base64", good[:len(good)-3] + "!!!", ""},
	}
	v := newVerifier(testSecret)
	for _, tt := range tests {
		sub, err := v.verify([]byte(tt.token), now)
		if tt.sub == "" && err == nil {
			t.Errorf("%s: accepted (sub %q)", tt.name, sub)
		}
		if tt.sub != "" && (err != nil || sub != tt.sub) {
			t.Errorf("%s: sub %q, %v; want %q", tt.name, sub, err, tt.sub)
		}
	}
}

func BenchmarkVerifier(b *testing.B) {
	tok, _ := jwtauth.Sign(testSecret, "bench-user-0", nil, nil, time.Hour)
	v := newVerifier(testSecret)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.verify([]byte(tok), now); err != nil {
			b.Fatal(err)
		}
	}
}
