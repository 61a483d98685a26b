package socketio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	sio "github.com/heraldrt/herald/protocol/socketio"
	"github.com/heraldrt/herald/transport"
)

// recorder collects what the hooks saw.
type recorder struct {
	mu          sync.Mutex
	requests    []ConnectRequest
	events      []string
	disconnects []string
	errors      []error
	sockets     []*Socket
}

func (r *recorder) config(base Config) Config {
	base.OnConnect = func(_ context.Context, s *Socket, req *ConnectRequest) (ConnectResult, error) {
		r.mu.Lock()
		r.requests = append(r.requests, *req)
		r.sockets = append(r.sockets, s)
		r.mu.Unlock()
		return ConnectResult{}, nil
	}
	base.OnEvent = func(_ context.Context, s *Socket, event string, args Args, ack AckFunc) {
		r.mu.Lock()
		r.events = append(r.events, fmt.Sprintf("%s %s %s %d ack=%t", s.Namespace(), event, args.array(nil), len(args.Binary), ack != nil))
		r.mu.Unlock()
	}
	base.OnDisconnect = func(_ context.Context, s *Socket, reason string) {
		r.mu.Lock()
		r.disconnects = append(r.disconnects, s.Namespace()+" "+reason)
		r.mu.Unlock()
	}
	base.OnProtocolError = func(_ context.Context, err error) {
		r.mu.Lock()
		r.errors = append(r.errors, err)
		r.mu.Unlock()
	}
	return base
}

func (r *recorder) disconnected() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.disconnects...)
}

func TestNewRejectsBadNamespaces(t *testing.T) {
	t.Parallel()
	for _, ns := range []string{"", "admin", "/a,b", "/" + strings.Repeat("x", 300)} {
		if _, err := New(Config{Namespaces: []string{ns}}); err == nil {
			t.Errorf("New accepted namespace %q", ns)
		}
	}
}

func TestConnectRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"plain error", errors.New("Not authorized"), `4{"message":"Not authorized"}`},
		{"ConnectError", &ConnectError{Message: "token expired"}, `4{"message":"token expired"}`},
		{"ConnectError with data", &ConnectError{Message: "no", Data: json.RawMessage(`{"code":"expired"}`)}, `4{"message":"no","data":{"code":"expired"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var rec recorder
			cfg := rec.config(Config{})
			acks := make(chan error, 2)
			cfg.OnConnect = func(_ context.Context, s *Socket, _ *ConnectRequest) (ConnectResult, error) {
				_ = s.Emit("never", Args{}) // held until the reply, then dropped
				// An ack asked for by a refused socket fails at once.
				if err := s.EmitWithAck("never", Args{}, time.Hour, func(_ Args, err error) { acks <- err }); err != nil {
					t.Error(err)
				}
				return ConnectResult{}, tt.err
			}
			c, conn := newClient(t, cfg)
			c.HandleText([]byte(`0{"token":"x"}`))
			conn.expect(t, text(tt.want))
			conn.quiet(t)
			if err := <-acks; !errors.Is(err, ErrDisconnected) {
				t.Fatalf("ack of a refused socket: %v", err)
			}
			if c.Socket("/") != nil {
				t.Fatal("refused socket joined")
			}
			if d := rec.disconnected(); len(d) != 0 {
				t.Fatalf("OnDisconnect ran for a refused socket: %v", d)
			}
			// The client may try again.
			c.HandleText([]byte(`0{"token":"y"}`))
			conn.expect(t, text(tt.want))
		})
	}
}

func TestConnectRecovery(t *testing.T) {
	t.Parallel()
	var got ConnectRequest
	cfg := Config{OnConnect: func(_ context.Context, s *Socket, r *ConnectRequest) (ConnectResult, error) {
		got = *r
		return ConnectResult{SID: "old-sid", PID: "pid-1", Data: 42}, nil
	}}
	c, conn := newClient(t, cfg)
	c.HandleText([]byte(`0{"token":"t","pid":"pid-1","offset":"17-3"}`))
	v := sidReply(t, conn.next(t, 1)[0], "0", "sid", "pid")
	if v["sid"] != "old-sid" || v["pid"] != "pid-1" {
		t.Fatalf("reply %v", v)
	}
	if got.PID != "pid-1" || got.Offset != "17-3" || string(got.Auth) != `{"token":"t","pid":"pid-1","offset":"17-3"}` || got.Namespace != "/" {
		t.Fatalf("request %+v", got)
	}
	s := c.Socket("/")
	if s.ID() != "old-sid" || s.PID() != "pid-1" || s.Data() != 42 {
		t.Fatalf("socket %q %q %v", s.ID(), s.PID(), s.Data())
	}
	// A pid or offset that is not a string is not one.
	c.HandleText([]byte(`1`))
	c.HandleText([]byte(`0{"pid":7,"offset":{}}`))
	conn.next(t, 1)
	if got.PID != "" || got.Offset != "" {
		t.Fatalf("request %+v", got)
	}
}

func TestEventOffset(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	p, err := Prepare("/", Event{Name: "news", Args: MustValues("hi", 1), Offset: "1700-4"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Socket("/").Send(p); err != nil {
		t.Fatal(err)
	}
	conn.expect(t, text(`2["news","hi",1,"1700-4"]`))
	if err := c.Socket("/").Send(mustPrepare(t, "/custom", Event{Name: "x"})); !errors.Is(err, ErrWrongNamespace) {
		t.Fatalf("Send of another namespace's event: %v", err)
	}
}

func mustPrepare(t testing.TB, ns string, ev Event) *Prepared {
	t.Helper()
	p, err := Prepare(ns, ev)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrepareRejects(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		ev   Event
	}{
		{"reserved name", Event{Name: "connect"}},
		{"invalid JSON arg", Event{Name: "x", Args: Args{JSON: []json.RawMessage{json.RawMessage(`{`)}}}},
		{"attachment without placeholder", Event{Name: "x", Args: Args{Binary: [][]byte{{1}}}}},
	} {
		if _, err := Prepare("/", tt.ev); err == nil {
			t.Errorf("%s: Prepare accepted %+v", tt.name, tt.ev)
		}
	}
}

func TestEmitValues(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	s := c.Socket("/")
	if err := s.Emit("mixed", MustValues("a", []byte{9, 8}, map[string]any{"k": []byte{7}})); err != nil {
		t.Fatal(err)
	}
	conn.expect(t,
		text(`52-["mixed","a",{"_placeholder":true,"num":0},{"k":{"_placeholder":true,"num":1}}]`),
		binary(9, 8), binary(7))
	// An event name with characters JSON escapes.
	if err := s.Emit("a<\"é\">", Args{}); err != nil {
		t.Fatal(err)
	}
	got := conn.next(t, 1)[0].data
	var arr []string
	if err := json.Unmarshal([]byte(got[1:]), &arr); err != nil || arr[0] != "a<\"é\">" {
		t.Fatalf("event %s: %v %v", got, arr, err)
	}
}

func TestArgsResolve(t *testing.T) {
	t.Parallel()
	a := Args{JSON: []json.RawMessage{json.RawMessage(`"x"`), json.RawMessage(`{"b":{"_placeholder":true,"num":0}}`)}, Binary: [][]byte{{1, 2}}}
	v, err := a.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 2 || v[0] != "x" || !bytes.Equal(v[1].(map[string]any)["b"].([]byte), []byte{1, 2}) {
		t.Fatalf("Resolve = %#v", v)
	}
	if _, err := (Args{JSON: a.JSON}).Resolve(); err == nil {
		t.Fatal("Resolve without the attachment")
	}
}

func TestServerAck(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	s := c.Socket("/")
	type result struct {
		args Args
		err  error
	}
	results := make(chan result, 4)
	cb := func(a Args, err error) { results <- result{a, err} }

	if err := s.EmitWithAck("question", MustValues(1), 0, cb); err != nil {
		t.Fatal(err)
	}
	conn.expect(t, text(`20["question",1]`))
	c.HandleText([]byte(`30["answer",{"x":1}]`))
	r := <-results
	if r.err != nil || string(r.args.array(nil)) != `["answer",{"x":1}]` {
		t.Fatalf("ack %s, %v", r.args.array(nil), r.err)
	}
	// A second ack with the same id, or an unknown one, is ignored.
	c.HandleText([]byte(`30[]`))
	c.HandleText([]byte(`399[]`))

	// Binary ack.
	if err := s.EmitWithAck("q2", Args{}, 0, cb); err != nil {
		t.Fatal(err)
	}
	conn.expect(t, text(`21["q2"]`))
	c.HandleText([]byte(`61-1[{"_placeholder":true,"num":0}]`))
	c.HandleBinary([]byte{5})
	r = <-results
	if v, err := r.args.Resolve(); r.err != nil || err != nil || !bytes.Equal(v[0].([]byte), []byte{5}) {
		t.Fatalf("binary ack %v %v %v", v, r.err, err)
	}

	// Timeout.
	if err := s.EmitWithAck("q3", Args{}, 20*time.Millisecond, cb); err != nil {
		t.Fatal(err)
	}
	conn.expect(t, text(`22["q3"]`))
	if r := <-results; !errors.Is(r.err, ErrAckTimeout) {
		t.Fatalf("timeout: %v", r.err)
	}
	c.HandleText([]byte(`32[]`)) // too late: ignored
	conn.quiet(t)

	// Disconnect fails the pending ones.
	if err := s.EmitWithAck("q4", Args{}, time.Hour, cb); err != nil {
		t.Fatal(err)
	}
	conn.next(t, 1)
	c.HandleText([]byte("1"))
	if r := <-results; !errors.Is(r.err, ErrDisconnected) {
		t.Fatalf("disconnect: %v", r.err)
	}
	if err := s.EmitWithAck("q5", Args{}, 0, cb); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("EmitWithAck after leaving: %v", err)
	}
	if len(results) != 0 {
		t.Fatal("extra callbacks")
	}
}

func TestServerAckBound(t *testing.T) {
	t.Parallel()
	cfg := echoConfig()
	cfg.MaxPendingAcks = 3
	c, conn := newClient(t, cfg)
	c.HandleText([]byte("0"))
	conn.next(t, 2)
	s := c.Socket("/")
	calls := 0
	var mu sync.Mutex
	cb := func(Args, error) { mu.Lock(); calls++; mu.Unlock() }
	for i := range 3 {
		if err := s.EmitWithAck("q", Args{}, 0, cb); err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
	}
	if err := s.EmitWithAck("q", Args{}, 0, cb); !errors.Is(err, ErrTooManyAcks) {
		t.Fatalf("4th pending ack: %v", err)
	}
	conn.next(t, 3)
	c.HandleText([]byte("31[]"))
	if err := s.EmitWithAck("q", Args{}, 0, cb); err != nil {
		t.Fatalf("after an ack came back: %v", err)
	}
	c.HandleClose("transport close")
	mu.Lock()
	defer mu.Unlock()
	if calls != 4 { // one answered, three failed by the close
		t.Fatalf("%d callbacks", calls)
	}
}

func TestClientAckOnce(t *testing.T) {
	t.Parallel()
	var ack AckFunc
	cfg := Config{OnEvent: func(_ context.Context, _ *Socket, _ string, _ Args, a AckFunc) { ack = a }}
	c, conn := newClient(t, cfg)
	c.HandleText([]byte("0"))
	conn.next(t, 1)
	c.HandleText([]byte(`2["no-ack"]`))
	if ack != nil {
		t.Fatal("ack for an event without an id")
	}
	c.HandleText([]byte(`29007199254740991["q"]`))
	if err := ack(MustValues("ok", []byte{1})); err != nil {
		t.Fatal(err)
	}
	conn.expect(t, text(`61-9007199254740991["ok",{"_placeholder":true,"num":0}]`), binary(1))
	if err := ack(Args{}); err == nil {
		t.Fatal("second ack sent")
	}
	c.HandleText([]byte(`21["q"]`))
	c.HandleText([]byte("1"))
	if err := ack(Args{}); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("ack after leaving: %v", err)
	}
}

func TestMultipleNamespaces(t *testing.T) {
	t.Parallel()
	var rec recorder
	c, conn := newClient(t, rec.config(Config{Namespaces: []string{"/a", "/b"}}))
	for _, p := range []string{"0", "0/a,", "0/b,{}"} {
		c.HandleText([]byte(p))
	}
	conn.next(t, 3)
	ids := map[string]bool{}
	for _, ns := range []string{"/", "/a", "/b"} {
		s := c.Socket(ns)
		if s == nil || ids[s.ID()] {
			t.Fatalf("socket of %s: %v", ns, s)
		}
		ids[s.ID()] = true
	}
	c.HandleText([]byte(`2/a,["e",1]`))
	c.HandleText([]byte(`2/b,5["e",2]`))
	c.HandleText([]byte(`2["e",3]`))
	rec.mu.Lock()
	want := []string{`/a e [1] 0 ack=false`, `/b e [2] 0 ack=true`, `/ e [3] 0 ack=false`}
	if fmt.Sprint(rec.events) != fmt.Sprint(want) {
		t.Fatalf("events %q, want %q", rec.events, want)
	}
	rec.mu.Unlock()

	// The server makes /a leave; the others stay.
	if err := c.Socket("/a").Disconnect(); err != nil {
		t.Fatal(err)
	}
	conn.expect(t, text("1/a,"))
	if c.Socket("/a") != nil || c.Socket("/b") == nil {
		t.Fatal("wrong sockets after Disconnect")
	}
	// Close sends a DISCONNECT to each remaining namespace and closes.
	c.Close(ReasonServerClose)
	got := conn.next(t, 2)
	if !((got[0].data == "1" && got[1].data == "1/b,") || (got[0].data == "1/b," && got[1].data == "1")) {
		t.Fatalf("Close sent %v", got)
	}
	if r := conn.waitClosed(t); r != ReasonServerClose {
		t.Fatalf("closed with %q", r)
	}
	d := rec.disconnected()
	if len(d) != 3 || d[0] != "/a "+ReasonServerDisconnect {
		t.Fatalf("disconnects %v", d)
	}
	for _, x := range d[1:] {
		if !strings.HasSuffix(x, ReasonServerClose) {
			t.Fatalf("disconnects %v", d)
		}
	}
}

// Every packet the reference server answers by closing the connection.
func TestProtocolViolationsClose(t *testing.T) {
	t.Parallel()
	big := `2["e","` + strings.Repeat("x", 200) + `"]`
	tests := []struct {
		name   string
		join   bool
		send   []any // string: text message, []byte: binary message
		reason string
	}{
		{"event before CONNECT", false, []any{`2["e"]`}, ReasonInvalidState},
		{"DISCONNECT before CONNECT", false, []any{`1`}, ReasonInvalidState},
		{"ACK before CONNECT", false, []any{`30[]`}, ReasonInvalidState},
		{"event to a namespace not joined", true, []any{`2/custom,["e"]`}, ReasonInvalidState},
		{"second CONNECT", true, []any{`0`}, ReasonInvalidState},
		{"CONNECT_ERROR from the client", true, []any{`4{"message":"x"}`}, ReasonInvalidState},
		{"reserved event name", true, []any{`2["disconnect"]`}, ReasonParseError},
		{"binary message without packet", true, []any{[]byte{1}}, ReasonParseError},
		{"text while attachments are expected", true, []any{`51-["e",{"_placeholder":true,"num":0}]`, `2["e"]`}, ReasonParseError},
		{"too many attachments", true, []any{`565-["e"]`}, ReasonParseError},
		{"attachments over the size limit", true, []any{`51-["e",{"_placeholder":true,"num":0}]`, bytes.Repeat([]byte{1}, 101)}, ReasonParseError},
		{"packet over the size limit", true, []any{big}, ReasonParseError},
		{"placeholder missing", true, []any{`52-["e",{"_placeholder":true,"num":0}]`}, ReasonParseError},
		{"empty message", true, []any{``}, ReasonParseError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var rec recorder
			cfg := rec.config(Config{Namespaces: []string{"/custom"}, Limits: sio.Limits{MaxPacketBytes: 100}})
			c, conn := newClient(t, cfg)
			if tt.join {
				c.HandleText([]byte("0"))
				conn.next(t, 1)
			}
			for _, m := range tt.send {
				switch m := m.(type) {
				case string:
					c.HandleText([]byte(m))
				case []byte:
					c.HandleBinary(m)
				}
			}
			if r := conn.waitClosed(t); r != tt.reason {
				t.Fatalf("closed with %q, want %q", r, tt.reason)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.errors) != 1 || len(rec.events) != 0 {
				t.Fatalf("errors %v, events %v", rec.errors, rec.events)
			}
			if tt.join && (len(rec.disconnects) != 1 || rec.disconnects[0] != "/ "+tt.reason) {
				t.Fatalf("disconnects %v", rec.disconnects)
			}
			// Nothing more is handled.
			c.HandleText([]byte(`2["e"]`))
			if len(rec.events) != 0 {
				t.Fatal("event handled after the close")
			}
		})
	}
}

func TestEngineCloseEndsSockets(t *testing.T) {
	t.Parallel()
	var rec recorder
	c, conn := newClient(t, rec.config(Config{Namespaces: []string{"/custom"}}))
	c.HandleText([]byte("0"))
	c.HandleText([]byte("0/custom,"))
	conn.next(t, 2)
	s := c.Socket("/")
	c.HandleClose("ping timeout")
	c.HandleClose("transport close") // only the first counts
	d := rec.disconnected()
	if len(d) != 2 || !strings.HasSuffix(d[0], "ping timeout") || !strings.HasSuffix(d[1], "ping timeout") {
		t.Fatalf("disconnects %v", d)
	}
	if err := s.Emit("x", Args{}); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Emit after close: %v", err)
	}
	if err := s.Disconnect(); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("Disconnect after close: %v", err)
	}
}

// Packets emitted while OnConnect runs follow the CONNECT reply, and are
// bounded.
func TestPreConnectEmits(t *testing.T) {
	t.Parallel()
	var overflow, disconnectErr error
	cfg := Config{MaxPreConnect: 2, OnConnect: func(_ context.Context, s *Socket, _ *ConnectRequest) (ConnectResult, error) {
		_ = s.Emit("one", Args{})
		_ = s.Emit("two", Args{})
		overflow = s.Emit("three", Args{})
		disconnectErr = s.Disconnect()
		return ConnectResult{SID: "s1"}, nil
	}}
	c, conn := newClient(t, cfg)
	c.HandleText([]byte("0"))
	conn.expect(t, text(`0{"sid":"s1"}`), text(`2["one"]`), text(`2["two"]`))
	if overflow == nil || disconnectErr == nil {
		t.Fatalf("overflow %v, Disconnect %v", overflow, disconnectErr)
	}
}

// sharedConn is a memConn that takes prepared events as they are, to
// check that their engine encoding is built once.
type sharedConn struct{ *memConn }

func (s sharedConn) SendPrepared(p *Prepared) error {
	frames := p.Engine(func(text []byte, bin [][]byte) any {
		s.mu.Lock()
		s.prepared++
		s.mu.Unlock()
		return append([]msg{{false, "E" + string(text)}}, msg{true, string(bytes.Join(bin, nil))})
	}).([]msg)
	for _, f := range frames {
		if err := s.add(f); err != nil {
			return err
		}
	}
	return nil
}

func TestPreparedSharedByConnections(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	p := mustPrepare(t, "/", Event{Name: "b", Args: MustValues([]byte{1})})
	var conns []*memConn
	for range 3 {
		conn := newMemConn()
		c := srv.Accept(context.Background(), sharedConn{conn})
		t.Cleanup(func() { c.HandleClose("test over") })
		c.HandleText([]byte("0"))
		conn.next(t, 1)
		if err := c.Socket("/").Send(p); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	for _, conn := range conns {
		conn.expect(t, text(`E51-["b",{"_placeholder":true,"num":0}]`), binary(1))
	}
	if conns[0].prepared+conns[1].prepared+conns[2].prepared != 1 {
		t.Fatal("engine encoding built more than once")
	}
}

// Binary packets emitted from many goroutines at once keep their
// attachments right behind them.
func TestConcurrentBinaryEmits(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	s := c.Socket("/")
	const workers, each = 4, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				b := []byte{byte(w), byte(i)}
				if err := s.Emit("bin", MustValues(b, b)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := conn.next(t, workers*each*3)
	for i := 0; i < len(got); i += 3 {
		if got[i].binary || !got[i+1].binary || got[i+1] != got[i+2] {
			t.Fatalf("interleaved at %d: %v %v %v", i, got[i], got[i+1], got[i+2])
		}
	}
}

// nopConn is an EngineConn that drops everything, for benchmarks.
type nopConn struct{}

func (nopConn) SendText([]byte) error   { return nil }
func (nopConn) SendBinary([]byte) error { return nil }
func (nopConn) Close(string)            {}

// BenchmarkConnect is what joining "/" costs a connection: the bytes
// allocated per op bound what an idle Socket.IO client holds in this
// package (its Client and Socket), garbage included.
func BenchmarkConnect(b *testing.B) {
	srv, err := New(Config{ConnectTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	connect := []byte("0")
	b.ReportAllocs()
	for b.Loop() {
		c := srv.Accept(ctx, nopConn{})
		c.HandleText(connect)
		c.HandleClose("bench")
	}
}

// BenchmarkSendPrepared is one delivery of an event encoded once.
func BenchmarkSendPrepared(b *testing.B) {
	srv, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	c := srv.Accept(context.Background(), nopConn{})
	c.HandleText([]byte("0"))
	s := c.Socket("/")
	p, err := Prepare("/", Event{Name: "e", Args: MustValues(map[string]any{"x": 1})})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Send(p); err != nil {
			b.Fatal(err)
		}
	}
}

// nopFrameConn is a FrameConn that drops what it is given.
type nopFrameConn struct{ nopConn }

func (nopFrameConn) SendFrame(*transport.Prepared) error { return nil }

// BenchmarkSendFrame is one room message's way through the adapter to a
// connected socket: SendFrame of a frame made once for many sockets.
func BenchmarkSendFrame(b *testing.B) {
	srv, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	c := srv.Accept(context.Background(), nopFrameConn{})
	c.HandleText([]byte("0"))
	s := c.Socket("/")
	m := transport.NewPrepared(transport.Text, []byte(`42["e",{"x":1}]`), 1<<20, 0)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.SendFrame(m); err != nil {
			b.Fatal(err)
		}
	}
}

// OnClose runs once per connection, after its sockets' OnDisconnect,
// whether it joined a namespace or not, however it ends.
func TestOnClose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		connect bool
		end     func(c *Client)
		want    []string
	}{
		{"no namespace, transport gone", false, func(c *Client) { c.HandleClose("transport close") }, []string{"close"}},
		{"no namespace, protocol error", false, func(c *Client) { c.HandleText([]byte("9")) }, []string{"close"}},
		{"a socket, transport gone", true, func(c *Client) { c.HandleClose("transport close") }, []string{"disconnect / transport close", "close"}},
		{"a socket, server close", true, func(c *Client) { c.Close(ReasonServerClose) }, []string{"disconnect / " + ReasonServerClose, "close"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var seen []string
			cfg := Config{
				OnDisconnect: func(_ context.Context, s *Socket, reason string) {
					mu.Lock()
					seen = append(seen, "disconnect "+s.Namespace()+" "+reason)
					mu.Unlock()
				},
				OnClose: func(context.Context) {
					mu.Lock()
					seen = append(seen, "close")
					mu.Unlock()
				},
			}
			c, conn := newClient(t, cfg)
			if tt.connect {
				c.HandleText([]byte("0"))
				sidReply(t, conn.next(t, 1)[0], "0", "sid")
			}
			tt.end(c)
			c.HandleClose("again") // only the first close counts
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(seen) != fmt.Sprint(tt.want) {
				t.Fatalf("hooks ran %q, want %q", seen, tt.want)
			}
		})
	}
}

// A connection may have MaxConnectRefusals CONNECTs refused, to any
// namespace for any reason: the last gets its CONNECT_ERROR, then the
// connection is closed, so that one connection cannot have the server
// check credentials in a loop.
func TestConnectRefusalsBounded(t *testing.T) {
	t.Parallel()
	var rec recorder
	cfg := rec.config(Config{MaxConnectRefusals: 3})
	cfg.OnConnect = func(context.Context, *Socket, *ConnectRequest) (ConnectResult, error) {
		return ConnectResult{}, errors.New("bad token")
	}
	c, conn := newClient(t, cfg)
	c.HandleText([]byte(`0{"token":"a"}`))
	conn.expect(t, text(`4{"message":"bad token"}`))
	c.HandleText([]byte(`0/nope,`))
	conn.expect(t, text(`4/nope,{"message":"Invalid namespace"}`))
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		t.Fatal("closed after 2 refusals of 3")
	}
	c.HandleText([]byte(`0{"token":"b"}`))
	conn.expect(t, text(`4{"message":"bad token"}`))
	if reason := conn.waitClosed(t); reason != ReasonConnectRefusals {
		t.Fatalf("closed with %q, want %q", reason, ReasonConnectRefusals)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.errors) != 1 || !errors.Is(rec.errors[0], ErrConnectRefusals) {
		t.Fatalf("OnProtocolError told %v, want ErrConnectRefusals once", rec.errors)
	}
}

// appendConnectReply writes what json.Marshal would, after what the
// buffer holds, and allocates nothing when the ids need no escaping and
// the buffer has room.
func TestConnectReply(t *testing.T) {
	for _, tt := range []struct{ sid, pid string }{
		{"AbC-_09", ""}, {"AbC-_09", "p.1.x"}, {`a"b\c`, ""}, {"<x>&", "é"}, {"", ""},
	} {
		want, _ := json.Marshal(struct {
			SID string `json:"sid"`
			PID string `json:"pid,omitempty"`
		}{tt.sid, tt.pid})
		if got := appendConnectReply([]byte("40"), tt.sid, tt.pid); string(got) != "40"+string(want) {
			t.Errorf("appendConnectReply(%q, %q) = %s, want 40%s", tt.sid, tt.pid, got, want)
		}
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { appendConnectReply(buf[:0], "0123456789abcdefghij", "") }); n != 0 {
		t.Errorf("appendConnectReply allocates %v times, want 0", n)
	}
}
