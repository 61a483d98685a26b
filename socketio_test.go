package herald_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/adapter/socketio"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
)

// sioConfig is a server config with Socket.IO on and quick pings, with
// a pong deadline a loaded machine meets. With 1 s, at load ~25, a real
// client's polling POST got a non-200 ("xhr post error" in the peer),
// which is what a session closed for heartbeat timeout answers; the
// examples' real-client tests failed so with 200 ms (their logs said so).
func sioConfig() herald.Config {
	return herald.Config{SocketIO: herald.SocketIOConfig{Enabled: true, PingInterval: 300 * time.Millisecond, PingTimeout: 5 * time.Second}}
}

// A Socket.IO client over each transport joins a room with herald:join
// (answered through its ack), and a server publication to the room
// reaches it and a v1 client in the same room: one system, two protocols.
func TestSocketIOMixedRoom(t *testing.T) {
	dir := sioNodeDir(t)
	ts := startServer(t, sioConfig())
	v1 := dial(t, ts.URL)
	v1.join("mixed")
	p := startPeer(t, dir)
	for _, tt := range []struct {
		name string
		opts map[string]any
		want string // transport once connected (or upgraded)
	}{
		{name: "polling", opts: map[string]any{"transports": []string{"polling"}}, want: "polling"},
		{name: "websocket", opts: map[string]any{"transports": []string{"websocket"}}, want: "websocket"},
		{name: "upgrade", opts: map[string]any{}, want: "websocket"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p.t = t
			c := p.connect(tt.name, ts.HTTP.URL, tt.opts)
			if tt.name == "upgrade" {
				// Connected over polling; the upgrade may have finished
				// before the CONNECT reply came, on a loaded machine.
				up := p.expect("upgrade", is(tt.name, "upgrade", ""))
				if up["transport"] != tt.want {
					t.Fatalf("upgraded to %v", up["transport"])
				}
			} else if c["transport"] != tt.want {
				t.Fatalf("connected over %v, want %s", c["transport"], tt.want)
			}
			res := p.call(tt.name, "join", "herald:join", map[string]any{"room": "mixed"})
			if len(res) != 1 || res[0].(map[string]any)["room"] != "mixed" {
				t.Fatalf("join ack = %v", res)
			}
			if _, err := ts.Publish(context.Background(), "mixed", "news", map[string]any{"n": tt.name}); err != nil {
				t.Fatal(err)
			}
			ev := p.expect("news", is(tt.name, "event", "news"))
			args := ev["args"].([]any)
			if len(args) != 1 || args[0].(map[string]any)["n"] != tt.name {
				t.Fatalf("news args = %v", args)
			}
			got := v1.expect("event")
			if got["event"] != "news" || got["data"].(map[string]any)["n"] != tt.name {
				t.Fatalf("v1 client got %v", got)
			}
			// A Socket.IO client publishes to the room through the core:
			// the v1 client gets it.
			res = p.call(tt.name, "pub", "herald:publish", map[string]any{"room": "mixed", "event": "chat", "data": "hi " + tt.name})
			if m := res[0].(map[string]any); m["msgId"] == nil {
				t.Fatalf("publish ack = %v", res)
			}
			if got := v1.expect("event"); got["event"] != "chat" || got["data"] != "hi "+tt.name {
				t.Fatalf("v1 client got %v", got)
			}
			p.expect("own chat", is(tt.name, "event", "chat"))
			p.do(map[string]any{"op": "disconnect", "name": tt.name})
			p.expect("disconnect", is(tt.name, "disconnect", ""))
		})
	}
	p.t = t
	waitFor(t, 5*time.Second, "socket.io connections closed", func() bool {
		return metricValue(t, ts, `herald_protocol_connections{protocol="socketio"}`) == 0
	})
	if n := metricValue(t, ts, `herald_protocol_connections_opened_total{protocol="socketio"}`); n != 3 {
		t.Errorf("socket.io connections opened: %v", n)
	}
	if n := metricValue(t, ts, `herald_protocol_connections_opened_total{protocol="v1"}`); n != 1 {
		t.Errorf("v1 connections opened: %v", n)
	}
	if n := metricValue(t, ts, `herald_protocol_messages_received_total{protocol="socketio",type="publish"}`); n != 3 {
		t.Errorf("socket.io publishes counted: %v", n)
	}
}

