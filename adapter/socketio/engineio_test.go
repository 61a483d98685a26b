package socketio

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/transport/engineio"
)

// engineServer serves cfg over a real Engine.IO server at /socket.io/ and
// returns its URL; the server is shut down when the test ends.
func engineServer(t *testing.T, cfg Config) string {
	url, _ := engineServerWith(t, cfg)
	return url
}

// engineServerWith is engineServer that also returns the Engine.IO server.
func engineServerWith(t *testing.T, cfg Config) (string, *engineio.Server) {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var eng *engineio.Server
	eng, err = engineio.New(engineio.Config{
		PingInterval: time.Minute,
		OnConnection: func(es *engineio.Socket, r *http.Request) engineio.Handler {
			h, _ := srv.ServeEngine(context.WithoutCancel(r.Context()), eng, es)
			return h
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/socket.io/", eng)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return ts.URL, eng
}

// wsClient is a raw Engine.IO WebSocket client.
type wsClient struct {
	t *testing.T
	c *websocket.Conn
}

func dialWS(t *testing.T, url string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/socket.io/?EIO=4&transport=websocket", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	w := &wsClient{t, c}
	if open := w.read(); !strings.HasPrefix(open.data, "0{") {
		t.Fatalf("open packet %v", open)
	}
	return w
}

func (w *wsClient) send(typ websocket.MessageType, b []byte) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, typ, b); err != nil {
		w.t.Fatal(err)
	}
}

// text sends a Socket.IO packet as an Engine.IO message.
func (w *wsClient) text(p string) { w.send(websocket.MessageText, []byte("4"+p)) }

func (w *wsClient) read() msg {
	w.t.Helper()
	m, err := w.next()
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

func (w *wsClient) next() (msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		typ, b, err := w.c.Read(ctx)
		if err != nil {
			return msg{}, err
		}
		if typ == websocket.MessageBinary {
			return msg{true, string(b)}, nil
		}
		if string(b) == "2" { // ping
			continue
		}
		return msg{false, string(b)}, nil
	}
}

func (w *wsClient) expect(want ...msg) {
	w.t.Helper()
	for i, x := range want {
		if got := w.read(); got != x {
			w.t.Fatalf("message %d = %v, want %v", i, got, x)
		}
	}
}

func TestOverEngineIOWebSocket(t *testing.T) {
	var (
		mu      sync.Mutex
		reasons []string
		sockets = map[string]*Socket{}
	)
	cfg := echoConfig()
	connect := cfg.OnConnect
	cfg.OnConnect = func(ctx context.Context, s *Socket, r *ConnectRequest) (ConnectResult, error) {
		mu.Lock()
		sockets[string(r.Auth)] = s
		mu.Unlock()
		return connect(ctx, s, r)
	}
	cfg.OnDisconnect = func(_ context.Context, s *Socket, reason string) {
		mu.Lock()
		reasons = append(reasons, reason)
		mu.Unlock()
	}
	url, eng := engineServerWith(t, cfg)

	a, b := dialWS(t, url), dialWS(t, url)
	a.text(`0{"n":"a"}`)
	b.text(`0{"n":"b"}`)
	sidReply(t, a.read(), "40", "sid")
	sidReply(t, b.read(), "40", "sid")
	a.expect(text(`42["auth",{"n":"a"}]`))
	b.expect(text(`42["auth",{"n":"b"}]`))

	// Binary both ways.
	a.text(`51-["message",{"x":{"_placeholder":true,"num":0}}]`)
	a.send(websocket.MessageBinary, []byte{1, 2, 3})
	a.expect(text(`451-["message-back",{"x":{"_placeholder":true,"num":0}}]`), binary(1, 2, 3))

	// One prepared event to both, framed once.
	p := mustPrepare(t, "/", Event{Name: "news", Args: MustValues("hi", []byte{7}), Offset: "9-1"})
	mu.Lock()
	sa, sb := sockets[`{"n":"a"}`], sockets[`{"n":"b"}`]
	mu.Unlock()
	for _, s := range []*Socket{sa, sb} {
		if err := s.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []*wsClient{a, b} {
		w.expect(text(`451-["news","hi",{"_placeholder":true,"num":0},"9-1"]`), binary(7))
	}

	// A frame made once by the engine (a hub broadcast), in order with the
	// socket's packets.
	frame := eng.NewMessage([]byte(`2["framed",1]`), false)
	for _, s := range []*Socket{sa, sb} {
		if err := s.SendFrame(frame); err != nil {
			t.Fatal(err)
		}
		if err := s.Emit("after", Args{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range []*wsClient{a, b} {
		w.expect(text(`42["framed",1]`), text(`42["after"]`))
	}

	// A server-to-client ack over the wire.
	got := make(chan string, 1)
	if err := sb.EmitWithAck("q", MustValues(1), 5*time.Second, func(a Args, err error) {
		got <- fmt.Sprintf("%s %v", a.array(nil), err)
	}); err != nil {
		t.Fatal(err)
	}
	b.expect(text(`420["q",1]`))
	b.text(`30["yes"]`)
	if g := <-got; g != `["yes"] <nil>` {
		t.Fatalf("ack %s", g)
	}

	// The server closes b: DISCONNECT, then the WebSocket closes.
	sb.Client().Close(ReasonServerClose)
	b.expect(text("41"))
	if _, err := b.next(); err == nil {
		t.Fatal("b still open")
	}
	// a's connection goes away: its socket leaves with the engine's reason.
	a.c.CloseNow()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(reasons)
		r := append([]string(nil), reasons...)
		mu.Unlock()
		if n == 2 {
			if r[0] != ReasonServerClose || r[1] != engineio.ErrTransportClose.Error() {
				t.Fatalf("reasons %q", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reasons %q", r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOverEngineIOPolling(t *testing.T) {
	url := engineServer(t, echoConfig()) + "/socket.io/?EIO=4&transport=polling"
	get := func(u string) string {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %s", u, resp.Status, b)
		}
		return string(b)
	}
	post := func(u, body string) {
		t.Helper()
		resp, err := http.Post(u, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", body, resp.Status)
		}
	}
	open := get(url)
	sid := open[strings.Index(open, `"sid":"`)+7:]
	sid = sid[:strings.IndexByte(sid, '"')]
	u := url + "&sid=" + sid

	post(u, "40/custom,\x1e40")
	var got []string
	for len(got) < 4 {
		got = append(got, strings.Split(get(u), "\x1e")...)
	}
	if !strings.HasPrefix(got[0], `40/custom,{"sid":"`) || got[1] != `42/custom,["auth",{}]` ||
		!strings.HasPrefix(got[2], `40{"sid":"`) || got[3] != `42["auth",{}]` {
		t.Fatalf("polled %q", got)
	}
	// Binary over polling: base64 after a "b".
	post(u, "451-["+`"message",{"_placeholder":true,"num":0}]`+"\x1ebAQID")
	if g := get(u); g != `451-["message-back",{"_placeholder":true,"num":0}]`+"\x1ebAQID" {
		t.Fatalf("polled %q", g)
	}
}

// A client that ServeEngine serves gives its session back through
// EngineSocket, which embedding code uses instead of keeping it.
func TestClientEngineSocket(t *testing.T) {
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan bool, 1)
	var eng *engineio.Server
	eng, err = engineio.New(engineio.Config{
		OnConnection: func(es *engineio.Socket, r *http.Request) engineio.Handler {
			h, c := srv.ServeEngine(context.WithoutCancel(r.Context()), eng, es)
			got <- c.EngineSocket() == es && c.Conn() != nil
			return h
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(eng)
	defer ts.Close()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Shutdown(ctx)
	}()
	dialWS(t, ts.URL)
	if !<-got {
		t.Error("EngineSocket is not the session ServeEngine served")
	}
	if (&Client{}).EngineSocket() != nil {
		t.Error("EngineSocket of a client on no Engine.IO session is not nil")
	}
}
