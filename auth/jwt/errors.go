package jwt

import (
	"errors"
	"net/http"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald/auth"
)

// Reasons set on the *auth.Error values Authenticate and Verify return. They
// are labels for logs and metrics and part of the API: do not rename them.
const (
	ReasonNoToken        = "no_token"        // no token in any source
	ReasonTokenTooLarge  = "token_too_large" // longer than MaxTokenBytes
	ReasonMalformed      = "malformed"       // not a parseable JWS, bad kid or subject
	ReasonAlgNotAllowed  = "alg_not_allowed" // alg none, unknown, or no key takes it
	ReasonUnknownKID     = "unknown_kid"     // kid not in the PEM file or JWKS
	ReasonBadSignature   = "bad_signature"   // signature does not verify
	ReasonExpired        = "expired"         // exp passed (beyond leeway)
	ReasonNotYetValid    = "not_yet_valid"   // nbf or iat in the future (beyond leeway)
	ReasonLifetime       = "lifetime_too_long"
	ReasonMissingClaim   = "missing_claim" // exp or sub absent
	ReasonBadAudience    = "bad_audience"
	ReasonBadIssuer      = "bad_issuer"
	ReasonRevoked        = "revoked"
	ReasonInvalidClaims  = "invalid_claims" // any other claim check failed
	reasonMessageDefault = "authentication failed"
)

// messages are what a client sees. They are fixed strings so that neither
// the token nor anything decoded from it reaches a client or a log.
var messages = map[string]string{
	ReasonNoToken:       "a token is required",
	ReasonTokenTooLarge: "token too large",
	ReasonMalformed:     "token is malformed",
	ReasonAlgNotAllowed: "token signing algorithm not allowed",
	ReasonUnknownKID:    "token signing key unknown",
	ReasonBadSignature:  "token signature invalid",
	ReasonExpired:       "token expired",
	ReasonNotYetValid:   "token not valid yet",
	ReasonLifetime:      "token lifetime too long",
	ReasonMissingClaim:  "token lacks a required claim",
	ReasonBadAudience:   "token audience not accepted",
	ReasonBadIssuer:     "token issuer not accepted",
	ReasonRevoked:       "token revoked",
	ReasonInvalidClaims: "token claims invalid",
}

func fail(reason string) *auth.Error {
	msg, ok := messages[reason]
	if !ok {
		msg = reasonMessageDefault
	}
	return &auth.Error{Status: http.StatusUnauthorized, Reason: reason, Message: msg}
}

// Causes a keyfunc reports; classify maps them to reasons.
var (
	errUnknownKID   = errors.New("jwt: unknown kid")
	errAlgNotForKey = errors.New("jwt: no key accepts this alg")
	errBadKID       = errors.New("jwt: kid is not a string")
	errCrit         = errors.New("jwt: crit header not supported")
)

// classify maps a golang-jwt parse error to a reason. tok is what the parser
// returned alongside err (possibly nil); allowed is the set of algorithms
// some configured key accepts.
func classify(err error, tok *jwt.Token, allowed map[string]bool) string {
	switch {
	case errors.Is(err, errBadKID), errors.Is(err, errCrit):
		return ReasonMalformed
	case errors.Is(err, errUnknownKID):
		return ReasonUnknownKID
	case errors.Is(err, errAlgNotForKey):
		return ReasonAlgNotAllowed
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ReasonMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// The alg is missing or not one golang-jwt knows.
		return ReasonAlgNotAllowed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// WithValidMethods reports an alg outside the set as a bad signature.
		if tok == nil || tok.Method == nil || !allowed[tok.Method.Alg()] {
			return ReasonAlgNotAllowed
		}
		return ReasonBadSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return ReasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ReasonNotYetValid
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ReasonMissingClaim
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ReasonBadAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ReasonBadIssuer
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return ReasonInvalidClaims
	}
	return ReasonMalformed
}
