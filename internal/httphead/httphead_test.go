package httphead

import (
	"bufio"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

const upgrade = "GET /ws?token=abc HTTP/1.1\r\nHost: example.com:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer x.y.z\r\n\r\n"

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		head string
		ok   bool
	}{
		{"upgrade", upgrade, true},
		{"repeated field", "GET /ws HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\n\r\n", true},
		{"whitespace around value", "GET /ws HTTP/1.1\r\nHost: a\r\nOrigin: \t http://a \t\r\n\r\n", true},
		{"empty value", "GET /ws HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n", true},
		{"empty host", "GET /ws HTTP/1.1\r\nHost:\r\n\r\n", true},
		{"POST", "POST /ws HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"HTTP/1.0", "GET /ws HTTP/1.0\r\nHost: a\r\n\r\n", false},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false},
		{"no host", "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", false},
		{"two hosts", "GET /ws HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
		{"host with user info", "GET /ws HTTP/1.1\r\nHost: u@a\r\n\r\n", false},
		{"bare LF", "GET /ws HTTP/1.1\nHost: a\r\n\r\n", false},
		{"bare CR", "GET /ws HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", false},
		{"folded line", "GET /ws HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", false},
		{"space before colon", "GET /ws HTTP/1.1\r\nHost : a\r\n\r\n", false},
		{"no colon", "GET /ws HTTP/1.1\r\nHost: a\r\nGarbage\r\n\r\n", false},
		{"control byte in value", "GET /ws HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", false},
		{"non-ASCII value", "GET /ws HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", false},
		{"content-length", "GET /ws HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", false},
		{"chunked", "GET /ws HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"absolute target", "GET http://a/ws HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"fragment", "GET /ws#x HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"two spaces", "GET  /ws HTTP/1.1\r\nHost: a\r\n\r\n", false},
		{"not a whole head", "GET /ws HTTP/1.1\r\nHost: a\r\n", false},
		{"too many fields", "GET /ws HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", MaxFields) + "\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, ok := Parse(tc.head)
			if ok != tc.ok {
				t.Fatalf("Parse ok = %v, want %v", ok, tc.ok)
			}
			if ok {
				agreesWithNetHTTP(t, tc.head, h)
			}
		})
	}
}

// agreesWithNetHTTP fails unless net/http reads head into the same
// request as h.
func agreesWithNetHTTP(t testing.TB, head string, h Head) {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		t.Fatalf("Parse accepted a head net/http refuses (%v): %q", err, head)
	}
	if r.Method != h.Method || r.RequestURI != h.Target || r.Host != h.Host {
		t.Fatalf("Parse: %q %q %q, net/http: %q %q %q", h.Method, h.Target, h.Host, r.Method, r.RequestURI, r.Host)
	}
	if !reflect.DeepEqual(r.Header, h.Header) {
		t.Fatalf("Parse header %q, net/http %q", h.Header, r.Header)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		b    string
		want Decision
	}{
		{"", Undecided},
		{"GE", Undecided},
		{"GET /w", Undecided},
		{"GET /ws", Undecided},
		{"GET /ws ", Mine},
		{"GET /ws?a", Mine},
		{"GET /wss ", Other},
		{"GET /ws/ ", Other},
		{"POST /ws ", Other},
		{"get /ws ", Other},
		{"GET /x", Other},
	} {
		if got := Match([]byte(tc.b), "/ws"); got != tc.want {
			t.Errorf("Match(%q) = %d, want %d", tc.b, got, tc.want)
		}
	}
}

func TestEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		b     string
		n     int
		plain bool
	}{
		{upgrade + "rest\n", len(upgrade), true},
		{upgrade[:len(upgrade)-1], -1, true},
		{"GET / HTTP/1.1\r", -1, true},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r", -1, true},
		{"GET / HTTP/1.1\nHost: a", -1, false},
		{"GET / HTTP/1.1\r\nHost: a\rb", -1, false},
		{"GET / HTTP/1.1\r\nHost: a\n\n", -1, false},
		{"GET / HTTP/1.1\r\n\n", -1, false},
	} {
		if n, plain := End([]byte(tc.b)); n != tc.n || plain != tc.plain {
			t.Errorf("End(%q) = %d, %v; want %d, %v", tc.b, n, plain, tc.n, tc.plain)
		}
	}
}

// FuzzParse: any bytes, never a panic; a head Parse accepts is one
// net/http reads into the same method, target, Host and header.
func FuzzParse(f *testing.F) {
	f.Add([]byte(upgrade))
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\n\r\n"))
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nX: \t\r\n\r\n"))
	f.Add([]byte("GET /ws HTTP/1.1\r\nhost: a\r\ncontent-type:x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = Match(b, "/ws")
		n, plain := End(b)
		if !plain && n >= 0 {
			t.Fatalf("End found a head in bytes that are not plain: %q", b)
		}
		if n < 0 {
			if _, ok := Parse(string(b)); ok {
				t.Fatalf("Parse accepted a head without its end: %q", b)
			}
			return
		}
		head := string(b[:n])
		if h, ok := Parse(head); ok {
			agreesWithNetHTTP(t, head, h)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := Parse(upgrade); !ok {
			b.Fatal("not parsed")
		}
	}
}
