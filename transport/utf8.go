package transport

import "unicode/utf8"

// utf8Check validates text that arrives in pieces (fragments, or the
// parts of one frame that have come so far), so that a text message is
// failed with 1007 as soon as its bytes can no longer be valid UTF-8
// (RFC 6455 section 8.1), not only once all of it has arrived. It holds
// the incomplete sequence, if any, at the end of what it was fed.
type utf8Check struct {
	pend [3]byte
	n    uint8
}

// feed checks the next piece of text. It reports false as soon as the
// text fed so far is not a prefix of valid UTF-8.
func (u *utf8Check) feed(b []byte) bool {
	if u.n > 0 {
		// Complete the sequence the last piece ended in.
		var seq [4]byte
		copy(seq[:], u.pend[:u.n])
		need := seqLen(seq[0])
		k := copy(seq[u.n:need], b)
		b = b[k:]
		have := int(u.n) + k
		if have < need {
			if !validPrefix(seq[:have]) {
				return false
			}
			copy(u.pend[:], seq[:have])
			u.n = uint8(have)
			return true
		}
		if !utf8.Valid(seq[:need]) {
			return false
		}
		u.n = 0
	}
	// Find a sequence cut off at the end: a lead byte in the last three
	// bytes whose sequence does not fit.
	end := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		c := b[i]
		if c < utf8.RuneSelf {
			break
		}
		if c >= 0xc0 {
			if need := seqLen(c); need > len(b)-i {
				end = i
			}
			break
		}
	}
	if !utf8.Valid(b[:end]) {
		return false
	}
	if tail := b[end:]; len(tail) > 0 {
		if !validPrefix(tail) {
			return false
		}
		u.n = uint8(copy(u.pend[:], tail))
	}
	return true
}

// complete reports whether the text fed so far ends on a sequence
// boundary: at the end of a message it must.
func (u *utf8Check) complete() bool { return u.n == 0 }

// seqLen returns the length of the sequence that lead byte c starts, or
// 1 for a byte that cannot start a multi-byte sequence (utf8.Valid then
// refuses it where it is not ASCII).
func seqLen(c byte) int {
	switch {
	case c >= 0xc2 && c <= 0xdf:
		return 2
	case c >= 0xe0 && c <= 0xef:
		return 3
	case c >= 0xf0 && c <= 0xf4:
		return 4
	}
	return 1
}

// validPrefix reports whether s, a lead byte and fewer continuation
// bytes than its sequence needs, can still be completed into a valid
// sequence: no surrogate (ED A0..BF), overlong form (E0 80..9F, F0
// 80..8F) or code point above U+10FFFF (F4 90..BF) can.
func validPrefix(s []byte) bool {
	if len(s) == 0 || len(s) >= seqLen(s[0]) {
		return false
	}
	if len(s) > 1 {
		lo, hi := byte(0x80), byte(0xbf)
		switch s[0] {
		case 0xe0:
			lo = 0xa0
		case 0xed:
			hi = 0x9f
		case 0xf0:
			lo = 0x90
		case 0xf4:
			hi = 0x8f
		}
		if s[1] < lo || s[1] > hi {
			return false
		}
	}
	if len(s) > 2 && (s[2] < 0x80 || s[2] > 0xbf) {
		return false
	}
	return true
}