// Errors of the core come back through the ack as {"error":{code,message}}.
func TestSocketIOErrorsAnswerTheAck(t *testing.T) {
	dir := sioNodeDir(t)
	ts := startServer(t, sioConfig())
	p := startPeer(t, dir)
	p.connect("s", ts.HTTP.URL, nil)
	for _, tt := range []struct {
		name, event string
		arg         any
		code        string
	}{
		{name: "publish before join", event: "herald:publish", arg: map[string]any{"room": "r", "event": "e"}, code: "not_joined"},
		{name: "bad room", event: "herald:join", arg: map[string]any{"room": ""}, code: "bad_request"},
		{name: "not an object", event: "herald:join", arg: "r", code: "bad_request"},
		{name: "leave a room not joined", event: "herald:leave", arg: map[string]any{"room": "r"}, code: "not_joined"},
		{name: "other user's room", event: "herald:join", arg: map[string]any{"room": "user:somebody-else"}, code: "forbidden"},
		{name: "no OnEvent hook", event: "hello", arg: 1, code: "no_handler"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := p.call("s", tt.name, tt.event, tt.arg)
			e, _ := res[0].(map[string]any)["error"].(map[string]any)
			if e == nil || e["code"] != tt.code {
				t.Fatalf("ack = %v, want error %s", res, tt.code)
			}
		})
	}
}

// Events reach Hooks.OnEvent, whose reply is the ack's argument; the
// SocketIOConfig hooks see the CONNECT's auth, emit to the socket, get
// binary arguments and ack with several arguments; the server's own
// emit with ack gets the client's answer.
func TestSocketIOEventsAndAcks(t *testing.T) {
	dir := sioNodeDir(t)
	cfg := sioConfig()
	cfg.Hooks.OnEvent = func(ctx context.Context, c *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
		if event == "fail" {
			return nil, &herald.EventError{Code: "nope", Message: "refused"}
		}
		return map[string]any{"event": event, "data": data, "user": c.UserID}, nil
	}
	serverAck := make(chan socketio.Args, 1)
	cfg.SocketIO.OnConnect = func(ctx context.Context, c *herald.ConnInfo, s *socketio.Socket) error {
		if herald.SocketIOSocket(ctx) != s {
			return errors.New("SocketIOSocket(ctx) is not the socket")
		}
		var a struct{ Refuse bool }
		_ = json.Unmarshal(s.Auth(), &a)
		if a.Refuse {
			return &socketio.ConnectError{Message: "go away"}
		}
		if err := s.Emit("auth", socketio.Args{JSON: []json.RawMessage{s.Auth()}}); err != nil {
			return err
		}
		return s.EmitWithAck("question", socketio.MustValues("q", 42), 5*time.Second, func(a socketio.Args, err error) {
			if err == nil {
				serverAck <- a
			}
		})
	}
	cfg.SocketIO.OnEvent = func(ctx context.Context, c *herald.ConnInfo, s *socketio.Socket, event string, args socketio.Args, ack socketio.AckFunc) {
		if event == "binary" && ack != nil {
			_ = ack(args) // every argument back, attachments included
			return
		}
		// Anything else goes the default way.
		_ = s.Emit("unexpected", socketio.MustValues(event))
	}
	ts := startServer(t, cfg)
	p := startPeer(t, dir)

	p.do(map[string]any{"op": "connect", "name": "no", "url": ts.HTTP.URL, "opts": map[string]any{"auth": map[string]any{"refuse": true}, "reconnection": false}})
	if m := p.expect("refusal", is("no", "connect_error", "")); m["message"] != "go away" {
		t.Fatalf("connect_error = %v", m)
	}

	p.connect("s", ts.HTTP.URL, map[string]any{"auth": map[string]any{"hello": "there"}})
	if ev := p.expect("auth event", is("s", "event", "auth")); ev["args"].([]any)[0].(map[string]any)["hello"] != "there" {
		t.Fatalf("auth event = %v", ev)
	}
	p.expect("question", is("s", "event", "question"))
	a := recv(t, serverAck)
	if len(a.JSON) != 1 || string(a.JSON[0]) != `{"echo":["q",42]}` {
		t.Fatalf("client's ack = %s", a.JSON)
	}

	res := p.call("s", "bin", "binary", "text", map[string]any{"$bin": base64.StdEncoding.EncodeToString([]byte{1, 2, 3})}, 7)
	if len(res) != 3 || res[0] != "text" || res[1].(map[string]any)["$bin"] != "AQID" || res[2] != float64(7) {
		t.Fatalf("binary ack = %v", res)
	}
}

// Without SocketIOConfig.OnEvent, events go to Hooks.OnEvent: one
// argument as its data, several as an array.
func TestSocketIOHooksOnEvent(t *testing.T) {
	dir := sioNodeDir(t)
	cfg := sioConfig()
	cfg.Hooks.OnEvent = func(ctx context.Context, c *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
		if event == "fail" {
			return nil, &herald.EventError{Code: "nope", Message: "refused"}
		}
		return map[string]any{"event": event, "data": data}, nil
	}
	ts := startServer(t, cfg)
	p := startPeer(t, dir)
	p.connect("s", ts.HTTP.URL, nil)
	res := p.call("s", "one", "greet", map[string]any{"a": 1})
	if m := res[0].(map[string]any); m["event"] != "greet" || m["data"].(map[string]any)["a"] != float64(1) {
		t.Fatalf("ack = %v", res)
	}
	res = p.call("s", "two", "greet", 1, "x")
	if d := res[0].(map[string]any)["data"].([]any); len(d) != 2 || d[1] != "x" {
		t.Fatalf("ack = %v", res)
	}
	res = p.call("s", "fail", "fail")
	if e := res[0].(map[string]any)["error"].(map[string]any); e["code"] != "nope" || e["message"] != "refused" {
		t.Fatalf("ack = %v", res)
	}
}

