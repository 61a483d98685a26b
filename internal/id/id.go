// Package id makes the random identifiers Herald hands out (connection,
// session and correlation ids) and cheap per-node message ids.
package id

import (
	"crypto/rand"
	"encoding/base32"
	"strconv"
	"sync"
	"sync/atomic"
)

var encoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// maxInline is the largest n New serves from its buffers; larger ids
// read crypto/rand directly.
const maxInline = 32

// randBuf is random bytes read ahead from crypto/rand. A connection
// takes three ids (connection, session, resume token): one read of 512
// bytes serves about twenty connections, where a read each cost a
// getrandom call and, on a new goroutine's small stack, a stack copy.
// Bytes handed out are zeroed, so a buffer holds only unused ones.
type randBuf struct {
	b    [512]byte
	used int // b[:used] has been handed out
}

var randBufs = sync.Pool{New: func() any { return &randBuf{used: len(randBuf{}.b)} }}

// New returns a random lowercase id encoding n random bytes (n*8/5
// characters, rounded up), from crypto/rand.
func New(n int) string {
	if n > maxInline {
		b := make([]byte, n)
		_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
		return encoding.EncodeToString(b)
	}
	rb := randBufs.Get().(*randBuf)
	if len(rb.b)-rb.used < n {
		_, _ = rand.Read(rb.b[:])
		rb.used = 0
	}
	raw := rb.b[rb.used : rb.used+n]
	var out [(maxInline*8 + 4) / 5]byte
	m := encoding.EncodedLen(n)
	encoding.Encode(out[:m], raw)
	clear(raw)
	rb.used += n
	randBufs.Put(rb)
	return string(out[:m])
}

// NewPair returns two ids as New(n) returns them, in one allocation:
// they share one string's bytes (a new session's id and resume token,
// which live as long as each other).
func NewPair(n int) (string, string) {
	if 2*n > maxInline {
		return New(n), New(n)
	}
	m := encoding.EncodedLen(n)
	var out [2 * ((maxInline/2*8 + 4) / 5)]byte
	rb := randBufs.Get().(*randBuf)
	for i := range 2 {
		if len(rb.b)-rb.used < n {
			_, _ = rand.Read(rb.b[:])
			rb.used = 0
		}
		raw := rb.b[rb.used : rb.used+n]
		encoding.Encode(out[i*m:(i+1)*m], raw)
		clear(raw)
		rb.used += n
	}
	randBufs.Put(rb)
	both := string(out[:2*m])
	return both[:m], both[m:]
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
