package jwt

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzExtractToken feeds hostile header values through ExtractToken and
// TokenFromSubprotocols: they must not panic, must return a token only with
// a source, and must never echo the token back as the subprotocol.
func FuzzExtractToken(f *testing.F) {
	f.Add("token=abc", "Bearer xyz", "herald.v1, bearer.tok", "token=q")
	f.Add("", "", "bearer.", "")
	f.Add(`token="quoted"`, "bearer", ",,,", "token=%zz")
	f.Fuzz(func(t *testing.T, cookie, authz, proto, query string) {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header.Set("Cookie", cookie)
		r.Header.Set("Authorization", authz)
		r.Header.Set("Sec-WebSocket-Protocol", proto)
		r.URL.RawQuery = query
		tok, src := ExtractToken(r, Config{})
		if (tok == "") != (src == "") {
			t.Fatalf("token %q with source %q", tok, src)
		}
		ptok, echo := TokenFromSubprotocols([]string{proto})
		if strings.Contains(echo, ",") || strings.TrimSpace(echo) != echo {
			t.Fatalf("echo %q is not one subprotocol", echo)
		}
		if strings.HasPrefix(strings.ToLower(echo), SubprotocolPrefix) {
			t.Fatalf("echo %q carries a token", echo)
		}
		if ptok != "" && !strings.Contains(proto, ptok) {
			t.Fatalf("token %q not from %q", ptok, proto)
		}
		// A token never reaches the verifier with surrounding whitespace
		// from the header sources.
		if src == SourceHeader && strings.TrimSpace(tok) != tok {
			t.Fatalf("header token %q not trimmed", tok)
		}
	})
}

// FuzzCookieHeader checks that net/http's cookie parsing, which ExtractToken
// relies on, neither panics on hostile Cookie headers nor hands back a token
// that could not have been a cookie value.
func FuzzCookieHeader(f *testing.F) {
	f.Add("token=abc")
	f.Add("a=1; token=eyJhbGciOiJIUzI1NiJ9.e30.sig; b=2")
	f.Add(`token="abc"`)
	f.Add("token=; token=second")
	f.Add("token=a\x00b")
	f.Add("token= padded ")
	f.Add(strings.Repeat("x=y; ", 200) + "token=t")
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.Header.Set("Cookie", header)
		tok, src := ExtractToken(r, Config{})
		if tok == "" {
			return
		}
		if src != SourceCookie {
			t.Fatalf("source %q with only a Cookie header", src)
		}
		// net/http admits space and comma inside values, never these.
		if !utf8.ValidString(tok) || strings.ContainsAny(tok, ";\"\\\x00\r\n\t\x7f") {
			t.Fatalf("cookie value %q has characters a cookie value cannot", tok)
		}
		if strings.TrimSpace(tok) != tok {
			t.Fatalf("cookie value %q not trimmed", tok)
		}
		if !strings.Contains(header, tok) {
			t.Fatalf("value %q not from header %q", tok, header)
		}
	})
}
