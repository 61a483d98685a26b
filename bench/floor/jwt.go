package floor

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"time"
)

// maxToken bounds a bearer token the floor verifies.
const maxToken = 4 << 10

// verifier checks HS256 JWTs as Herald's auth/jwt does for the churn
// scenario's tokens (signature, alg, exp and nbf, a subject), with as
// little work as that takes: one HMAC state reused for every token and
// scratch buffers kept between calls. One goroutine only (the loop).
type verifier struct {
	mac     hash.Hash
	sum     []byte
	scratch []byte
}

func newVerifier(secret []byte) *verifier {
	return &verifier{mac: hmac.New(sha256.New, secret), sum: make([]byte, 0, sha256.Size), scratch: make([]byte, 0, 1024)}
}

var errBadToken = errors.New("floor: bad token")

// claims are the claims the floor reads.
type claims struct {
	Sub string   `json:"sub"`
	Exp *float64 `json:"exp"`
	Nbf *float64 `json:"nbf"`
}

// verify checks an "Authorization: Bearer" token and returns its subject.
func (v *verifier) verify(token []byte, now time.Time) (string, error) {
	if len(token) > maxToken {
		return "", errBadToken
	}
	h, rest, ok := bytes.Cut(token, []byte("."))
	if !ok {
		return "", errBadToken
	}
	p, sig, ok := bytes.Cut(rest, []byte("."))
	if !ok {
		return "", errBadToken
	}
	// The signature first: nothing of an unsigned token is decoded.
	v.mac.Reset()
	v.mac.Write(token[:len(h)+1+len(p)])
	mac := v.mac.Sum(v.sum[:0])
	got, err := base64.RawURLEncoding.AppendDecode(v.scratch[:0], sig)
	if err != nil || !hmac.Equal(got, mac) {
		return "", errBadToken
	}
	hdr, err := base64.RawURLEncoding.AppendDecode(v.scratch[:0], h)
	if err != nil {
		return "", errBadToken
	}
	var head struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(hdr, &head) != nil || head.Alg != "HS256" {
		return "", errBadToken
	}
	body, err := base64.RawURLEncoding.AppendDecode(hdr[:0], p)
	if err != nil {
		return "", errBadToken
	}
	v.scratch = body[:0]
	var c claims
	if json.Unmarshal(body, &c) != nil || c.Sub == "" || c.Exp == nil {
		return "", errBadToken
	}
	t := float64(now.Unix())
	if *c.Exp <= t || (c.Nbf != nil && *c.Nbf > t) {
		return "", errBadToken
	}
	return c.Sub, nil
}
