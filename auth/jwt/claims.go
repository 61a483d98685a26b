package jwt

import (
	"unicode/utf16"
	"unicode/utf8"
)

// rawClaims are the claims of a token as decodeClaims reads them: what
// json.Unmarshal would store in Claims, with the time claims kept as the
// number literals they are spelled as (nil: absent), aliasing the input.
type rawClaims struct {
	iss, sub, jti       string
	aud, rooms, publish []string
	exp, nbf, iat       []byte
}

// maxClaimsDepth bounds the nesting of the values decodeClaims skips
// (json.Unmarshal allows 10,000 levels; deeper claims go to the parser).
const maxClaimsDepth = 64

// decodeClaims decodes b, a token's claims, into c as json.Unmarshal
// decodes them into Claims, and reports true; or false for whatever it
// does not decode exactly as json.Unmarshal does, which then goes to the
// parser. It takes a JSON object whose keys are ASCII without escapes,
// matched to iss, sub, aud, exp, nbf, iat, jti, rooms and publish
// ignoring case, as encoding/json matches field names (a later duplicate
// wins; null leaves a string or aud as it was and makes rooms or publish
// nil); any other key's value is checked and skipped. The string claims
// must be strings, decoded with their escapes and invalid UTF-8 replaced
// as encoding/json does; aud a string or an array of strings (an empty
// one: nil, as jwt.ClaimStrings has it); rooms and publish arrays of
// strings (empty: empty, not nil); exp, nbf and iat numbers (json.Unmarshal
// takes more: a null or a string there makes the parser refuse the token
// anyway). TestDecodeClaimsAgreesWithJSON and FuzzDecodeClaims check it
// against json.Unmarshal.
func decodeClaims(b []byte, c *rawClaims) bool {
	d := claimsDecoder{b: b}
	d.space()
	if !d.next('{') {
		return false
	}
	d.space()
	if d.next('}') {
		return d.end()
	}
	for {
		d.space()
		key, ok := d.key()
		if !ok {
			return false
		}
		d.space()
		if !d.next(':') {
			return false
		}
		d.space()
		switch key {
		case "iss":
			ok = d.optString(&c.iss)
		case "sub":
			ok = d.optString(&c.sub)
		case "jti":
			ok = d.optString(&c.jti)
		case "aud":
			ok = d.audience(&c.aud)
		case "rooms":
			ok = d.strings(&c.rooms)
		case "publish":
			ok = d.strings(&c.publish)
		case "exp":
			c.exp, ok = d.number()
		case "nbf":
			c.nbf, ok = d.number()
		case "iat":
			c.iat, ok = d.number()
		default:
			ok = d.skip(0)
		}
		if !ok {
			return false
		}
		d.space()
		if d.next('}') {
			return d.end()
		}
		if !d.next(',') {
			return false
		}
	}
}

// claimsDecoder reads a JSON text from b at i.
type claimsDecoder struct {
	b []byte
	i int
}

