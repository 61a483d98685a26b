package transport

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// canComplete reports whether some bytes appended to b make it valid
// UTF-8: the oracle for utf8Check, by brute force over the continuation
// bytes that matter (the bounds of every range a sequence allows).
func canComplete(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	cont := []byte{0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf}
	for _, x := range cont {
		if utf8.Valid(append(append([]byte(nil), b...), x)) {
			return true
		}
		for _, y := range cont {
			if utf8.Valid(append(append([]byte(nil), b...), x, y)) {
				return true
			}
			for _, z := range cont {
				if utf8.Valid(append(append([]byte(nil), b...), x, y, z)) {
					return true
				}
			}
		}
	}
	return false
}

// TestUTF8CheckPieces feeds texts in every split into two pieces and in
// single bytes: the check must fail at the first byte after which the
// text cannot be completed (fail fast), never before, and accept exactly
// the valid texts.
func TestUTF8CheckPieces(t *testing.T) {
	texts := []string{
		"", "hello", "Hello-µ@ßöäüàá-UTF-8!!", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
		"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
		"\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf7\xbf\xbf\xbf",
		"\xed\x9f\xbf", "\xed\xa0\x80", "\xe0\x9f\xbf", "\xe0\xa0\x80", "\xf0\x8f\xbf\xbf",
		"\xc0\xaf", "\xc1\xbf", "\xc2\x80", "\x80", "\xbf\x80", "\xfe", "\xff",
		"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xdf", "\xef\xbf", "\xf7\xbf\xbf",
		"a\xc3", "a\xe2\x82", "a\xf0\x9f\x98", "\xf0\x9f\x98\x80\xf0\x9f", "\xef\xbf\xbe",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = []byte{'a', 0x80, 0x9f, 0xa0, 0xbf, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5}[rng.IntN(13)]
		}
		texts = append(texts, string(b))
	}
	for _, s := range texts {
		b := []byte(s)
		// The first prefix that cannot be completed, len(b)+1 if none.
		bad := len(b) + 1
		for i := 1; i <= len(b); i++ {
			if !canComplete(b[:i]) {
				bad = i
				break
			}
		}
		// Byte at a time: fails exactly at byte bad.
		var u utf8Check
		failedAt := len(b) + 1
		for i := range b {
			if !u.feed(b[i : i+1]) {
				failedAt = i + 1
				break
			}
		}
		if failedAt != bad {
			t.Errorf("%x byte-wise: failed after %d bytes, want %d", b, failedAt, bad)
			continue
		}
		if bad > len(b) && u.complete() != utf8.Valid(b) {
			t.Errorf("%x byte-wise: complete %v, utf8.Valid %v", b, u.complete(), utf8.Valid(b))
		}
		// Two pieces, every split: fails on the piece holding byte bad.
		for split := 0; split <= len(b); split++ {
			var u utf8Check
			ok1 := u.feed(b[:split])
			if want := bad > split; ok1 != want {
				t.Errorf("%x split %d: first piece %v, want %v", b, split, ok1, want)
				continue
			}
			if !ok1 {
				continue
			}
			ok2 := u.feed(b[split:])
			if want := bad > len(b); ok2 != want {
				t.Errorf("%x split %d: second piece %v, want %v", b, split, ok2, want)
				continue
			}
			if ok2 && u.complete() != utf8.Valid(b) {
				t.Errorf("%x split %d: complete %v, utf8.Valid %v", b, split, u.complete(), utf8.Valid(b))
			}
		}
	}
}
