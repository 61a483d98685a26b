// Package id makes the random identifiers Herald hands out (connection,
// session and correlation ids) and cheap per-node message ids.
package id

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"sync/atomic"
)

var encoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// New returns a random lowercase id encoding n random bytes (n*8/5 characters).
func New(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
	return encoding.EncodeToString(b)
}

// APIKey returns a new random server API key: "hk_" and 32 characters.
func APIKey() string { return "hk_" + New(20) }

// Sequence makes message ids unique across a cluster: a random node prefix
// and a counter, so making one costs no syscall.
type Sequence struct {
	prefix string
	n      atomic.Uint64
}

// NewSequence returns a Sequence with a fresh random prefix.
func NewSequence() *Sequence { return &Sequence{prefix: New(5) + "-"} }

// Next returns the next id.
func (s *Sequence) Next() string {
	return s.prefix + strconv.FormatUint(s.n.Add(1), 36)
}
