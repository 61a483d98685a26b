package transport

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestHandshakeErrors(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{}, nil)
	valid := map[string]string{
		"Upgrade":               "websocket",
		"Connection":            "Upgrade",
		"Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
	}
	tests := []struct {
		name       string
		method     string
		set        map[string]string // "" value deletes
		status     int
		wantHeader [2]string
	}{
		{name: "wrong method", method: http.MethodPost, status: http.StatusMethodNotAllowed, wantHeader: [2]string{"Allow", "GET"}},
		{name: "missing upgrade", set: map[string]string{"Upgrade": ""}, status: http.StatusBadRequest},
		{name: "upgrade not websocket", set: map[string]string{"Upgrade": "h2c"}, status: http.StatusBadRequest},
		{name: "missing connection", set: map[string]string{"Connection": "keep-alive"}, status: http.StatusBadRequest},
		{name: "version 8", set: map[string]string{"Sec-WebSocket-Version": "8"}, status: http.StatusUpgradeRequired, wantHeader: [2]string{"Sec-WebSocket-Version", "13"}},
		{name: "missing version", set: map[string]string{"Sec-WebSocket-Version": ""}, status: http.StatusUpgradeRequired},
		{name: "missing key", set: map[string]string{"Sec-WebSocket-Key": ""}, status: http.StatusBadRequest},
		{name: "short key", set: map[string]string{"Sec-WebSocket-Key": "c2hvcnQ="}, status: http.StatusBadRequest},
		{name: "key not base64", set: map[string]string{"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!!!"}, status: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, ts.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range valid {
				req.Header.Set(k, v)
			}
			for k, v := range tt.set {
				if v == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.status)
			}
			if len(body) == 0 {
				t.Error("empty error body")
			}
			if k := tt.wantHeader[0]; k != "" && resp.Header.Get(k) != tt.wantHeader[1] {
				t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), tt.wantHeader[1])
			}
		})
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestHandshakeTokens(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{}, nil)
	rc := dialRaw(t, ts.URL, "")
	if got, want := rc.resp.Header.Get("Sec-WebSocket-Accept"), acceptKey(rc.key); got != want {
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("acceptKey = %q (RFC 6455 example)", got)
	}
	h := http.Header{"Connection": {"keep-alive, UPGRADE"}}
	if !headerHasToken(h, "Connection", "upgrade") {
		t.Error("token in list not found")
	}
	if headerHasToken(http.Header{"Connection": {"upgraded"}}, "Connection", "upgrade") {
		t.Error("prefix matched as token")
	}
}

