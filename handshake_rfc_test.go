package herald_test

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald"
)

// TestHandshakeRFC6455 holds both accept paths (net/http, and
// Server.Serve's own) to the server's side of the WebSocket opening
// handshake, RFC 6455 section 4.2: an upgrade must be an HTTP/1.1 GET
// with Host, Upgrade: websocket, Connection: Upgrade, one
// Sec-WebSocket-Key of 16 bytes and Sec-WebSocket-Version 13; another
// version is answered 426 with the version the server speaks, any other
// flaw 400 (405 with Allow for another method); the 101 carries the
// Sec-WebSocket-Accept of the key and no subprotocol or extension the
// client did not offer. Refusals are Herald's JSON errors.
func TestHandshakeRFC6455(t *testing.T) {
	t.Parallel()
	key := wsKey()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	accept := base64.StdEncoding.EncodeToString(sum[:])
	std := []string{"Host: herald.test", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"}
	req := func(line string, fields ...string) string {
		return line + "\r\n" + strings.Join(fields, "\r\n") + "\r\n\r\n"
	}
	without := func(name string) []string {
		var out []string
		for _, f := range std {
			if !strings.HasPrefix(f, name+":") {
				out = append(out, f)
			}
		}
		return out
	}
	with := func(name, value string) []string { return append(without(name), name+": "+value) }
	tests := []struct {
		name   string
		req    string
		status int
		code   string    // the JSON error's code
		header [2]string // a field the answer must carry
	}{
		{"valid", req("GET /ws HTTP/1.1", std...), 101, "", [2]string{"Sec-WebSocket-Accept", accept}},
		{"tokens in lists, any case", req("GET /ws HTTP/1.1", append(with("Upgrade", "WebSocket"), "Connection: keep-alive, upgrade")...), 101, "", [2]string{"Sec-WebSocket-Accept", accept}},
		{"POST", req("POST /ws HTTP/1.1", std...), 405, "method_not_allowed", [2]string{"Allow", "GET"}},
		{"HTTP/1.0", req("GET /ws HTTP/1.0", std...), 400, "bad_handshake", [2]string{}},
		{"no Host", req("GET /ws HTTP/1.1", without("Host")...), 400, "", [2]string{}},
		{"no Upgrade", req("GET /ws HTTP/1.1", without("Upgrade")...), 400, "bad_handshake", [2]string{}},
		{"Upgrade: h2c", req("GET /ws HTTP/1.1", with("Upgrade", "h2c")...), 400, "bad_handshake", [2]string{}},
		{"no Connection: Upgrade", req("GET /ws HTTP/1.1", with("Connection", "keep-alive")...), 400, "bad_handshake", [2]string{}},
		{"no key", req("GET /ws HTTP/1.1", without("Sec-WebSocket-Key")...), 400, "bad_handshake", [2]string{}},
		{"key of 4 bytes", req("GET /ws HTTP/1.1", with("Sec-WebSocket-Key", "AAAAAA==")...), 400, "bad_handshake", [2]string{}},
		{"key not base64", req("GET /ws HTTP/1.1", with("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!!!")...), 400, "bad_handshake", [2]string{}},
		{"two keys", req("GET /ws HTTP/1.1", append(std, "Sec-WebSocket-Key: "+wsKey())...), 400, "bad_handshake", [2]string{}},
		{"no version", req("GET /ws HTTP/1.1", without("Sec-WebSocket-Version")...), 426, "unsupported_version", [2]string{"Sec-WebSocket-Version", "13"}},
		{"version 8", req("GET /ws HTTP/1.1", with("Sec-WebSocket-Version", "8")...), 426, "unsupported_version", [2]string{"Sec-WebSocket-Version", "13"}},
	}
	for _, path := range []struct {
		name string
		fast bool
	}{{"net/http", false}, {"accept path", true}} {
		t.Run(path.name, func(t *testing.T) {
			t.Parallel()
			rs := startRawServer(t, herald.Config{}, path.fast)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					handshakeAgainst(t, rs.addr, tt.req, tt.status, tt.code, tt.header)
				})
			}
		})
	}
}

// handshakeAgainst sends req to addr and checks the answer.
func handshakeAgainst(t *testing.T, addr, req string, status int, code string, header [2]string) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(bufio.NewReader(nc), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d", resp.StatusCode, status)
	}
	if k := header[0]; k != "" && resp.Header.Get(k) != header[1] {
		t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), header[1])
	}
	if status == http.StatusSwitchingProtocols {
		if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
			t.Errorf("101 without Upgrade: websocket and Connection: Upgrade: %v", resp.Header)
		}
		for _, k := range []string{"Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"} {
			if v := resp.Header.Get(k); v != "" {
				t.Errorf("%s %q answered to a request that offers none", k, v)
			}
		}
		return
	}
	if code != "" {
		var body struct{ Error string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error != code {
			t.Errorf("error %q (%v), want %q", body.Error, err, code)
		}
	}
}
