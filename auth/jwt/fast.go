package jwt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// hsFast verifies the common HS256 token (a plain header: alg HS256,
// perhaps typ JWT, no kid, no crit) for a fraction of the parser's cost,
// which is most of a connect's work in user space: the parser decodes the
// header into a map, the claims, then Verify decodes the claims a second
// time for timeClaimsAreNumbers, and a new HMAC is set up per token.
// Here the header is compared with the few spellings that mean exactly
// that, the HMAC states are pooled, and the claims are decoded once.
//
// It only ever accepts: any token it does not recognise or cannot accept
// goes to the parser, whose answer (and error) is final. What it accepts,
// the parser accepts with the same claims: the same strict base64, the
// same keys tried, the same json.Unmarshal into Claims, the same
// jwt.Validator, and the time claims checked to be numbers first.
type hsFast struct {
	keys      []*sync.Pool // one pool of HMAC states per HS256 key
	validator *jwt.Validator
}

// plainHS256Headers are the base64url header segments hsFast takes: the
// JSON objects {"alg":"HS256","typ":"JWT"}, {"typ":"JWT","alg":"HS256"}
// and {"alg":"HS256"}, as libraries write them.
var plainHS256Headers = func() []string {
	var out []string
	for _, h := range []string{`{"alg":"HS256","typ":"JWT"}`, `{"typ":"JWT","alg":"HS256"}`, `{"alg":"HS256"}`} {
		out = append(out, base64.RawURLEncoding.EncodeToString([]byte(h)))
	}
	return out
}()

var strictRaw = base64.RawURLEncoding.Strict()

// newHSFast returns the fast path for keys (the static HS256 keys), or
// nil when there are none.
func newHSFast(keys []key, opts ...jwt.ParserOption) *hsFast {
	f := &hsFast{validator: jwt.NewValidator(opts...)}
	for _, k := range keys {
		secret, ok := k.key.([]byte)
		if !ok || k.kid != "" {
			// A kid changes which keys the parser tries (keyFor): such
			// configurations take the parser's path.
			return nil
		}
		f.keys = append(f.keys, &sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }})
	}
	if len(f.keys) == 0 {
		return nil
	}
	return f
}

// fastBufs is the scratch space of one verification.
type fastBufs struct {
	payload [1024]byte
	sum     [sha256.Size]byte
}

var fastBufPool = sync.Pool{New: func() any { return new(fastBufs) }}

// verify returns the claims of token when it takes the fast path and
// passes every check the parser makes, else nil.
func (f *hsFast) verify(token string) *Claims {
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return nil
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 || !plainHeader(h) {
		return nil
	}
	// An HS256 signature is 32 bytes: 43 base64url characters.
	if len(sig) != 43 || strictRaw.DecodedLen(len(p)) > len(fastBufs{}.payload) {
		return nil
	}
	b := fastBufPool.Get().(*fastBufs)
	defer fastBufPool.Put(b)
	var want [sha256.Size]byte
	if n, err := strictRaw.Decode(want[:], []byte(sig)); err != nil || n != len(want) {
		return nil
	}
	signed := token[:len(h)+1+len(p)]
	match := false
	for _, pool := range f.keys {
		mac := pool.Get().(hash.Hash)
		mac.Reset()
		_, _ = mac.Write([]byte(signed))
		sum := mac.Sum(b.sum[:0])
		pool.Put(mac)
		if hmac.Equal(sum, want[:]) {
			match = true
			break
		}
	}
	if !match {
		return nil
	}
	n, err := strictRaw.Decode(b.payload[:], []byte(p))
	if err != nil {
		return nil
	}
	var fc fastClaims
	if json.Unmarshal(b.payload[:n], &fc) != nil {
		return nil
	}
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: fc.Iss, Subject: fc.Sub, Audience: fc.Aud, ID: fc.Jti},
		Rooms:            fc.Rooms,
		Publish:          fc.Publish,
	}
	var dates [3]jwt.NumericDate
	for i, d := range []struct {
		raw json.RawMessage
		to  **jwt.NumericDate
	}{{fc.Exp, &c.ExpiresAt}, {fc.Nbf, &c.NotBefore}, {fc.Iat, &c.IssuedAt}} {
		if len(d.raw) == 0 {
			continue // absent
		}
		// A number, as timeClaimsAreNumbers wants (null, a string: the
		// parser's path, which refuses them).
		if v := d.raw[0]; v != '-' && (v < '0' || v > '9') {
			return nil
		}
		// What jwt.NumericDate.UnmarshalJSON does with a number literal
		// (json.Number's Float64, then seconds and their fraction,
		// truncated to jwt.TimePrecision), without its allocations.
		f, err := strconv.ParseFloat(string(d.raw), 64)
		if err != nil {
			return nil
		}
		round, frac := math.Modf(f)
		dates[i] = jwt.NumericDate{Time: time.Unix(int64(round), int64(frac*1e9)).Truncate(jwt.TimePrecision)}
		*d.to = &dates[i]
	}
	if f.validator.Validate(c) != nil {
		return nil
	}
	return c
}

// fastClaims is Claims as json.Unmarshal fills it (the same keys, the
// same types), with the time claims kept as they are spelled.
type fastClaims struct {
	Iss     string           `json:"iss,omitempty"`
	Sub     string           `json:"sub,omitempty"`
	Aud     jwt.ClaimStrings `json:"aud,omitempty"`
	Exp     json.RawMessage  `json:"exp,omitempty"`
	Nbf     json.RawMessage  `json:"nbf,omitempty"`
	Iat     json.RawMessage  `json:"iat,omitempty"`
	Jti     string           `json:"jti,omitempty"`
	Rooms   []string         `json:"rooms,omitempty"`
	Publish []string         `json:"publish,omitempty"`
}

func plainHeader(h string) bool {
	for _, p := range plainHS256Headers {
		if h == p {
			return true
		}
	}
	return false
}
