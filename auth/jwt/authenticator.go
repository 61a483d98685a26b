package jwt

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/auth"
)

// maxSubjectBytes bounds "sub": it becomes the user id, a room name and a
// log attribute.
const maxSubjectBytes = 256

// Claims are the claims Herald reads from a token: the registered ones and
// the room patterns of [Permissions].
type Claims struct {
	jwt.RegisteredClaims
	// Rooms are the patterns of rooms the subject may join.
	Rooms []string `json:"rooms,omitempty"`
	// Publish are the patterns of rooms the subject may publish to.
	Publish []string `json:"publish,omitempty"`
}

// Authenticator verifies JWTs on upgrade requests. Build it with New.
type Authenticator struct {
	cfg       Config
	parser    *jwt.Parser
	fast      *hsFast          // nil without static HS256 keys, or with a kid on one
	keys      map[string][]key // static keys by the algorithm they verify
	allowed   map[string]bool  // every algorithm some key verifies
	jwks      *jwks            // nil without JWKSURL
	closeOnce sync.Once
}

var (
	_ auth.Authenticator = (*Authenticator)(nil)
	_ auth.Refresher     = (*Authenticator)(nil)
)

// New checks cfg, loads its keys and, with a JWKSURL, fetches the key set
// under ctx (which bounds only that first fetch) and starts refreshing it
// until Close.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	cfg = cfg.withDefaults()
	switch {
	case cfg.Leeway < 0, cfg.MaxLifetime < 0, cfg.MaxTokenBytes < 0, cfg.JWKSRefreshInterval < 0:
		return nil, errors.New("jwt: negative durations and sizes are not allowed")
	case len(cfg.Secret) == 0 && cfg.PublicKeyFile == "" && cfg.JWKSURL == "":
		return nil, errors.New("jwt: one of Secret, PublicKeyFile or JWKSURL is required")
	case len(cfg.Secret) > 0 && len(cfg.Secret) < MinSecretBytes:
		return nil, fmt.Errorf("jwt: Secret is %d bytes, want at least %d", len(cfg.Secret), MinSecretBytes)
	}
	a := &Authenticator{
		cfg:     cfg,
		keys:    make(map[string][]key),
		allowed: make(map[string]bool),
	}
	if len(cfg.Secret) > 0 {
		secret := append([]byte(nil), cfg.Secret...)
		a.add(key{alg: algHS256, key: secret})
	}
	if cfg.PublicKeyFile != "" {
		keys, err := loadPEM(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("jwt: PublicKeyFile %s: %w", cfg.PublicKeyFile, err)
		}
		for _, k := range keys {
			a.add(k)
		}
	}
	if cfg.JWKSURL != "" {
		for _, alg := range []string{algRS256, algES256, algEdDSA} {
			a.allowed[alg] = true
		}
	}
	methods := make([]string, 0, len(a.allowed))
	for alg := range a.allowed {
		methods = append(methods, alg)
	}
	// The claims rules, which the fast path's validator shares.
	validation := []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(cfg.Leeway)}
	a.parser = jwt.NewParser(append(validation, jwt.WithValidMethods(methods), jwt.WithStrictDecoding())...)
	a.fast = newHSFast(a.keys[algHS256], cfg.Leeway)
	if cfg.JWKSURL != "" {
		j, err := newJWKS(ctx, cfg.JWKSURL, cfg.JWKSRefreshInterval, cfg.Logger)
		if err != nil {
			return nil, err
		}
		a.jwks = j
	}
	return a, nil
}

func (a *Authenticator) add(k key) {
	a.keys[k.alg] = append(a.keys[k.alg], k)
	a.allowed[k.alg] = true
}

// Close stops the JWKS refresh and waits for it. Tokens keep verifying
// against the keys already fetched. Close is idempotent and always
// returns nil.
func (a *Authenticator) Close() error {
	a.closeOnce.Do(func() {
		if a.jwks != nil {
			a.jwks.close()
		}
	})
	return nil
}

// Authenticate implements auth.Authenticator: it verifies the token
// ExtractToken finds on r and records its source in Identity.Source.
// Errors are *auth.Error.
func (a *Authenticator) Authenticate(r *http.Request) (*auth.Identity, error) {
	tok, src := ExtractToken(r, a.cfg)
	if tok == "" {
		return nil, fail(ReasonNoToken)
	}
	id, err := a.verify(tok, nil)
	if err != nil {
		return nil, err
	}
	id.Source = src
	return id, nil
}

