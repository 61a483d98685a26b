package herald_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/heraldrt/herald"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

// The Engine.IO handshakes that open a session on the WebSocket
// transport are served by Server.Serve's own accept path, like v1
// upgrades; these tests hold it to net/http's answers, and check that the
// rest of Socket.IO (polling, the upgrade from polling) still works
// through Serve.

// sioTraffic records, for a server behind Serve, which requests reached
// the http.Server's handler (an upgrade served by the accept path does
// not) and the ConnState transitions of each connection.
type sioTraffic struct {
	handled atomic.Int64 // requests to the Socket.IO path seen by hs.Handler
	mu      sync.Mutex
	states  map[net.Conn][]http.ConnState
	order   []net.Conn
}

func (tr *sioTraffic) install(hs *http.Server) {
	tr.states = make(map[net.Conn][]http.ConnState)
	next := hs.Handler
	hs.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, herald.DefaultSocketIOPath) {
			tr.handled.Add(1)
		}
		next.ServeHTTP(w, r)
	})
	hs.ConnState = func(nc net.Conn, st http.ConnState) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if _, ok := tr.states[nc]; !ok {
			tr.order = append(tr.order, nc)
		}
		tr.states[nc] = append(tr.states[nc], st)
	}
}

// last returns the states of the newest connection, as text.
func (tr *sioTraffic) last() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.order) == 0 {
		return ""
	}
	var b []string
	for _, st := range tr.states[tr.order[len(tr.order)-1]] {
		b = append(b, st.String())
	}
	return strings.Join(b, " ")
}

// eioOutcome is what a raw client sees of one Engine.IO request: the
// answer, and for a WebSocket session its open packet and the answer to
// a CONNECT.
type eioOutcome struct {
	Status        int
	Body          string
	ContentType   string
	Close         bool // Connection: close
	AllowOrigin   string
	SetCookie     bool
	Open          string // the open packet, its sid blanked
	Connect       string // the reply to the CONNECT, a sid in it blanked
	ConnectionErr string
}

var sidField = regexp.MustCompile(`"(sid|pid)":"[^"]*"`)

// eioExchange sends req on a new connection to addr; once a WebSocket
// session is open it sends the CONNECT connect (unless empty) and reads
// its reply ("-": only reads it, the CONNECT went with req). keep leaves an open session open until the test ends.
func eioExchange(t *testing.T, addr, req, connect string, keep bool) eioOutcome {
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
		return eioOutcome{ConnectionErr: "no answer"}
	}
	o := eioOutcome{
		Status:      resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"),
		Close:       resp.Close,
		AllowOrigin: resp.Header.Get("Access-Control-Allow-Origin"),
		SetCookie:   resp.Header.Get("Set-Cookie") != "",
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		o.Body = sidField.ReplaceAllString(string(b), `"$1":"…"`)
		_ = nc.Close()
		return o
	}
	// The text frames up to the first that is not a ping.
	next := func() string {
		for {
			op, payload, err := readFrame(br)
			if err != nil {
				return "error: " + err.Error()
			}
			if op == 8 {
				return "close"
			}
			if op == 1 && string(payload) == "2" {
				continue
			}
			return sidField.ReplaceAllString(string(payload), `"$1":"…"`)
		}
	}
	o.Open = next()
	if connect != "" {
		if connect != "-" {
			if _, err := nc.Write(maskedFrame(1, []byte(connect))); err != nil {
				t.Fatal(err)
			}
		}
		o.Connect = next()
	}
	if keep {
		t.Cleanup(func() { _ = nc.Close() })
		return o
	}
	_, _ = nc.Write(maskedFrame(8, []byte{0x03, 0xe8}))
	_ = nc.Close()
	return o
}

