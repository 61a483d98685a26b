// Package jwt authenticates WebSocket upgrade requests with JSON Web Tokens.
//
// An [Authenticator] implements [auth.Authenticator]: it finds the token on
// the upgrade request (cookie, Authorization header, Sec-WebSocket-Protocol,
// then the query string; see [ExtractToken]), verifies its signature against
// the configured keys, checks its registered claims, and turns it into an
// [auth.Identity] whose [Permissions] come from the token's "rooms" and
// "publish" claims.
//
// Keys can be an HMAC secret (HS256), a PEM file of public keys (RS256,
// ES256 on P-256, EdDSA on Ed25519) and a remote JWKS URL. Every key accepts
// exactly one algorithm, fixed by its type: a token can never choose how it
// is verified, so "alg: none" and RSA-public-key-as-HMAC-secret confusion
// fail by construction.
//
// Failures are *auth.Error values with Status 401, a Reason from the Reason*
// constants (a label fit for metrics) and a Message safe to show a client;
// neither ever contains the token.
//
// # Concurrency
//
// An Authenticator is safe for concurrent use once New returns. With a
// JWKSURL it owns one goroutine that refreshes the key set in the
// background; Close stops that goroutine and waits for it. Without a JWKSURL
// it starts no goroutine and Close is a no-op.
package jwt
