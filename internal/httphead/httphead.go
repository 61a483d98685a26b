// Package httphead parses the head of an HTTP/1.1 request for an accept
// path that answers some requests itself (WebSocket upgrades) and hands
// every other one to net/http.
//
// It is deliberately narrow: it accepts only heads it understands
// completely (a GET in HTTP/1.1, CRLF line ends, token field names,
// printable ASCII values, exactly one valid Host, no body framing, a
// bounded number of fields) and reports everything else as not simple,
// so that the caller replays those bytes to net/http, which then gives
// whatever answer it gives today. A head it accepts yields the same
// method, target, Host and header map (canonical keys, values trimmed,
// repeated fields in order, Host removed) as net/http's own reader.
//
// The package holds no state and is safe for concurrent use.
package httphead

import (
	"bytes"
	"net/http"
	"net/textproto"
	"strings"
)

// MaxFields bounds the header fields of a head Parse accepts: a request
// with more is not simple (net/http then reads it under its own limits).
const MaxFields = 64

// End returns the length of the head at the start of b, through its
// empty line ("\r\n\r\n"), or -1 when b does not hold a whole head yet.
// plain is false when the bytes so far hold a CR or LF that is not part
// of a CRLF: such a head is not simple, whenever it ends.
func End(b []byte) (n int, plain bool) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i >= 0 {
		b = b[:i+4]
	}
	for j := 0; j < len(b); j++ {
		switch b[j] {
		case '\n':
			return -1, false
		case '\r':
			if j+1 < len(b) && b[j+1] != '\n' {
				return -1, false
			}
			j++ // its LF, or the end of b
		}
	}
	if i < 0 {
		return -1, true
	}
	return i + 4, true
}

// Decision is what the first bytes of a request say about who serves it.
type Decision int8

// Decisions of Match.
const (
	// Undecided: too few bytes yet.
	Undecided Decision = iota
	// Mine: the request line starts "GET <path>" followed by a space or
	// '?': the request may be served by the caller.
	Mine
	// Other: any other request; it goes to net/http at once.
	Other
)

// Match says whether the request whose first bytes are b asks for GET
// path, as soon as that can be told, so that requests for other paths
// are handed on without waiting for their whole head.
func Match(b []byte, path string) Decision {
	const get = "GET "
	n := len(get) + len(path)
	for i := 0; i < len(b) && i <= n; i++ {
		var want byte
		switch {
		case i < len(get):
			want = get[i]
		case i < n:
			want = path[i-len(get)]
		default:
			if b[i] == ' ' || b[i] == '?' {
				return Mine
			}
			return Other
		}
		if b[i] != want {
			return Other
		}
	}
	return Undecided
}

// Head is a parsed request head. Its strings share the memory of the
// head given to Parse.
type Head struct {
	Method string
	// Target is the request-target as sent (origin form: path and query).
	Target string
	// Host is the Host field's value, which Header does not hold.
	Host   string
	Header http.Header
}

// Parse parses head, a whole request head as End delimits it. ok is false
// when the head is not one this package serves (see the package
// documentation): the caller then hands the bytes to net/http unchanged.
func Parse(head string) (h Head, ok bool) {
	if len(head) < 4 || head[len(head)-4:] != "\r\n\r\n" {
		return h, false
	}
	line, rest, ok := cutLine(head)
	if !ok {
		return h, false
	}
	// Request line: method SP target SP "HTTP/1.1".
	sp := indexByte(line, ' ')
	if sp <= 0 {
		return h, false
	}
	h.Method = line[:sp]
	if h.Method != http.MethodGet {
		return h, false
	}
	line = line[sp+1:]
	sp = indexByte(line, ' ')
	if sp <= 0 || line[sp+1:] != "HTTP/1.1" {
		return h, false
	}
	h.Target = line[:sp]
	if !validTarget(h.Target) {
		return h, false
	}

	// Fields: count them first, so that one backing array holds every
	// value (as net/http's reader does).
	fields := 0
	for s := rest; len(s) > 2; fields++ {
		i := indexCRLF(s)
		if i < 0 {
			return h, false
		}
		s = s[i+2:]
	}
	if fields > MaxFields {
		return h, false
	}
	h.Header = make(http.Header, fields)
	values := make([]string, fields)
	hosts := 0
	for i := 0; len(rest) > 2; i++ {
		var l string
		l, rest, _ = cutLine(rest)
		name, value, ok := splitField(l)
		if !ok {
			return Head{}, false
		}
		key := canonicalKey(name)
		switch key {
		case "Host":
			if hosts++; hosts > 1 || !validHost(value) {
				return Head{}, false
			}
			h.Host = value
			continue
		case "Content-Length", "Transfer-Encoding", "Expect", "Pragma", "Trailer":
			// Body framing and the fields net/http rewrites or acts on
			// are its to judge.
			return Head{}, false
		}
		values[i] = value
		if vs, dup := h.Header[key]; dup {
			h.Header[key] = append(vs, value)
		} else {
			h.Header[key] = values[i : i+1 : i+1]
		}
	}
	if hosts != 1 {
		return Head{}, false
	}
	return h, true
}

// upgradeKeys are the canonical names of the fields of a WebSocket
// upgrade that net/textproto does not intern: canonicalKey returns these
// strings instead of allocating one for each request that spells them
// otherwise (browsers and most clients send "Sec-WebSocket-Key").
var upgradeKeys = [...]string{"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol"}

// canonicalKey is textproto.CanonicalMIMEHeaderKey for a field name of
// token characters.
func canonicalKey(name string) string {
	for _, k := range upgradeKeys {
		// name is ASCII (token characters), so a case-insensitive match
		// of the same length is what canonicalizing name gives.
		if len(name) == len(k) && strings.EqualFold(name, k) {
			return k
		}
	}
	return textproto.CanonicalMIMEHeaderKey(name)
}

// cutLine splits s at its first CRLF. A bare CR or LF before it makes the
// line not simple.
func cutLine(s string) (line, rest string, ok bool) {
	i := indexCRLF(s)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+2:], true
}

// indexCRLF returns the index of the first CRLF in s, -1 when there is
// none or a CR or LF stands alone before it.
func indexCRLF(s string) int {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				return i
			}
			return -1
		case '\n':
			return -1
		}
	}
	return -1
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// splitField splits a field line into its name (a token) and its value
// without surrounding whitespace. Values of printable ASCII and tabs
// only; a line that starts with whitespace (obsolete line folding) is
// not simple.
func splitField(l string) (name, value string, ok bool) {
	colon := indexByte(l, ':')
	if colon <= 0 {
		return "", "", false
	}
	name = l[:colon]
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return "", "", false
		}
	}
	value = l[colon+1:]
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c > '~' {
			return "", "", false
		}
	}
	for len(value) > 0 && (value[0] == ' ' || value[0] == '\t') {
		value = value[1:]
	}
	for len(value) > 0 && (value[len(value)-1] == ' ' || value[len(value)-1] == '\t') {
		value = value[:len(value)-1]
	}
	return name, value, true
}

// validTarget accepts an origin-form target of visible ASCII with no
// fragment.
func validTarget(t string) bool {
	if t == "" || t[0] != '/' {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c > '~' || c == '#' {
			return false
		}
	}
	return true
}

// validHost accepts the bytes net/http's Host check accepts that can
// appear in a host and port, a subset of them (no '%' escapes, no
// user info).
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_':
		default:
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may appear in a field name (RFC 9110
// section 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
