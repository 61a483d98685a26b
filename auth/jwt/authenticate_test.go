package jwt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/auth"
)

// revoker revokes one jti and every token of one subject issued before cut.
type revoker struct {
	jti, sub string
	cut      time.Time
}

func (r revoker) IsRevoked(jti, sub string, iat time.Time) bool {
	return jti == r.jti || sub == r.sub && iat.Before(r.cut)
}

// authenticators are the configurations the tables run against.
type authenticators struct {
	hs, hsNoQuery, pem, mixed, jwks *Authenticator
}

func setup(t *testing.T) authenticators {
	t.Helper()
	k := keysOnce()
	rev := revoker{jti: "revoked-jti", sub: "banned", cut: time.Now().Add(time.Hour)}
	pemFile := writeFile(t,
		pemBlock(t, &k.rsa.PublicKey, "rsa-1"),
		pemBlock(t, &k.ec.PublicKey, "ec-1"),
		pemBlock(t, k.ed.Public(), "ed-1"),
	)
	js := newJWKSServer(t, map[string]any{
		"j-rsa": &k.rsa2.PublicKey,
		"j-ec":  &k.ec2.PublicKey,
	})
	return authenticators{
		hs:        newAuth(t, Config{Secret: testSecret, Issuer: "herald-test", Audience: "herald", Revocations: rev}),
		hsNoQuery: newAuth(t, Config{Secret: testSecret, DisableQueryToken: true}),
		pem:       newAuth(t, Config{PublicKeyFile: pemFile}),
		mixed:     newAuth(t, Config{Secret: testSecret, PublicKeyFile: pemFile}),
		jwks:      newAuth(t, Config{JWKSURL: js.URL}),
	}
}