// Refresh implements auth.Refresher: it verifies a token sent on a live
// connection. Identity.Source is left empty; the connection keeps the
// source it was authenticated with. Errors are *auth.Error.
func (a *Authenticator) Refresh(token string) (*auth.Identity, error) {
	return a.verify(token, nil)
}

// Verify checks token and returns the identity it grants and its claims.
// It serves the handshake and in-band token refresh alike. Errors are
// *auth.Error.
func (a *Authenticator) Verify(token string) (*auth.Identity, *Claims, error) {
	c := new(Claims)
	id, err := a.verify(token, c)
	if err != nil {
		return nil, nil, err
	}
	return id, c, nil
}

// tokenClaims are the claims Verify reads, without pointers: the
// handshake's stay on its stack, and only Verify's caller gets a Claims.
type tokenClaims struct {
	iss, sub, jti          string
	aud, rooms, publish    []string
	exp, nbf, iat          time.Time
	hasExp, hasNbf, hasIat bool
}

// tokenClaimsOf returns the claims of c, which the parser filled.
func tokenClaimsOf(c *Claims) tokenClaims {
	tc := tokenClaims{iss: c.Issuer, sub: c.Subject, jti: c.ID, aud: c.Audience, rooms: c.Rooms, publish: c.Publish}
	for _, d := range []struct {
		from *jwt.NumericDate
		to   *time.Time
		has  *bool
	}{{c.ExpiresAt, &tc.exp, &tc.hasExp}, {c.NotBefore, &tc.nbf, &tc.hasNbf}, {c.IssuedAt, &tc.iat, &tc.hasIat}} {
		if d.from != nil {
			*d.to, *d.has = d.from.Time, true
		}
	}
	return tc
}

// fill sets c to tc, as the parser would have filled it.
func (tc *tokenClaims) fill(c *Claims) {
	*c = Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: tc.iss, Subject: tc.sub, Audience: tc.aud, ID: tc.jti},
		Rooms:            tc.rooms,
		Publish:          tc.publish,
	}
	for _, d := range []struct {
		from time.Time
		has  bool
		to   **jwt.NumericDate
	}{{tc.exp, tc.hasExp, &c.ExpiresAt}, {tc.nbf, tc.hasNbf, &c.NotBefore}, {tc.iat, tc.hasIat, &c.IssuedAt}} {
		if d.has {
			*d.to = &jwt.NumericDate{Time: d.from}
		}
	}
}

// grant is an identity and its permissions in one allocation.
type grant struct {
	id   auth.Identity
	perm Permissions
}

// verify checks token and returns the identity it grants; with claims
// non-nil, it fills them in too.
func (a *Authenticator) verify(token string, claims *Claims) (*auth.Identity, error) {
	if token == "" {
		return nil, fail(ReasonNoToken)
	}
	if len(token) > a.cfg.MaxTokenBytes {
		return nil, fail(ReasonTokenTooLarge)
	}
	now := time.Now() // one clock read for the checks of the fast path and check
	var tc tokenClaims
	if a.fast == nil || !a.fast.verify(token, &tc, now) {
		// Not the common HS256 shape, or refused: the parser decides,
		// and says why.
		c := claims
		if c == nil {
			c = new(Claims)
		}
		tok, err := a.parser.ParseWithClaims(token, c, a.keyFor)
		if err != nil {
			return nil, fail(classify(err, tok, a.allowed))
		}
		if !timeClaimsAreNumbers(token) {
			return nil, fail(ReasonMalformed)
		}
		tc = tokenClaimsOf(c)
	} else if claims != nil {
		tc.fill(claims)
	}
	if reason := a.check(&tc, now); reason != "" {
		return nil, fail(reason)
	}
	g := &grant{
		id: auth.Identity{
			IssuedAt: tc.iat,
			UserID:   tc.sub,
			TokenID:  tc.jti,
			// The upgrade accepts the token until exp + Leeway; an open
			// connection is held to the same moment, or a reconnect
			// within the leeway would be accepted and closed at once,
			// over and over.
			ExpiresAt: tc.exp.Add(a.cfg.Leeway),
		},
		perm: Permissions{
			Subject:      tc.sub,
			Rooms:        tc.rooms,
			Publish:      tc.publish,
			PublicPrefix: a.cfg.PublicRoomPrefix,
		},
	}
	g.id.Permissions = &g.perm
	return &g.id, nil
}