// A Socket.IO client authenticates with the JWT of its CONNECT auth.token,
// checked with the same rules as a v1 upgrade: a bad token and a revoked
// one are refused with a CONNECT_ERROR naming the v1 error code, the
// token's permissions apply to joins, the connection limit counts both
// protocols, and a revocation closes the socket (herald:close, then a
// server DISCONNECT).
func TestSocketIOAuthentication(t *testing.T) {
	dir := sioNodeDir(t)
	cfg := sioConfig()
	cfg.MaxConnsPerUser = 2
	ts, _, _ := authServer(t, cfg, jwtauth.Config{})
	tok := func(sub string) string { return sign(t, gojwt.SigningMethodHS256, testSecret, claims(sub, time.Hour)) }
	p := startPeer(t, dir)
	// refused returns the data of the server's CONNECT_ERROR; a
	// connect_error without data is the client's own (a transport error)
	// and fails the test instead of panicking the package's run.
	refused := func(name string, auth map[string]any) map[string]any {
		t.Helper()
		p.do(map[string]any{"op": "connect", "name": name, "url": ts.HTTP.URL, "opts": map[string]any{"auth": auth, "reconnection": false}})
		m := p.expect(name+" refusal", is(name, "connect_error", ""))
		data, ok := m["data"].(map[string]any)
		if !ok {
			t.Fatalf("%s: connect_error without the server's data: %v", name, m)
		}
		return data
	}
	if d := refused("garbage", map[string]any{"token": "not-a-jwt"}); d["status"] != float64(401) {
		t.Fatalf("bad token: %v", d)
	}
	if d := refused("none", nil); d["status"] != float64(401) {
		t.Fatalf("no token: %v", d)
	}

	p.connect("ann", ts.HTTP.URL, map[string]any{"auth": map[string]any{"token": tok("ann")}})
	if res := p.call("ann", "ok", "herald:join", map[string]any{"room": "chat:1"}); res[0].(map[string]any)["room"] != "chat:1" {
		t.Fatalf("join chat:1: %v", res)
	}
	if res := p.call("ann", "no", "herald:join", map[string]any{"room": "secret"}); res[0].(map[string]any)["error"].(map[string]any)["code"] != "forbidden" {
		t.Fatalf("join secret: %v", res)
	}
	v1 := dial(t, ts.URL, withHeader("Authorization", "Bearer "+tok("ann")))
	if d := refused("third", map[string]any{"token": tok("ann")}); d["code"] != "conns_per_user" {
		t.Fatalf("third connection of ann: %v", d)
	}
	_ = v1.c.CloseNow()

	if err := ts.Revoke(context.Background(), herald.RevokeRequest{User: "ann"}); err != nil {
		t.Fatal(err)
	}
	if m := p.expect("herald:close", is("ann", "event", "herald:close")); m["args"].([]any)[0].(map[string]any)["code"] != float64(4003) {
		t.Fatalf("herald:close = %v", m)
	}
	if m := p.expect("disconnect", is("ann", "disconnect", "")); m["reason"] != "io server disconnect" {
		t.Fatalf("disconnect = %v", m)
	}
	if d := refused("revoked", map[string]any{"token": tok("ann")}); d["code"] != "revoked" {
		t.Fatalf("revoked token: %v", d)
	}
}

// A Socket.IO client over the message rate is answered rate_limited
// through its ack, and closed (its Engine.IO connection) when it keeps
// sending through a whole burst of refusals, as a v1 client is.
func TestSocketIOMessageRate(t *testing.T) {
	dir := sioNodeDir(t)
	cfg := sioConfig()
	cfg.MessageRate, cfg.MessageBurst = 0.5, 2
	ts := startServer(t, cfg)
	p := startPeer(t, dir)
	p.connect("s", ts.HTTP.URL, map[string]any{"reconnection": false})
	p.call("s", "1", "herald:ping", map[string]any{})
	p.call("s", "2", "herald:ping", map[string]any{})
	if res := p.call("s", "3", "herald:ping", map[string]any{}); res[0].(map[string]any)["error"].(map[string]any)["code"] != "rate_limited" {
		t.Fatalf("third ping: %v", res)
	}
	for i := range 3 {
		p.do(map[string]any{"op": "emit", "name": "s", "event": "herald:ping", "args": []any{map[string]any{}}, "tag": i})
	}
	p.expect("disconnect", is("s", "disconnect", ""))
	waitFor(t, 5*time.Second, "closed for abuse", func() bool {
		return metricValue(t, ts, `herald_protocol_connections_closed_total{protocol="socketio",reason="policy_violation"}`) == 1
	})
}
