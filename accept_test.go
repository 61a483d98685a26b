package herald_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

// rawServer is a Herald server reached by raw TCP, served either through
// net/http (hs.Serve) or through Server.Serve's own accept path.
type rawServer struct {
	srv  *herald.Server
	addr string
}

// opts change the http.Server before it serves (hooks, a handler around
// the Server's).
func startRawServer(t testing.TB, cfg herald.Config, fast bool, opts ...func(*http.Server)) *rawServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.APIKeys == nil {
		cfg.APIKeys = []string{testAPIKey}
	}
	cfg.DrainTimeout = 500 * time.Millisecond
	srv, err := herald.New(cfg)
	if err != nil {
		t.Fatalf("herald.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 2 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn)}
	for _, o := range opts {
		o(hs)
	}
	served := make(chan error, 1)
	go func() {
		if fast {
			served <- srv.Serve(ln, hs)
		} else {
			served <- hs.Serve(ln)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		_ = hs.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})
	return &rawServer{srv: srv, addr: ln.Addr().String()}
}

// outcome is what a client sees of one raw request: the status and the
// answer's telling parts, then for an upgrade the first frame's type and
// the close code the server ends with.
type outcome struct {
	Status        int
	Error         string // the JSON body's "error"
	RequestID     bool
	RetryAfter    string
	Authenticate  string
	Subprotocol   string
	Allow         string
	WSVersion     string
	FirstFrame    string // "welcome", ...
	CloseCode     int
	ConnectionErr string // nothing answered at all
}

func wsKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// maskedFrame is a client frame: fin, opcode op, masked payload.
func maskedFrame(op byte, payload []byte) []byte {
	f := []byte{0x80 | op}
	if len(payload) < 126 {
		f = append(f, 0x80|byte(len(payload)))
	} else {
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(len(payload)))
	}
	mask := [4]byte{1, 2, 3, 4}
	f = append(f, mask[:]...)
	for i, c := range payload {
		f = append(f, c^mask[i%4])
	}
	return f
}

