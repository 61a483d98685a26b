package jwt

import (
	"log/slog"
	"time"
)

// Defaults used for zero Config fields.
const (
	DefaultLeeway              = 30 * time.Second
	DefaultMaxLifetime         = 24 * time.Hour
	DefaultCookieName          = "token"
	DefaultMaxTokenBytes       = 8192
	DefaultPublicRoomPrefix    = "public:"
	DefaultJWKSRefreshInterval = time.Hour
)

// MinSecretBytes is the shortest HS256 secret New and Sign accept: HS256 is
// only as strong as its key, and RFC 7518 §3.2 asks for at least 256 bits.
const MinSecretBytes = 32

// jwksUnknownKIDInterval is the least time between two JWKS fetches caused
// by tokens with a kid the cached set lacks. Tokens carrying random kids
// cannot turn the server into an amplifier against the identity provider.
const jwksUnknownKIDInterval = time.Minute

// jwksWaitMax bounds how long a handshake with an unknown kid may wait for
// such a fetch (the rate limiter fails at once when its next slot is later).
const jwksWaitMax = 5 * time.Second

// jwksHTTPTimeout bounds one JWKS request.
const jwksHTTPTimeout = 10 * time.Second

// Config configures an Authenticator. The zero value is valid except that
// at least one of Secret, PublicKeyFile and JWKSURL must be set; every other
// field documents the default it gets when left zero.
type Config struct {
	// Secret is the HMAC key for HS256 tokens, at least MinSecretBytes long.
	// It verifies HS256 only. Empty: HS256 tokens are refused.
	Secret []byte

	// PublicKeyFile is a PEM file of one or more public keys ("PUBLIC KEY",
	// "RSA PUBLIC KEY" or "CERTIFICATE" blocks). An RSA key (2048 bits or
	// more) verifies RS256 only, an ECDSA P-256 key ES256 only, an Ed25519
	// key EdDSA only. A block may carry a "kid: <id>" PEM header. A token
	// whose kid names a key is checked against that key alone; a token
	// without kid against every key of its algorithm; a token with another
	// kid against the JWKS, then against the keys of its algorithm that have
	// no kid.
	PublicKeyFile string

	// JWKSURL is a JSON Web Key Set fetched once by New (which fails if the
	// fetch does) and then refreshed every JWKSRefreshInterval. A token whose
	// kid is missing from the cached set triggers a refetch, at most once a
	// minute. Only asymmetric keys (RSA, EC P-256, Ed25519) are used from it.
	JWKSURL string
	// JWKSRefreshInterval is how often the JWKS is refetched. Default 1h.
	JWKSRefreshInterval time.Duration

	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audience, when set, must be one of the token's "aud" values.
	Audience string

	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 30s.
	Leeway time.Duration
	// MaxLifetime caps how long a token may live: exp-iat (when iat is
	// present) and exp-now must not exceed it. Default 24h.
	MaxLifetime time.Duration

	// CookieName is the cookie the token is read from. Default "token".
	CookieName string
	// DisableQueryToken stops reading the token from ?token=. Query strings
	// end up in access logs and browser history; prefer the cookie or the
	// subprotocol where clients allow it.
	DisableQueryToken bool
	// MaxTokenBytes is the largest token considered; longer ones are refused
	// before any parsing. Default 8192.
	MaxTokenBytes int

	// PublicRoomPrefix marks rooms every authenticated user may join (but
	// not publish to unless a "publish" pattern allows it). Default "public:".
	PublicRoomPrefix string

	// Revocations, when set, is asked about every otherwise valid token.
	Revocations RevocationChecker

	// Logger receives JWKS refresh failures. Default slog.Default().
	Logger *slog.Logger
}

// RevocationChecker tells whether a token was revoked, by id (jti, empty
// when the token has none), by subject, or by subject for tokens issued
// before some instant (iat is zero when the token has none). It is called on
// every handshake, so it must be fast and safe for concurrent use.
type RevocationChecker interface {
	IsRevoked(jti, sub string, iat time.Time) bool
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if cfg.MaxTokenBytes == 0 {
		cfg.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if cfg.PublicRoomPrefix == "" {
		cfg.PublicRoomPrefix = DefaultPublicRoomPrefix
	}
	if cfg.JWKSRefreshInterval == 0 {
		cfg.JWKSRefreshInterval = DefaultJWKSRefreshInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}
