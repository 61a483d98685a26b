package jwt

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/internal/id"
)

// SignOption adjusts a token made by Sign.
type SignOption func(*signOptions)

type signOptions struct {
	issuer   string
	audience string
	kid      string
	now      func() time.Time
}

// WithIssuer sets the token's "iss".
func WithIssuer(iss string) SignOption { return func(o *signOptions) { o.issuer = iss } }

// WithAudience sets the token's "aud".
func WithAudience(aud string) SignOption { return func(o *signOptions) { o.audience = aud } }

// WithKeyID sets the token's "kid" header.
func WithKeyID(kid string) SignOption { return func(o *signOptions) { o.kid = kid } }

// WithIssuedAt makes the token as if signed at t (its iat; exp is t+ttl).
func WithIssuedAt(t time.Time) SignOption {
	return func(o *signOptions) { o.now = func() time.Time { return t } }
}

// Sign makes an HS256 token for sub, valid for ttl from now, granting rooms
// and publish patterns (see Permissions), with a random jti. It is meant
// for development (the "herald token" command) and tests; production tokens
// come from an identity provider.
func Sign(secret []byte, sub string, rooms, publish []string, ttl time.Duration, opts ...SignOption) (string, error) {
	switch {
	case len(secret) < MinSecretBytes:
		return "", fmt.Errorf("jwt: secret is %d bytes, want at least %d", len(secret), MinSecretBytes)
	case sub == "" || !validSubject(sub):
		return "", errors.New("jwt: subject must be 1-256 bytes of UTF-8 without control characters")
	case ttl <= 0:
		return "", errors.New("jwt: ttl must be positive")
	}
	o := signOptions{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	now := o.now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   sub,
			Issuer:    o.issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        id.New(16),
		},
		Rooms:   rooms,
		Publish: publish,
	}
	if o.audience != "" {
		c.Audience = jwt.ClaimStrings{o.audience}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	if o.kid != "" {
		t.Header["kid"] = o.kid
	}
	return t.SignedString(secret)
}