// readFrame reads one server frame (unmasked, no extensions).
func readFrame(br *bufio.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(br, b[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint64(b[:]))
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(br, payload)
	return h[0] & 0x0f, payload, err
}

// exchange sends req (then after, once an upgrade is answered) on a new
// connection to addr and returns what came back. A connection it opens
// for an accepted upgrade stays open until the test ends when keep is
// set (for limits), else it is closed with a close frame.
func exchange(t *testing.T, addr, req string, after []byte, keep bool) outcome {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	method, _, _ := strings.Cut(req, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		_ = nc.Close()
		return outcome{ConnectionErr: "no answer"}
	}
	o := outcome{
		Status:       resp.StatusCode,
		RequestID:    resp.Header.Get("X-Request-ID") != "",
		RetryAfter:   resp.Header.Get("Retry-After"),
		Authenticate: resp.Header.Get("WWW-Authenticate"),
		Subprotocol:  resp.Header.Get("Sec-WebSocket-Protocol"),
		Allow:        resp.Header.Get("Allow"),
		WSVersion:    resp.Header.Get("Sec-WebSocket-Version"),
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		var body struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		o.Error = body.Error
		_ = nc.Close()
		return o
	}
	op, payload, err := readFrame(br)
	if err != nil {
		t.Fatalf("first frame: %v", err)
	}
	if op == 1 {
		var m struct{ Type string }
		_ = json.Unmarshal(payload, &m)
		o.FirstFrame = m.Type
	} else {
		o.FirstFrame = "opcode " + string(rune('0'+op))
	}
	if keep && after == nil {
		t.Cleanup(func() { _ = nc.Close() })
		return o
	}
	if after == nil {
		after = maskedFrame(8, []byte{0x03, 0xe8})
	}
	if _, err := nc.Write(after); err != nil {
		t.Fatal(err)
	}
	for {
		op, payload, err := readFrame(br)
		if err != nil {
			o.ConnectionErr = "closed without a close frame"
			break
		}
		if op == 8 {
			if len(payload) >= 2 {
				o.CloseCode = int(binary.BigEndian.Uint16(payload))
			}
			break
		}
	}
	_ = nc.Close()
	return o
}

// TestAcceptPathAgreesWithNetHTTP sends the same good and hostile
// upgrade requests to a server behind net/http and to one behind
// Server.Serve, and wants the same answers: statuses, error codes, the
// headers that go with them, the welcome and the close codes.
func TestAcceptPathAgreesWithNetHTTP(t *testing.T) {
	good, err := jwtauth.Sign(testSecret, "alice", nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := jwtauth.Sign(testSecret, "bob", nil, nil, time.Hour)
	carol, _ := jwtauth.Sign(testSecret, "carol", nil, nil, time.Hour)
	expired, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}).SignedString(testSecret)
	wrongKey, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte("another secret of thirty-two bytes or more"))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice","exp":9999999999}`)) + "."

	upgradeHead := func(target string, extra ...string) string {
		var b strings.Builder
		b.WriteString("GET " + target + " HTTP/1.1\r\nHost: herald.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
		b.WriteString("Sec-WebSocket-Key: " + wsKey() + "\r\nSec-WebSocket-Version: 13\r\n")
		for _, e := range extra {
			b.WriteString(e + "\r\n")
		}
		b.WriteString("\r\n")
		return b.String()
	}
	bearer := "Authorization: Bearer " + good
	type step struct {
		name  string
		req   string
		after []byte // sent after an accepted upgrade (default: a close frame)
		keep  bool   // leave an accepted connection open (limits)
	}
	steps := []step{
		{name: "good bearer", req: upgradeHead("/ws", bearer)},
		{name: "token in query", req: upgradeHead("/ws?token=" + good)},
		{name: "token in subprotocol", req: upgradeHead("/ws", "Sec-WebSocket-Protocol: herald.v1, bearer."+good)},
		{name: "lower-case field names", req: strings.ToLower(upgradeHead("/ws"))[:0] + "GET /ws HTTP/1.1\r\nhost: herald.test\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: " + wsKey() + "\r\nsec-websocket-version: 13\r\nauthorization: bearer " + good + "\r\n\r\n"},
		{name: "x-request-id reused", req: upgradeHead("/ws", bearer, "X-Request-ID: abc-123")},
		{name: "frame right behind the head", req: upgradeHead("/ws", bearer) + string(maskedFrame(9, []byte("hi")))},
		{name: "unmasked frame after the welcome", req: upgradeHead("/ws", bearer), after: []byte{0x81, 0x02, 'h', 'i'}},
		{name: "bad JSON after the welcome", req: upgradeHead("/ws", bearer), after: append(maskedFrame(1, []byte("{")), maskedFrame(8, []byte{0x03, 0xe8})...)},
		{name: "no token", req: upgradeHead("/ws")},
		{name: "expired token", req: upgradeHead("/ws", "Authorization: Bearer "+expired)},
		{name: "wrong key", req: upgradeHead("/ws", "Authorization: Bearer "+wrongKey)},
		{name: "alg none", req: upgradeHead("/ws", "Authorization: Bearer "+none)},
		{name: "garbage token", req: upgradeHead("/ws", "Authorization: Bearer not.a.token")},
		{name: "token too large", req: upgradeHead("/ws", "Authorization: Bearer "+strings.Repeat("a", 9000))},
		{name: "allowed origin", req: upgradeHead("/ws", bearer, "Origin: https://app.example.com")},
		{name: "foreign origin", req: upgradeHead("/ws", bearer, "Origin: https://evil.example.net")},
		{name: "same-host origin", req: upgradeHead("/ws", bearer, "Origin: http://herald.test")},
		{name: "cookie from a foreign origin", req: upgradeHead("/ws", "Cookie: token="+good, "Origin: https://evil.example.net")},
		{name: "two origins", req: upgradeHead("/ws", bearer, "Origin: https://app.example.com", "Origin: https://evil.example.net")},
		{name: "POST", req: strings.Replace(upgradeHead("/ws", bearer), "GET", "POST", 1)},
		{name: "HEAD", req: strings.Replace(upgradeHead("/ws", bearer), "GET", "HEAD", 1)},
		{name: "no Upgrade field", req: "GET /ws HTTP/1.1\r\nHost: herald.test\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + wsKey() + "\r\nSec-WebSocket-Version: 13\r\n" + bearer + "\r\n\r\n"},
		{name: "upgrade to something else", req: strings.Replace(upgradeHead("/ws", bearer), "Upgrade: websocket", "Upgrade: h2c", 1)},
		{name: "upgrade list", req: strings.Replace(upgradeHead("/ws", bearer), "Upgrade: websocket", "Upgrade: websocket, h2c", 1)},
		{name: "no Connection: Upgrade", req: strings.Replace(upgradeHead("/ws", bearer), "Connection: Upgrade", "Connection: keep-alive", 1)},
		{name: "version 8", req: strings.Replace(upgradeHead("/ws", bearer), "Version: 13", "Version: 8", 1)},
		{name: "short key", req: strings.Replace(upgradeHead("/ws", bearer), "Sec-WebSocket-Key: ", "Sec-WebSocket-Key: AAAA", 1)},
		{name: "no key", req: "GET /ws HTTP/1.1\r\nHost: herald.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" + bearer + "\r\n\r\n"},
		{name: "HTTP/1.0", req: strings.Replace(upgradeHead("/ws", bearer), "HTTP/1.1", "HTTP/1.0", 1)},
		{name: "no Host", req: strings.Replace(upgradeHead("/ws", bearer), "Host: herald.test\r\n", "", 1)},
		{name: "two Hosts", req: strings.Replace(upgradeHead("/ws", bearer), "Host: herald.test\r\n", "Host: a\r\nHost: b\r\n", 1)},
		{name: "bad Host", req: strings.Replace(upgradeHead("/ws", bearer), "Host: herald.test", "Host: a b", 1)},
		{name: "folded field", req: upgradeHead("/ws", bearer, "X-Folded: a", " b")},
		{name: "NUL in a value", req: upgradeHead("/ws", bearer, "X-Bad: a\x00b")},
		{name: "space before colon", req: upgradeHead("/ws", bearer, "X-Bad : b")},
		{name: "bare LF lines", req: strings.ReplaceAll(upgradeHead("/ws", bearer), "\r\n", "\n")},
		{name: "content-length body", req: upgradeHead("/ws", bearer, "Content-Length: 5") + "hello"},
		{name: "chunked body", req: upgradeHead("/ws", bearer, "Transfer-Encoding: chunked") + "0\r\n\r\n"},
		{name: "large head (6 KB)", req: upgradeHead("/ws", bearer, "X-Pad: "+strings.Repeat("p", 6000))},
		{name: "head over MaxHeaderBytes", req: upgradeHead("/ws", bearer, "X-Pad: "+strings.Repeat("p", 40000))},
		{name: "many fields", req: upgradeHead("/ws", append([]string{bearer}, strings.Split(strings.Repeat("X-F: v\n", 100), "\n")[:100]...)...)},
		{name: "absolute target", req: upgradeHead("http://herald.test/ws", bearer)},
		{name: "other path", req: upgradeHead("/wsx", bearer)},
		{name: "path with dot segment", req: upgradeHead("/x/../ws", bearer)},
		{name: "escaped path", req: upgradeHead("/w%73", bearer)},
		{name: "bad escape in query", req: upgradeHead("/ws?a=%zz", bearer)},
		{name: "not HTTP", req: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"},
		{name: "healthz", req: "GET /healthz HTTP/1.1\r\nHost: herald.test\r\n\r\n"},
		// Limits: alice may hold 2 connections, then 429.
		{name: "bob 1 (kept)", req: upgradeHead("/ws", "Authorization: Bearer "+bob), keep: true},
		{name: "bob 2 (kept)", req: upgradeHead("/ws", "Authorization: Bearer "+bob), keep: true},
		{name: "bob 3 over the per-user limit", req: upgradeHead("/ws", "Authorization: Bearer "+bob)},
		{name: "carol 1 (kept)", req: upgradeHead("/ws", "Authorization: Bearer "+carol), keep: true},
		{name: "per-IP limit", req: upgradeHead("/ws", bearer)},
	}
	cfg := func() herald.Config {
		a, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		return herald.Config{Authenticator: a, AllowedOrigins: []string{"https://app.example.com"},
			MaxConnsPerUser: 2, MaxConnsPerIP: 3}
	}
	viaHTTP := startRawServer(t, cfg(), false)
	viaAccept := startRawServer(t, cfg(), true)
	kept := 0
	for _, st := range steps {
		want := exchange(t, viaHTTP.addr, st.req, st.after, st.keep)
		got := exchange(t, viaAccept.addr, st.req, st.after, st.keep)
		if st.keep {
			kept++
		}
		// A closed connection leaves its limits once its cleanup ran:
		// each step starts from the same count on both servers.
		waitFor(t, 5*time.Second, "connections closed", func() bool {
			return viaHTTP.srv.Connections() == kept && viaAccept.srv.Connections() == kept
		})
		if got != want {
			t.Errorf("%s:\n accept path %+v\n net/http    %+v", st.name, got, want)
		} else {
			t.Logf("%s: %+v", st.name, got)
		}
	}
}

// TestAcceptPathSlowHead: a client that never finishes its head, or
// sends nothing at all (accepted about a second after it connected: the
// listener's TCP_DEFER_ACCEPT), is closed once the http.Server's
// ReadHeaderTimeout has passed, without an answer, as net/http closes
// it; one still sending its head when the server shuts down is closed
// then (goleak checks its goroutine ended).
func TestAcceptPathSlowHead(t *testing.T) {
	for _, partial := range []string{
		"GET /ws HTTP/1.1\r\nHost: herald.test\r\nUpgrade: websocket\r\n", // ours, never whole
		"G", // undecided
		"",  // silent
	} {
		rs := startRawServer(t, herald.Config{}, true)
		nc, err := net.Dial("tcp", rs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := io.WriteString(nc, partial); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := nc.Read(make([]byte, 1))
		if n != 0 || err != io.EOF {
			t.Fatalf("%q: read %d bytes, %v; want the server to close the connection (EOF)", partial, n, err)
		}
		left, err := net.Dial("tcp", rs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer left.Close()
		_, _ = io.WriteString(left, partial)
	}
}

// upgradeHead is a plain upgrade to /ws for the anonymous client id.
func upgradeHead(id string) string {
	return "GET /ws HTTP/1.1\r\nHost: herald.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + wsKey() + "\r\nX-Client-Id: " + id + "\r\n\r\n"
}

// TestAcceptPathWaitsDoNotStallOthers: a connect that waits (an OnUpgrade
// hook that blocks, a head that has not all come) holds up no other
// connect: the accept loop hands each connection to a worker. (Serving
// on the accept loop itself when nothing can wait was measured and left
// out: docs/benchmarks.md.)
func TestAcceptPathWaitsDoNotStallOthers(t *testing.T) {
	t.Parallel()
	t.Run("blocking OnUpgrade hook", func(t *testing.T) {
		t.Parallel()
		entered, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		cfg := herald.Config{Hooks: herald.Hooks{OnUpgrade: func(ctx context.Context, r *herald.UpgradeRequest) (*herald.UpgradeResult, error) {
			if r.Identity.UserID == "slow" {
				once.Do(func() { close(entered) })
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return nil, nil
		}}}
		rs := startRawServer(t, cfg, true)
		slow := make(chan outcome, 1)
		go func() { slow <- exchange(t, rs.addr, upgradeHead("slow"), nil, false) }()
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the hook was not called")
		}
		for i := range 3 {
			if o := exchange(t, rs.addr, upgradeHead("fast"), nil, false); o.FirstFrame != "welcome" {
				t.Fatalf("connect %d while a hook blocks: %+v", i, o)
			}
		}
		close(release)
		if o := <-slow; o.FirstFrame != "welcome" {
			t.Fatalf("the held connect: %+v", o)
		}
	})
	t.Run("head still coming", func(t *testing.T) {
		t.Parallel()
		// A head timeout far beyond the bound below: a loop stalled by
		// the partial head would wait it out.
		rs := startRawServer(t, herald.Config{}, true, func(hs *http.Server) { hs.ReadHeaderTimeout = time.Minute })
		partial, err := net.Dial("tcp", rs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer partial.Close()
		head := upgradeHead("partial")
		if _, err := io.WriteString(partial, head[:20]); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for i := range 3 {
			if o := exchange(t, rs.addr, upgradeHead("whole"), nil, false); o.FirstFrame != "welcome" {
				t.Fatalf("connect %d beside a partial head: %+v", i, o)
			}
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("three connects beside a partial head took %v", d)
		}
		if _, err := io.WriteString(partial, head[20:]); err != nil {
			t.Fatal(err)
		}
		_ = partial.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(partial), &http.Request{Method: "GET"})
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("the partial head once whole: %v, %v", resp, err)
		}
	})
}