// bearerReq is an upgrade request with "Authorization: Bearer tok".
func bearerReq(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func queryReq(tok string) *http.Request {
	return httptest.NewRequest(http.MethodGet, "/ws?token="+url.QueryEscape(tok), nil)
}

// b64 is the JWS segment encoding.
func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// es256WithP384 signs like ES256 (SHA-256, r||s) but with a P-384 key.
func es256WithP384(t *testing.T, key *ecdsa.PrivateKey, c jwt.MapClaims) string {
	t.Helper()
	signing, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SigningString()
	if err != nil {
		t.Fatal(err)
	}
	h := crypto.SHA256.New()
	h.Write([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, h.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	sig := append(pad(r, 48), pad(s, 48)...)
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// tamper rewrites the sub of a payload segment, keeping everything else.
func tamper(t *testing.T, payload string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c["sub"] = "mallory"
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(out)
}

func pad(n *big.Int, size int) []byte {
	b := make([]byte, size)
	return n.FillBytes(b)
}

func TestAuthenticateRejects(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	as := setup(t)
	hsClaims := with(claims("alice"), "iss", "herald-test", "aud", "herald")
	good := mint(t, jwt.SigningMethodHS256, testSecret, hsClaims, "")
	parts := strings.Split(good, ".")
	rsaPEM := pemBlock(t, &k.rsa.PublicKey, "rsa-1")
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, hsClaims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	hs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, testSecret, c, "") }
	kidNumber := jwt.NewWithClaims(jwt.SigningMethodRS256, claims("alice"))
	kidNumber.Header["kid"] = 7
	badKID, err := kidNumber.SignedString(k.rsa)
	if err != nil {
		t.Fatal(err)
	}
	withCrit := jwt.NewWithClaims(jwt.SigningMethodHS256, hsClaims)
	withCrit.Header["crit"] = []string{"b64"}
	withCrit.Header["b64"] = false
	critTok, err := withCrit.SignedString(testSecret)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		a      *Authenticator
		req    *http.Request
		token  string // the token under test, asserted absent from the message
		reason string
	}{
		{name: "no token", a: as.hs, req: httptest.NewRequest(http.MethodGet, "/ws", nil), reason: ReasonNoToken},
		{name: "empty bearer", a: as.hs, req: bearerReq(""), reason: ReasonNoToken},
		{name: "garbage", a: as.hs, token: "not-a-jwt", reason: ReasonMalformed},
		{name: "four segments", a: as.hs, token: good + ".x", reason: ReasonMalformed},
		{name: "malformed base64 header", a: as.hs, token: "@@@." + parts[1] + "." + parts[2], reason: ReasonMalformed},
		{name: "malformed base64 payload", a: as.hs, token: parts[0] + ".%%%." + parts[2], reason: ReasonMalformed},
		{name: "payload not JSON", a: as.hs, token: parts[0] + "." + b64("nope") + "." + parts[2], reason: ReasonMalformed},
		{name: "wrong signature", a: as.hs, token: mint(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-xx"), hsClaims, ""), reason: ReasonBadSignature},
		{name: "tampered payload", a: as.hs, token: parts[0] + "." + tamper(t, parts[1]) + "." + parts[2], reason: ReasonBadSignature},
		{name: "signature stripped", a: as.hs, token: parts[0] + "." + parts[1] + ".", reason: ReasonBadSignature},
		{name: "alg none", a: as.hs, token: noneTok, reason: ReasonAlgNotAllowed},
		{name: "alg none against PEM", a: as.pem, token: noneTok, reason: ReasonAlgNotAllowed},
		{name: "HS256 with RSA public key as secret, PEM only", a: as.pem, token: mint(t, jwt.SigningMethodHS256, rsaPEM, claims("alice"), "rsa-1"), reason: ReasonAlgNotAllowed},
		{name: "HS256 with RSA public key as secret, secret and PEM", a: as.mixed, token: mint(t, jwt.SigningMethodHS256, rsaPEM, claims("alice"), "rsa-1"), reason: ReasonBadSignature},
		{name: "RS256 when only HS256 configured", a: as.hs, token: mint(t, jwt.SigningMethodRS256, k.rsa, hsClaims, ""), reason: ReasonAlgNotAllowed},
		{name: "PS256 with a configured RSA key", a: as.pem, token: mint(t, jwt.SigningMethodPS256, k.rsa, claims("alice"), "rsa-1"), reason: ReasonAlgNotAllowed},
		{name: "HS512", a: as.hs, token: mint(t, jwt.SigningMethodHS512, testSecret, hsClaims, ""), reason: ReasonAlgNotAllowed},
		{name: "unknown alg", a: as.hs, token: b64(`{"alg":"XX999","typ":"JWT"}`) + "." + parts[1] + "." + parts[2], reason: ReasonAlgNotAllowed},
		{name: "ES256 signed with a P-384 key", a: as.pem, token: es256WithP384(t, k.ec384, claims("alice")), reason: ReasonBadSignature},
		{name: "ES384", a: as.pem, token: mint(t, jwt.SigningMethodES384, k.ec384, claims("alice"), ""), reason: ReasonAlgNotAllowed},
		{name: "ES256 by another key under a known kid", a: as.pem, token: mint(t, jwt.SigningMethodES256, k.ec2, claims("alice"), "ec-1"), reason: ReasonBadSignature},
		{name: "ES256 under the kid of the RSA key", a: as.pem, token: mint(t, jwt.SigningMethodES256, k.ec, claims("alice"), "rsa-1"), reason: ReasonUnknownKID},
		{name: "unknown kid in PEM", a: as.pem, token: mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice"), "nope"), reason: ReasonUnknownKID},
		{name: "unknown kid in JWKS", a: as.jwks, token: mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice"), "nope"), reason: ReasonUnknownKID},
		{name: "JWKS EC kid with an RSA token", a: as.jwks, token: mint(t, jwt.SigningMethodRS256, k.rsa2, claims("alice"), "j-ec"), reason: ReasonAlgNotAllowed},
		{name: "HS256 against JWKS only", a: as.jwks, token: mint(t, jwt.SigningMethodHS256, testSecret, claims("alice"), "j-rsa"), reason: ReasonAlgNotAllowed},
		{name: "kid not a string", a: as.pem, token: badKID, reason: ReasonMalformed},
		{name: "crit header", a: as.hs, token: critTok, reason: ReasonMalformed},
		{name: "expired", a: as.hs, token: hs(with(hsClaims, "iat", now.Add(-2*time.Hour).Unix(), "exp", now.Add(-time.Hour).Unix())), reason: ReasonExpired},
		{name: "not yet valid (nbf)", a: as.hs, token: hs(with(hsClaims, "nbf", now.Add(10*time.Minute).Unix())), reason: ReasonNotYetValid},
		{name: "issued in the future (iat)", a: as.hs, token: hs(with(hsClaims, "iat", now.Add(10*time.Minute).Unix())), reason: ReasonNotYetValid},
		{name: "exp too far without iat", a: as.hs, token: hs(with(hsClaims, "iat", nil, "exp", now.Add(48*time.Hour).Unix())), reason: ReasonLifetime},
		{name: "exp-iat over MaxLifetime", a: as.hs, token: hs(with(hsClaims, "iat", now.Add(-23*time.Hour).Unix(), "exp", now.Add(2*time.Hour).Unix())), reason: ReasonLifetime},
		{name: "exp a string", a: as.hs, token: hs(with(hsClaims, "exp", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))), reason: ReasonMalformed},
		{name: "nbf a string", a: as.hs, token: hs(with(hsClaims, "nbf", strconv.FormatInt(now.Add(-time.Minute).Unix(), 10))), reason: ReasonMalformed},
		{name: "iat a string", a: as.hs, token: hs(with(hsClaims, "iat", strconv.FormatInt(now.Add(-time.Minute).Unix(), 10))), reason: ReasonMalformed},
		{name: "exp null", a: as.hs, token: hs(with(hsClaims, "exp", json.RawMessage("null"))), reason: ReasonMissingClaim},
		{name: "missing exp", a: as.hs, token: hs(with(hsClaims, "exp", nil)), reason: ReasonMissingClaim},
		{name: "missing sub", a: as.hs, token: hs(with(hsClaims, "sub", nil)), reason: ReasonMissingClaim},
		{name: "sub with control characters", a: as.hs, token: hs(with(hsClaims, "sub", "al\nice")), reason: ReasonMalformed},
		{name: "rooms not an array", a: as.hs, token: hs(with(hsClaims, "rooms", "chat:*")), reason: ReasonMalformed},
		{name: "wrong aud", a: as.hs, token: hs(with(hsClaims, "aud", "other")), reason: ReasonBadAudience},
		{name: "missing aud", a: as.hs, token: hs(with(hsClaims, "aud", nil)), reason: ReasonBadAudience},
		{name: "wrong iss", a: as.hs, token: hs(with(hsClaims, "iss", "evil")), reason: ReasonBadIssuer},
		{name: "oversized token", a: as.hs, token: hs(with(hsClaims, "pad", strings.Repeat("x", DefaultMaxTokenBytes))), reason: ReasonTokenTooLarge},
		{name: "revoked jti", a: as.hs, token: hs(with(hsClaims, "jti", "revoked-jti")), reason: ReasonRevoked},
		{name: "revoked sub", a: as.hs, token: hs(with(hsClaims, "sub", "banned", "jti", "fresh")), reason: ReasonRevoked},
		{name: "query token when disabled", a: as.hsNoQuery, req: queryReq(mint(t, jwt.SigningMethodHS256, testSecret, claims("alice"), "")), reason: ReasonNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := tt.req
			if req == nil {
				req = bearerReq(tt.token)
			}
			id, err := tt.a.Authenticate(req)
			if id != nil {
				t.Fatalf("accepted as %q", id.UserID)
			}
			var ae *auth.Error
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *auth.Error", err)
			}
			if ae.Status != http.StatusUnauthorized || ae.Reason != tt.reason {
				t.Errorf("got %d %q, want 401 %q", ae.Status, ae.Reason, tt.reason)
			}
			if ae.Message == "" {
				t.Error("empty message")
			}
			for _, tok := range []string{tt.token, req.Header.Get("Authorization"), req.URL.RawQuery} {
				if tok != "" && len(tok) > 8 && (strings.Contains(ae.Message, tok) || strings.Contains(ae.Error(), tok)) {
					t.Errorf("message %q contains the token", ae.Message)
				}
			}
			for _, p := range strings.Split(tt.token, ".") {
				if len(p) > 8 && strings.Contains(ae.Error(), p) {
					t.Errorf("error %q contains a token segment", ae.Error())
				}
			}
		})
	}
}

func TestAuthenticateAccepts(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	as := setup(t)
	hsClaims := with(claims("alice"), "iss", "herald-test", "aud", []string{"x", "herald"}, "rooms", []string{"chat:*"}, "publish", []string{"chat:general"})
	hsTok := mint(t, jwt.SigningMethodHS256, testSecret, hsClaims, "")
	plain := mint(t, jwt.SigningMethodHS256, testSecret, claims("alice"), "")

	cookieReq := httptest.NewRequest(http.MethodGet, "/ws", nil)
	cookieReq.AddCookie(&http.Cookie{Name: "token", Value: hsTok})
	subReq := httptest.NewRequest(http.MethodGet, "/ws", nil)
	subReq.Header.Set("Sec-WebSocket-Protocol", "herald.v1, bearer."+hsTok)
	lowerBearer := httptest.NewRequest(http.MethodGet, "/ws", nil)
	lowerBearer.Header.Set("Authorization", "bearer "+hsTok)
	// The cookie wins over a bad header: sources are tried in order.
	cookieFirst := bearerReq("garbage")
	cookieFirst.AddCookie(&http.Cookie{Name: "token", Value: hsTok})

	tests := []struct {
		name   string
		a      *Authenticator
		req    *http.Request
		source string
		jti    string
	}{
		{name: "HS256 cookie", a: as.hs, req: cookieReq, source: SourceCookie, jti: "jti-alice"},
		{name: "HS256 header", a: as.hs, req: bearerReq(hsTok), source: SourceHeader, jti: "jti-alice"},
		{name: "HS256 lower-case bearer", a: as.hs, req: lowerBearer, source: SourceHeader, jti: "jti-alice"},
		{name: "HS256 subprotocol", a: as.hs, req: subReq, source: SourceSubprotocol, jti: "jti-alice"},
		{name: "HS256 query", a: as.hs, req: queryReq(hsTok), source: SourceQuery, jti: "jti-alice"},
		{name: "cookie before header", a: as.hs, req: cookieFirst, source: SourceCookie, jti: "jti-alice"},
		{name: "HS256 header with query disabled", a: as.hsNoQuery, req: bearerReq(plain), source: SourceHeader, jti: "jti-alice"},
		{name: "HS256 with a kid", a: as.mixed, req: bearerReq(mint(t, jwt.SigningMethodHS256, testSecret, claims("alice"), "any")), source: SourceHeader, jti: "jti-alice"},
		{name: "RS256 PEM by kid", a: as.pem, req: bearerReq(mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice"), "rsa-1")), source: SourceHeader, jti: "jti-alice"},
		{name: "RS256 PEM without kid", a: as.pem, req: bearerReq(mint(t, jwt.SigningMethodRS256, k.rsa, claims("alice"), "")), source: SourceHeader, jti: "jti-alice"},
		{name: "ES256 PEM", a: as.pem, req: bearerReq(mint(t, jwt.SigningMethodES256, k.ec, claims("alice"), "ec-1")), source: SourceHeader, jti: "jti-alice"},
		{name: "EdDSA PEM", a: as.pem, req: bearerReq(mint(t, jwt.SigningMethodEdDSA, k.ed, claims("alice"), "ed-1")), source: SourceHeader, jti: "jti-alice"},
		{name: "RS256 JWKS", a: as.jwks, req: bearerReq(mint(t, jwt.SigningMethodRS256, k.rsa2, claims("alice"), "j-rsa")), source: SourceHeader, jti: "jti-alice"},
		{name: "ES256 JWKS", a: as.jwks, req: bearerReq(mint(t, jwt.SigningMethodES256, k.ec2, claims("alice"), "j-ec")), source: SourceHeader, jti: "jti-alice"},
		{name: "ES256 JWKS without kid", a: as.jwks, req: bearerReq(mint(t, jwt.SigningMethodES256, k.ec2, claims("alice"), "")), source: SourceHeader, jti: "jti-alice"},
		{name: "exp just past within leeway", a: as.hsNoQuery, req: bearerReq(mint(t, jwt.SigningMethodHS256, testSecret, with(claims("alice"), "exp", time.Now().Add(-10*time.Second).Unix()), "")), source: SourceHeader, jti: "jti-alice"},
		{name: "no jti", a: as.hsNoQuery, req: bearerReq(mint(t, jwt.SigningMethodHS256, testSecret, with(claims("alice"), "jti", nil), "")), source: SourceHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, src := ExtractToken(tt.req, tt.a.cfg); src != tt.source {
				t.Errorf("source = %q, want %q", src, tt.source)
			}
			id, err := tt.a.Authenticate(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if id.UserID != "alice" || id.Anonymous || id.TokenID != tt.jti || id.ExpiresAt.IsZero() || id.IssuedAt.IsZero() ||
				id.Source != tt.source || id.Permissions == nil {
				t.Errorf("identity = %+v", id)
			}
			if !id.CanJoin("user:alice") || id.CanJoin("user:bob") || !id.CanJoin("public:lobby") || id.CanPublish("public:lobby") {
				t.Error("default room rights wrong")
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	t.Parallel()
	a := newAuth(t, Config{Secret: testSecret, PublicRoomPrefix: "open:"})
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	tok := mint(t, jwt.SigningMethodHS256, testSecret,
		with(claims("alice"), "exp", exp.Unix(), "rooms", []string{"chat:*", "news"}, "publish", []string{"chat:general"}), "")
	id, c, err := a.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	// ExpiresAt is when the token stops being accepted: exp + Leeway.
	if !id.ExpiresAt.Equal(exp.Add(DefaultLeeway)) || !c.ExpiresAt.Time.Equal(exp) || c.Subject != "alice" || len(c.Rooms) != 2 || len(c.Publish) != 1 {
		t.Fatalf("identity %+v claims %+v", id, c)
	}
	for room, want := range map[string][2]bool{ // join, publish
		"chat:general": {true, true},
		"chat:random":  {true, false},
		"news":         {true, false},
		"newsroom":     {false, false},
		"open:lobby":   {true, false},
		"public:lobby": {false, false},
		"user:alice":   {true, true},
		"user:bob":     {false, false},
	} {
		if got := [2]bool{id.CanJoin(room), id.CanPublish(room)}; got != want {
			t.Errorf("%s: join, publish = %v, want %v", room, got, want)
		}
	}
}

func TestNewRejectsConfig(t *testing.T) {
	t.Parallel()
	k := keysOnce()
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")})
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no key", cfg: Config{}},
		{name: "short secret", cfg: Config{Secret: []byte("short")}},
		{name: "negative leeway", cfg: Config{Secret: testSecret, Leeway: -time.Second}},
		{name: "missing PEM file", cfg: Config{PublicKeyFile: "/nonexistent/keys.pem"}},
		{name: "empty PEM file", cfg: Config{PublicKeyFile: writeFile(t, []byte("nothing here"))}},
		{name: "private key in PEM", cfg: Config{PublicKeyFile: writeFile(t, priv)}},
		{name: "P-384 key in PEM", cfg: Config{PublicKeyFile: writeFile(t, pemBlock(t, &k.ec384.PublicKey, ""))}},
		{name: "unreachable JWKS", cfg: Config{JWKSURL: "http://127.0.0.1:1/jwks.json"}},
		{name: "bad JWKS URL", cfg: Config{JWKSURL: "::not a url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if a, err := New(t.Context(), tt.cfg); err == nil {
				_ = a.Close()
				t.Fatal("New accepted the config")
			}
		})
	}
}