// eioHead is an Engine.IO request head for target with the extra fields.
func eioHead(target string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\nHost: herald.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: " + wsKey() + "\r\nSec-WebSocket-Version: 13\r\n")
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// TestSocketIOAcceptPathAgreesWithNetHTTP sends the same Engine.IO
// requests to a server behind net/http and to one behind Server.Serve
// and wants the same answers: statuses and bodies of refusals (the
// Engine.IO protocol's), CORS and cookie headers, the open packet, and
// the CONNECT's reply (admission: token, origin, limits). It also checks
// which path served each request on the Serve side: a WebSocket
// handshake without a sid never reaches hs.Handler and its ConnState
// goes new, active, then hijacked (or closed after a refusal), as for a
// v1 upgrade.
func TestSocketIOAcceptPathAgreesWithNetHTTP(t *testing.T) {
	good, err := jwtauth.Sign(testSecret, "alice", nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := jwtauth.Sign(testSecret, "bob", nil, nil, time.Hour)
	carol, _ := jwtauth.Sign(testSecret, "carol", nil, nil, time.Hour)
	expired, _ := gojwt.NewWithClaims(gojwt.SigningMethodHS256, gojwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}).SignedString(testSecret)

	const ws = "/socket.io/?EIO=4&transport=websocket"
	bearer := "Authorization: Bearer " + good
	auth := `40{"token":"` + good + `"}`
	type step struct {
		name    string
		req     string
		connect string // CONNECT sent once the session is open
		keep    bool
		fast    bool // served by the accept path on the Serve side
		drain   bool // both servers draining
	}
	steps := []step{
		{name: "token in CONNECT auth", req: eioHead(ws), connect: auth, fast: true},
		{name: "bearer header", req: eioHead(ws, bearer), connect: "40", fast: true},
		{name: "token cookie", req: eioHead(ws, "Cookie: token="+good), connect: "40", fast: true},
		{name: "token in query", req: eioHead(ws + "&token=" + good), connect: "40", fast: true},
		{name: "CONNECT right behind the head", req: eioHead(ws, bearer) + string(maskedFrame(1, []byte("40"))), connect: "-", fast: true},
		{name: "no token", req: eioHead(ws), connect: "40", fast: true},
		{name: "expired token", req: eioHead(ws), connect: `40{"token":"` + expired + `"}`, fast: true},
		{name: "bad token", req: eioHead(ws, "Authorization: Bearer not.a.token"), connect: "40", fast: true},
		{name: "allowed origin", req: eioHead(ws, bearer, "Origin: https://app.example.com"), connect: "40", fast: true},
		{name: "foreign origin", req: eioHead(ws, bearer, "Origin: https://evil.example.net"), connect: "40", fast: true},
		{name: "cookie from a foreign origin", req: eioHead(ws, "Cookie: token="+good, "Origin: https://evil.example.net"), connect: "40", fast: true},
		{name: "namespace unknown", req: eioHead(ws, bearer), connect: "40/nope,", fast: true},
		{name: "EIO=3", req: eioHead("/socket.io/?EIO=3&transport=websocket", bearer), fast: true},
		{name: "no EIO", req: eioHead("/socket.io/?transport=websocket", bearer), fast: true},
		{name: "EIO=3 with a CORS origin", req: eioHead("/socket.io/?EIO=3&transport=websocket", "Origin: https://app.example.com"), fast: true},
		{name: "no key", req: strings.Replace(eioHead(ws, bearer), "Sec-WebSocket-Key: ", "X-Key: ", 1), fast: true},
		{name: "version 8", req: strings.Replace(eioHead(ws, bearer), "Version: 13", "Version: 8", 1), fast: true},
		{name: "no Connection: Upgrade", req: strings.Replace(eioHead(ws, bearer), "Connection: Upgrade", "Connection: keep-alive", 1), fast: true},
		{name: "draining", req: eioHead(ws, bearer), connect: "40", fast: true, drain: true},
		// Not for the accept path: net/http serves them on both sides.
		{name: "unknown transport", req: eioHead("/socket.io/?EIO=4&transport=foo", bearer)},
		{name: "unknown sid", req: eioHead(ws+"&sid=AAAAAAAAAAAAAAAAAAAA", bearer)},
		{name: "bad sid", req: eioHead(ws+"&sid=x", bearer)},
		{name: "polling with Upgrade", req: eioHead("/socket.io/?EIO=4&transport=polling", bearer)},
		{name: "no Upgrade field", req: strings.Replace(eioHead(ws, bearer), "Upgrade: websocket\r\n", "", 1)},
		{name: "polling handshake", req: "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: herald.test\r\nOrigin: https://app.example.com\r\n\r\n"},
		{name: "POST", req: strings.Replace(eioHead(ws, bearer), "GET", "POST", 1)},
		{name: "escaped path", req: eioHead("/socket%2Eio/?EIO=4&transport=websocket", bearer)},
		{name: "subpath", req: eioHead("/socket.io/x?EIO=4&transport=websocket", bearer)},
		// Limits: bob may hold 2 connections, then the CONNECT is refused.
		{name: "bob 1 (kept)", req: eioHead(ws, "Authorization: Bearer "+bob), connect: "40", keep: true, fast: true},
		{name: "bob 2 (kept)", req: eioHead(ws, "Authorization: Bearer "+bob), connect: "40", keep: true, fast: true},
		{name: "bob 3 over the per-user limit", req: eioHead(ws, "Authorization: Bearer "+bob), connect: "40", fast: true},
		{name: "carol 1 (kept)", req: eioHead(ws, "Authorization: Bearer "+carol), connect: "40", keep: true, fast: true},
		{name: "per-IP limit", req: eioHead(ws, bearer), connect: "40", fast: true},
	}
	cfg := func() herald.Config {
		a, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close() })
		return herald.Config{Authenticator: a, AllowedOrigins: []string{"https://app.example.com"},
			MaxConnsPerUser: 2, MaxConnsPerIP: 3,
			SocketIO: herald.SocketIOConfig{Enabled: true, Cookie: "io", CORSOrigins: []string{"https://app.example.com"}}}
	}
	viaHTTP := startRawServer(t, cfg(), false)
	var tr sioTraffic
	viaAccept := startRawServer(t, cfg(), true, tr.install)
	kept := 0
	for _, st := range steps {
		if st.drain {
			viaHTTP.srv.SetDraining(true)
			viaAccept.srv.SetDraining(true)
		}
		want := eioExchange(t, viaHTTP.addr, st.req, st.connect, st.keep)
		before := tr.handled.Load()
		got := eioExchange(t, viaAccept.addr, st.req, st.connect, st.keep)
		handled := tr.handled.Load() > before
		if st.drain {
			viaHTTP.srv.SetDraining(false)
			viaAccept.srv.SetDraining(false)
		}
		if st.keep {
			kept++
		}
		waitFor(t, 5*time.Second, "connections closed", func() bool {
			return viaHTTP.srv.Connections() == kept && viaAccept.srv.Connections() == kept
		})
		if got != want {
			t.Errorf("%s:\n accept path %+v\n net/http    %+v", st.name, got, want)
		} else {
			t.Logf("%s: %+v", st.name, got)
		}
		if st.fast == handled {
			t.Errorf("%s: hs.Handler saw the request: %v, want %v", st.name, handled, !st.fast)
		}
		if st.fast {
			wantStates := "new active closed"
			if got.Status == http.StatusSwitchingProtocols {
				wantStates = "new active hijacked"
			}
			waitFor(t, 5*time.Second, st.name+": ConnState "+wantStates, func() bool { return tr.last() == wantStates })
		}
	}
}