func TestNegotiateDeflate(t *testing.T) {
	t.Parallel()
	const noCtx = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	tests := []struct {
		name     string
		offers   []string
		takeover bool
		want     negotiated
		resp     string
	}{
		{name: "none"},
		{name: "plain", offers: []string{"permessage-deflate"}, want: negotiated{deflate: deflateOn}, resp: noCtx},
		{name: "client_max_window_bits no value", offers: []string{"permessage-deflate; client_max_window_bits"}, want: negotiated{deflate: deflateOn}, resp: noCtx},
		{name: "client_max_window_bits 10", offers: []string{"permessage-deflate; client_max_window_bits=10"}, want: negotiated{deflate: deflateOn}, resp: noCtx},
		{name: "server_max_window_bits 15", offers: []string{`permessage-deflate; server_max_window_bits="15"`}, want: negotiated{deflate: deflateOn}, resp: noCtx + "; server_max_window_bits=15"},
		{name: "small server window", offers: []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits"}, want: negotiated{deflate: deflateOn | deflateSmallWindow}, resp: noCtx + "; server_max_window_bits=10"},
		{name: "smallest server window", offers: []string{"permessage-deflate; server_max_window_bits=8"}, want: negotiated{deflate: deflateOn | deflateSmallWindow}, resp: noCtx + "; server_max_window_bits=8"},
		{name: "server window too small then fallback", offers: []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits"}, want: negotiated{deflate: deflateOn}, resp: noCtx},
		{name: "server window without value", offers: []string{"permessage-deflate; server_max_window_bits"}},
		{name: "takeover small server window", takeover: true, offers: []string{"permessage-deflate; server_no_context_takeover; server_max_window_bits=9"}, want: negotiated{deflate: deflateOn | deflateClientContext | deflateSmallWindow}, resp: "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"},
		{name: "unknown param", offers: []string{"permessage-deflate; meow"}},
		{name: "unknown param then fallback", offers: []string{"permessage-deflate; meow", "permessage-deflate"}, want: negotiated{deflate: deflateOn}, resp: noCtx},
		{name: "duplicate param", offers: []string{"permessage-deflate; client_no_context_takeover; client_no_context_takeover"}},
		{name: "value on flag", offers: []string{"permessage-deflate; server_no_context_takeover=1"}},
		{name: "other extension first", offers: []string{"x-webkit-deflate-frame, PerMessage-Deflate ; client_no_context_takeover"}, want: negotiated{deflate: deflateOn}, resp: noCtx},
		{name: "takeover both", takeover: true, offers: []string{"permessage-deflate; client_max_window_bits"}, want: negotiated{deflate: deflateOn | deflateServerContext | deflateClientContext}, resp: "permessage-deflate"},
		{name: "takeover client refuses server context", takeover: true, offers: []string{"permessage-deflate; server_no_context_takeover"}, want: negotiated{deflate: deflateOn | deflateClientContext}, resp: "permessage-deflate; server_no_context_takeover"},
		{name: "takeover client resets itself", takeover: true, offers: []string{"permessage-deflate; client_no_context_takeover"}, want: negotiated{deflate: deflateOn | deflateServerContext}, resp: "permessage-deflate; client_no_context_takeover"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, resp := negotiateDeflate(tt.offers, tt.takeover)
			if got != tt.want || resp != tt.resp {
				t.Errorf("got %+v %q, want %+v %q", got, resp, tt.want, tt.resp)
			}
		})
	}
}

func TestCloseReasonTruncated(t *testing.T) {
	t.Parallel()
	reason := strings.Repeat("é", 100) // 200 bytes
	p := closePayload(CloseNormal, reason)
	if len(p) > maxControlPayload || !utf8.Valid(p[2:]) {
		t.Fatalf("payload %d bytes, valid UTF-8 %v", len(p), utf8.Valid(p[2:]))
	}
	if got := len(p) - 2; got != 122 {
		t.Errorf("reason %d bytes, want 122 (123 would split a rune)", got)
	}
	for _, code := range []int{0, 999, CloseNoStatus, CloseAbnormal, 1004, 1015, 1016, 2999, 5000, 65535} {
		if p := closePayload(code, "x"); len(p) != 0 {
			t.Errorf("%d must not go on the wire: close payload %q, want none", code, p)
		}
	}
	if p := closePayload(4000, "a\xffb"); string(p[2:]) != "ab" {
		t.Errorf("close reason %q, want the valid UTF-8 of it, \"ab\"", p[2:])
	}
}

// TestHandshakeRFC6455 sends opening handshakes as raw requests, for
// what an http.Client cannot send: the server's side of RFC 6455 section
// 4.2 (an HTTP/1.1 GET, one key of 16 bytes, version 13 or a 426 naming
// it) and of 4.2.2 (the 101's fields).
func TestHandshakeRFC6455(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, Options{}, nil)
	addr := strings.TrimPrefix(ts.URL, "http://")
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	head := func(first string, fields ...string) string {
		return first + "\r\nHost: " + addr + "\r\n" + strings.Join(fields, "\r\n") + "\r\n\r\n"
	}
	std := []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"}
	tests := []struct {
		name   string
		req    string
		status int
		header [2]string
	}{
		{"valid", head("GET / HTTP/1.1", std...), http.StatusSwitchingProtocols, [2]string{"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}},
		{"tokens in lists, any case", head("GET / HTTP/1.1", "Upgrade: WebSocket", "Connection: keep-alive, upgrade", "Sec-WebSocket-Key: "+key, "Sec-WebSocket-Version: 13"), http.StatusSwitchingProtocols, [2]string{}},
		{"HTTP/1.0", head("GET / HTTP/1.0", std...), http.StatusBadRequest, [2]string{}},
		{"HEAD", head("HEAD / HTTP/1.1", std...), http.StatusMethodNotAllowed, [2]string{"Allow", "GET"}},
		{"two keys", head("GET / HTTP/1.1", append(std, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==")...), http.StatusBadRequest, [2]string{}},
		{"no version", head("GET / HTTP/1.1", std[:3]...), http.StatusUpgradeRequired, [2]string{"Sec-WebSocket-Version", "13"}},
		{"version 14", head("GET / HTTP/1.1", append(std[:3:3], "Sec-WebSocket-Version: 14")...), http.StatusUpgradeRequired, [2]string{"Sec-WebSocket-Version", "13"}},
		{"no Host", "GET / HTTP/1.1\r\n" + strings.Join(std, "\r\n") + "\r\n\r\n", http.StatusBadRequest, [2]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(nc, tt.req); err != nil {
				t.Fatal(err)
			}
			method, _, _ := strings.Cut(tt.req, " ")
			resp, err := http.ReadResponse(bufio.NewReader(nc), &http.Request{Method: method})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if k := tt.header[0]; k != "" && resp.Header.Get(k) != tt.header[1] {
				t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), tt.header[1])
			}
			if resp.StatusCode == http.StatusSwitchingProtocols {
				if !headerHasToken(resp.Header, "Upgrade", "websocket") || !headerHasToken(resp.Header, "Connection", "upgrade") {
					t.Errorf("101 without Upgrade: websocket and Connection: Upgrade: %v", resp.Header)
				}
				for _, k := range []string{"Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"} {
					if v := resp.Header.Get(k); v != "" {
						t.Errorf("%s: %q answered to a request that offers none", k, v)
					}
				}
			}
		})
	}
}

// TestAcceptKeyAllocations: the accept value is appended without an
// allocation for a key of usual length, and the key checked likewise.
func TestAcceptKeyAllocations(t *testing.T) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = appendAcceptKey(buf[:0], key) }); n != 0 {
		t.Errorf("appendAcceptKey: %v allocations, want 0", n)
	}
	if string(buf) != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("appendAcceptKey = %q (RFC 6455 example)", buf)
	}
	if n := testing.AllocsPerRun(100, func() { _ = validKey(key) }); n != 0 {
		t.Errorf("validKey: %v allocations, want 0", n)
	}
	for _, k := range []string{"", "c2hvcnQ=", key + "AAAA", "not base64 at all!!!!!!!"} {
		if validKey(k) {
			t.Errorf("validKey(%q) = true", k)
		}
	}
}

// BenchmarkHandshakeKey is the handshake's own work on the key: the
// check and the accept value.
func BenchmarkHandshakeKey(b *testing.B) {
	const key = "dGhlIHNhbXBsZSBub25jZQ=="
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		if !validKey(key) {
			b.Fatal("invalid")
		}
		buf = appendAcceptKey(buf[:0], key)
	}
}