// claimKeys are the claims decodeClaims stores, by the length of their
// names.
var claimKeys = [8][]string{3: {"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}, 5: {"rooms"}, 7: {"publish"}}

// key reads an object key: a string of ASCII characters without
// escapes. It returns the claim it names, matched as encoding/json
// matches a field name (ignoring case), or "" for any other key.
func (d *claimsDecoder) key() (string, bool) {
	if !d.next('"') {
		return "", false
	}
	start := d.i
	for ; d.i < len(d.b); d.i++ {
		c := d.b[d.i]
		if c == '"' {
			break
		}
		if c < ' ' || c == '\\' || c >= utf8.RuneSelf {
			// Escapes and other alphabets can spell a claim's name
			// (encoding/json folds "ſub" to "sub"): the parser's.
			return "", false
		}
	}
	if d.i == len(d.b) {
		return "", false
	}
	k := d.b[start:d.i]
	d.i++
	if len(k) < len(claimKeys) {
	names:
		for _, name := range claimKeys[len(k)] {
			for j := range k {
				if c := k[j]; c != name[j] && c+('a'-'A') != name[j] {
					continue names
				}
			}
			return name, true
		}
	}
	return "", true
}

// optString reads a string into *s; null leaves *s as it is.
func (d *claimsDecoder) optString(s *string) bool {
	if d.literal("null") {
		return true
	}
	v, ok := d.string()
	if ok {
		*s = v
	}
	return ok
}

// audience reads aud as jwt.ClaimStrings decodes it: a string is a list
// of one, an array of strings that list (none: nil), null leaves *aud
// as it is.
func (d *claimsDecoder) audience(aud *[]string) bool {
	switch {
	case d.literal("null"):
		return true
	case d.i < len(d.b) && d.b[d.i] == '"':
		s, ok := d.string()
		if ok {
			*aud = []string{s}
		}
		return ok
	}
	l, ok := d.stringArray()
	if ok {
		if len(l) == 0 {
			l = nil
		}
		*aud = l
	}
	return ok
}

// strings reads an array of strings into *l (none: an empty slice, not
// nil); null makes *l nil.
func (d *claimsDecoder) strings(l *[]string) bool {
	if d.literal("null") {
		*l = nil
		return true
	}
	v, ok := d.stringArray()
	if ok {
		if v == nil {
			v = []string{}
		}
		*l = v
	}
	return ok
}

// stringArray reads an array whose elements are strings (nil for none).
// A null element, which encoding/json decodes as "leave the element as
// it was", is not taken.
func (d *claimsDecoder) stringArray() ([]string, bool) {
	if !d.next('[') {
		return nil, false
	}
	d.space()
	if d.next(']') {
		return nil, true
	}
	var l []string
	for {
		d.space()
		s, ok := d.string()
		if !ok {
			return nil, false
		}
		l = append(l, s)
		d.space()
		if d.next(']') {
			return l, true
		}
		if !d.next(',') {
			return nil, false
		}
	}
}

// string reads a JSON string and returns it decoded as encoding/json
// decodes it: escapes resolved, a lone or mismatched UTF-16 surrogate
// and each byte of invalid UTF-8 replaced by U+FFFD.
func (d *claimsDecoder) string() (string, bool) {
	raw, plain, ok := d.scanString()
	switch {
	case !ok:
		return "", false
	case plain:
		return string(raw), true
	}
	return unquote(raw), true
}

// scanString reads a JSON string, checked as encoding/json's scanner
// checks it (no control characters, only JSON's escapes), and returns
// what is between its quotes; plain says it is ASCII without escapes.
func (d *claimsDecoder) scanString() (raw []byte, plain, ok bool) {
	if !d.next('"') {
		return nil, false, false
	}
	start := d.i
	plain = true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return d.b[start : d.i-1], plain, true
		case c < ' ':
			return nil, false, false
		case c == '\\':
			plain = false
			if d.i+1 >= len(d.b) {
				return nil, false, false
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if getu4(d.b[d.i:]) < 0 {
					return nil, false, false
				}
				d.i += 6
			default:
				return nil, false, false
			}
		default:
			if c >= utf8.RuneSelf {
				plain = false
			}
			d.i++
		}
	}
	return nil, false, false
}

// unquote decodes the contents of a JSON string that scanString
// checked, as encoding/json's unquoteBytes does.
func unquote(s []byte) string {
	out := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch s[r+1] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				rr := getu4(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != utf8.RuneError {
						r += 6 // a valid pair
						out = utf8.AppendRune(out, dec)
						continue
					}
					rr = utf8.RuneError
				}
				out = utf8.AppendRune(out, rr)
				continue
			default: // '"', '\\', '/'
				out = append(out, s[r+1])
			}
			r += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			out = utf8.AppendRune(out, rr) // U+FFFD for an invalid byte
			r += size
		}
	}
	return string(out)
}

// getu4 decodes \uXXXX at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a JSON number and returns its literal.
func (d *claimsDecoder) number() ([]byte, bool) {
	start := d.i
	d.next('-')
	switch {
	case d.next('0'):
	case d.digits() == 0:
		return nil, false
	}
	if d.next('.') && d.digits() == 0 {
		return nil, false
	}
	if d.next('e') || d.next('E') {
		if !d.next('+') {
			d.next('-')
		}
		if d.digits() == 0 {
			return nil, false
		}
	}
	return d.b[start:d.i], true
}

// digits skips decimal digits and returns how many.
func (d *claimsDecoder) digits() int {
	start := d.i
	for d.i < len(d.b) && '0' <= d.b[d.i] && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

// skip checks and skips any JSON value, nested depth deep.
func (d *claimsDecoder) skip(depth int) bool {
	if d.i >= len(d.b) || depth > maxClaimsDepth {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '"':
		_, _, ok := d.scanString()
		return ok
	case c == '-' || '0' <= c && c <= '9':
		_, ok := d.number()
		return ok
	case c == '{', c == '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		d.i++
		d.space()
		if d.next(closing) {
			return true
		}
		for {
			d.space()
			if c == '{' {
				if _, _, ok := d.scanString(); !ok {
					return false
				}
				d.space()
				if !d.next(':') {
					return false
				}
				d.space()
			}
			if !d.skip(depth + 1) {
				return false
			}
			d.space()
			if d.next(closing) {
				return true
			}
			if !d.next(',') {
				return false
			}
		}
	}
	return d.literal("true") || d.literal("false") || d.literal("null")
}

// literal skips lit if it comes next.
func (d *claimsDecoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// next skips c if it comes next.
func (d *claimsDecoder) next(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// space skips JSON whitespace.
func (d *claimsDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// end reports whether nothing but whitespace follows.
func (d *claimsDecoder) end() bool {
	d.space()
	return d.i == len(d.b)
}
