package jwt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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
// header into a map, the claims with reflection, then Verify decodes the
// claims a second time for timeClaimsAreNumbers, and a new HMAC is set
// up per token. Here the header is compared with the few spellings that
// mean exactly that, the HMAC states are pooled, and the claims are
// decoded once, by hand (decodeClaims), into a value without pointers
// that the caller keeps on its stack.
//
// It only ever accepts: any token it does not recognise or cannot accept
// goes to the parser, whose answer (and error) is final. What it accepts,
// the parser accepts with the same claims: the same strict base64, the
// same keys tried, the claims json.Unmarshal would decode into Claims
// (decodeClaims takes only what it decodes exactly so), the time claims
// numbers, and the checks of the parser's jwt.Validator (see valid).
type hsFast struct {
	keys   []*sync.Pool // one pool of HMAC states per HS256 key
	leeway time.Duration
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

// newHSFast returns the fast path for keys (the static HS256 keys) under
// the parser's claims rules with leeway (exp required, iat checked), or
// nil when there are none.
func newHSFast(keys []key, leeway time.Duration) *hsFast {
	f := &hsFast{leeway: leeway}
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

// maxFastPayload bounds the decoded claims the fast path takes; larger
// tokens go to the parser.
const maxFastPayload = 1024

// fastBufs is the scratch space of one verification: the token's signed
// part and signature (a hash.Hash and base64 take byte slices, and a
// conversion of a string longer than 32 bytes would allocate), the
// decoded claims and the signatures.
type fastBufs struct {
	token   [(maxFastPayload*4+2)/3 + 128]byte
	payload [maxFastPayload]byte
	sum     [sha256.Size]byte
	want    [sha256.Size]byte
}

var fastBufPool = sync.Pool{New: func() any { return new(fastBufs) }}

// verify fills tc with the claims of token and reports true when it
// takes the fast path and passes every check the parser makes at now.
func (f *hsFast) verify(token string, tc *tokenClaims, now time.Time) bool {
	h, rest, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 || !plainHeader(h) {
		return false
	}
	// An HS256 signature is 32 bytes: 43 base64url characters.
	if len(sig) != 43 || strictRaw.DecodedLen(len(p)) > maxFastPayload {
		return false
	}
	b := fastBufPool.Get().(*fastBufs)
	defer fastBufPool.Put(b)
	tok := b.token[:copy(b.token[:], token)]
	if len(tok) != len(token) {
		return false
	}
	signed, rawSig := tok[:len(h)+1+len(p)], tok[len(h)+1+len(p)+1:]
	if n, err := strictRaw.Decode(b.want[:], rawSig); err != nil || n != len(b.want) {
		return false
	}
	match := false
	for _, pool := range f.keys {
		mac := pool.Get().(hash.Hash)
		mac.Reset()
		_, _ = mac.Write(signed)
		sum := mac.Sum(b.sum[:0])
		pool.Put(mac)
		if hmac.Equal(sum, b.want[:]) {
			match = true
			break
		}
	}
	if !match {
		return false
	}
	n, err := strictRaw.Decode(b.payload[:], tok[len(h)+1:len(h)+1+len(p)])
	if err != nil {
		return false
	}
	var raw rawClaims
	if !decodeClaims(b.payload[:n], &raw) {
		return false
	}
	*tc = tokenClaims{iss: raw.iss, sub: raw.sub, jti: raw.jti, aud: raw.aud, rooms: raw.rooms, publish: raw.publish}
	for _, d := range []struct {
		raw []byte
		to  *time.Time
		has *bool
	}{{raw.exp, &tc.exp, &tc.hasExp}, {raw.nbf, &tc.nbf, &tc.hasNbf}, {raw.iat, &tc.iat, &tc.hasIat}} {
		if d.raw == nil {
			continue // absent
		}
		// What jwt.NumericDate.UnmarshalJSON does with a number literal
		// (json.Number's Float64, then seconds and their fraction,
		// truncated to jwt.TimePrecision), without its allocations.
		f, err := strconv.ParseFloat(string(d.raw), 64)
		if err != nil {
			return false
		}
		round, frac := math.Modf(f)
		*d.to, *d.has = time.Unix(int64(round), int64(frac*1e9)).Truncate(jwt.TimePrecision), true
	}
	return f.valid(tc, now)
}

// valid makes the checks of the parser's jwt.Validator (built with
// WithExpirationRequired, WithIssuedAt and WithLeeway(f.leeway); it
// expects no audience, issuer or subject) at now, without the
// allocation of its error list: exp present and after now (less the
// leeway), nbf and iat, where present, not after now (plus the leeway).
func (f *hsFast) valid(tc *tokenClaims, now time.Time) bool {
	switch {
	case !tc.hasExp, !now.Before(tc.exp.Add(f.leeway)):
		return false
	case tc.hasNbf && now.Before(tc.nbf.Add(-f.leeway)):
		return false
	case tc.hasIat && now.Before(tc.iat.Add(-f.leeway)):
		return false
	}
	return true
}

func plainHeader(h string) bool {
	for _, p := range plainHS256Headers {
		if h == p {
			return true
		}
	}
	return false
}