// TestSocketIOAcceptPathUpgradeRate: the per-IP upgrade rate, spent at
// the Engine.IO handshake, refuses the same way on both paths.
func TestSocketIOAcceptPathUpgradeRate(t *testing.T) {
	cfg := herald.Config{UpgradeRatePerIP: 0.01, UpgradeBurstPerIP: 1,
		SocketIO: herald.SocketIOConfig{Enabled: true}}
	viaHTTP := startRawServer(t, cfg, false)
	viaAccept := startRawServer(t, cfg, true)
	req := eioHead("/socket.io/?EIO=4&transport=websocket")
	for i, name := range []string{"first", "over the rate"} {
		want := eioExchange(t, viaHTTP.addr, req, "40", false)
		got := eioExchange(t, viaAccept.addr, req, "40", false)
		if got != want {
			t.Errorf("%s:\n accept path %+v\n net/http    %+v", name, got, want)
		}
		if wantStatus := []int{101, 400}[i]; got.Status != wantStatus {
			t.Errorf("%s: status %d, want %d (%+v)", name, got.Status, wantStatus, got)
		}
	}
}

// TestSocketIOThroughServe: socket.io-client over each transport works
// through Server.Serve: a WebSocket-only client's handshake is served by
// the accept path (hs.Handler never sees it), long-polling and the
// upgrade from polling by net/http; each joins a room and gets a
// publication.
func TestSocketIOThroughServe(t *testing.T) {
	dir := sioNodeDir(t)
	var tr sioTraffic
	rs := startRawServer(t, sioConfig(), true, tr.install)
	p := startPeer(t, dir)
	for _, tt := range []struct {
		name    string
		opts    map[string]any
		handled bool // hs.Handler sees Socket.IO requests
	}{
		{name: "websocket", opts: map[string]any{"transports": []string{"websocket"}}},
		{name: "polling", opts: map[string]any{"transports": []string{"polling"}}, handled: true},
		{name: "upgrade", opts: map[string]any{}, handled: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p.t = t
			before := tr.handled.Load()
			p.connect(tt.name, "http://"+rs.addr, tt.opts)
			if tt.name == "upgrade" {
				if up := p.expect("upgrade", is(tt.name, "upgrade", "")); up["transport"] != "websocket" {
					t.Fatalf("upgraded to %v", up["transport"])
				}
			}
			res := p.call(tt.name, "join", "herald:join", map[string]any{"room": "served"})
			if len(res) != 1 || res[0].(map[string]any)["room"] != "served" {
				t.Fatalf("join ack = %v", res)
			}
			if _, err := rs.srv.Publish(context.Background(), "served", "news", map[string]any{"n": tt.name}); err != nil {
				t.Fatal(err)
			}
			ev := p.expect("news", is(tt.name, "event", "news"))
			if args := ev["args"].([]any); len(args) != 1 || args[0].(map[string]any)["n"] != tt.name {
				t.Fatalf("news args = %v", args)
			}
			if handled := tr.handled.Load() > before; handled != tt.handled {
				t.Errorf("hs.Handler saw Socket.IO requests: %v, want %v", handled, tt.handled)
			}
			p.do(map[string]any{"op": "disconnect", "name": tt.name})
			p.expect("disconnect", is(tt.name, "disconnect", ""))
		})
	}
	p.t = t
	waitFor(t, 5*time.Second, "connections closed", func() bool { return rs.srv.Connections() == 0 })
}