// timeClaims are exp, nbf and iat as the token spells them.
type timeClaims struct {
	Exp json.RawMessage `json:"exp"`
	Nbf json.RawMessage `json:"nbf"`
	Iat json.RawMessage `json:"iat"`
}

// timeClaimsAreNumbers reports whether the time claims of token, whose
// signature has been verified, are JSON numbers where present: the parser
// also takes a string holding a number ("exp":"9999999999"), which RFC
// 7519 (NumericDate) does not allow.
func timeClaimsAreNumbers(token string) bool {
	_, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return false
	}
	var tc timeClaims
	if err := json.Unmarshal(b, &tc); err != nil {
		return false
	}
	for _, v := range []json.RawMessage{tc.Exp, tc.Nbf, tc.Iat} {
		if v != nil && (len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9'))) {
			return false
		}
	}
	return true
}

// check applies what the parser does not: sub, iss, aud, lifetime and
// revocation. The signature, exp, nbf and iat have been checked. (iss and
// aud are checked here so that a missing one reads as bad_issuer or
// bad_audience rather than missing_claim.) now is the time of the check.
func (a *Authenticator) check(c *tokenClaims, now time.Time) string {
	switch {
	case c.sub == "":
		return ReasonMissingClaim
	case !validSubject(c.sub):
		return ReasonMalformed
	case a.cfg.Issuer != "" && c.iss != a.cfg.Issuer:
		return ReasonBadIssuer
	case a.cfg.Audience != "" && !slices.Contains(c.aud, a.cfg.Audience):
		return ReasonBadAudience
	}
	// iat is zero when the token has none.
	if !c.iat.IsZero() && c.exp.Sub(c.iat) > a.cfg.MaxLifetime {
		return ReasonLifetime
	}
	if c.exp.Sub(now) > a.cfg.MaxLifetime+a.cfg.Leeway {
		return ReasonLifetime
	}
	if a.cfg.Revocations != nil && a.cfg.Revocations.IsRevoked(c.jti, c.sub, c.iat) {
		return ReasonRevoked
	}
	return ""
}

// validSubject refuses subjects that would be unsafe as a user id, room
// name or log value: too long, invalid UTF-8 or with control characters.
func validSubject(s string) bool {
	if len(s) > maxSubjectBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// keyFor is the jwt.Keyfunc. The parser has already refused an alg no key
// accepts; keyFor returns only keys pinned to tok's alg. A token without kid
// is checked against every static key of its alg. A token with a kid is
// checked against the static key of that kid, else the JWKS key of that
// kid, else the static keys that have no kid.
func (a *Authenticator) keyFor(tok *jwt.Token) (any, error) {
	if _, ok := tok.Header["crit"]; ok {
		// RFC 7515 §4.1.11: extensions we do not implement must fail.
		return nil, errCrit
	}
	alg := tok.Method.Alg()
	kid := ""
	if v, ok := tok.Header["kid"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, errBadKID
		}
		kid = s
	}
	keys := a.keys[alg]
	if kid == "" {
		if k := keySet(keys, func(key) bool { return true }); k != nil {
			return k, nil
		}
		if a.jwks != nil && alg != algHS256 {
			return a.jwks.keys(tok)
		}
		return nil, errAlgNotForKey
	}
	for _, k := range keys {
		if k.kid == kid {
			return k.key, nil
		}
	}
	unlabelled := keySet(keys, func(k key) bool { return k.kid == "" })
	if a.jwks != nil && alg != algHS256 {
		k, err := a.jwks.keys(tok)
		if err == nil || unlabelled == nil || !errors.Is(err, errUnknownKID) {
			return k, err
		}
	}
	if unlabelled != nil {
		return unlabelled, nil
	}
	return nil, errUnknownKID
}

// keySet returns the keys that pass keep: nil, one key, or a
// jwt.VerificationKeySet the parser tries in turn.
func keySet(keys []key, keep func(key) bool) any {
	if len(keys) == 1 && keep(keys[0]) {
		return keys[0].key
	}
	var set jwt.VerificationKeySet
	for _, k := range keys {
		if keep(k) {
			set.Keys = append(set.Keys, k.key)
		}
	}
	switch len(set.Keys) {
	case 0:
		return nil
	case 1:
		return set.Keys[0]
	}
	return set
}
