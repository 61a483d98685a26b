package protocol

import (
	"bytes"
	"errors"
	"unicode/utf8"
)

// Errors of CheckText.
var (
	ErrInvalidUTF8   = errors.New("text is not valid UTF-8")
	ErrLoneSurrogate = errors.New(`text escapes an unpaired UTF-16 surrogate (\ud800-\udfff)`)
)

var backslashU = []byte(`\u`)

// CheckText reports whether b, JSON text, is valid UTF-8 and escapes no
// unpaired UTF-16 surrogate. encoding/json would silently replace either
// with U+FFFD, so that a room name with such bytes would be rewritten
// into another room's name instead of being refused; I-JSON (RFC 7493)
// forbids both.
func CheckText(b []byte) error {
	if !utf8.Valid(b) {
		return ErrInvalidUTF8
	}
	return checkSurrogates(b)
}

// checkSurrogates finds unpaired surrogate escapes in JSON text. Only
// strings hold escapes, and every backslash in a string starts one, so
// a scan from backslash to backslash sees each escape whole.
func checkSurrogates(b []byte) error {
	for {
		i := bytes.Index(b, backslashU)
		if i < 0 {
			return nil
		}
		// An escaped backslash before the u ("\\u") is not an escape of u:
		// count the backslashes that end at i+1.
		n := 0
		for j := i; j >= 0 && b[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			b = b[i+2:]
			continue
		}
		r, ok := hex4(b[i+2:])
		if !ok {
			return nil // not JSON; the decoder says so
		}
		b = b[i+6:]
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return ErrLoneSurrogate
		case r >= 0xD800 && r <= 0xDBFF:
			if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
				return ErrLoneSurrogate
			}
			lo, ok := hex4(b[2:])
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return ErrLoneSurrogate
			}
			b = b[6:]
		}
	}
}

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return r, true
}
