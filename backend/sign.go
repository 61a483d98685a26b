package backend

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Headers of a backend request.
const (
	// HeaderSignature carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	HeaderSignature = "X-Herald-Signature"
	// HeaderHook names the hook (connect, join, publish, emit, events).
	HeaderHook = "X-Herald-Hook"
	// HeaderRequestID carries the connection's correlation id.
	HeaderRequestID = "X-Request-ID"
)

// Sign returns the X-Herald-Signature value of body sent at t: the HMAC-
// SHA256, keyed with secret, of "<unix seconds>.<body>".
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors Verify returns.
var (
	ErrBadSignature = errors.New("backend: signature does not match")
	ErrStale        = errors.New("backend: signature timestamp outside the allowed skew")
)

// Verify checks an X-Herald-Signature value for body, as a Go backend
// would: the MAC must match and the timestamp be within maxSkew of now
// (which stops replays of old requests).
func Verify(secret, body []byte, header string, now time.Time, maxSkew time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, mac(secret, ts, body)) {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return ErrStale
	}
	return nil
}
