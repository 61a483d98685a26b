package engineio

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/transport"
)

// Every session holds a Socket: keep it in the 80 B size class (the
// next is 96 B). What only polling needs is in pollState, dropped on
// upgrade, and one word holds either it or the WebSocket (Socket.tp);
// the flags are bits of one byte, which leaves hbIdx in what was
// padding; the session id is its 15 bytes, inside; why it closed is one
// byte (an index in reasons), next to the flags; Done's channels are the
// server's, made on demand; and OnMessage calls are serialised without
// a mutex of their own (dispatch).
func TestSocketSize(t *testing.T) {
	if size := unsafe.Sizeof(Socket{}); size > 80 {
		t.Errorf("Socket is %d B: over the 80 B size class", size)
	}
}

// A new session is one allocation: its Socket, with the session id's
// bytes inside it (no string apart).
func TestNewSocketAllocatesOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	s := &Server{}
	var so *Socket
	if n := testing.AllocsPerRun(100, func() { so, _ = s.newSocket(nil) }); n != 1 {
		t.Errorf("newSocket allocates %v times, want 1", n)
	}
	if id := so.ID(); len(id) != 20 {
		t.Errorf("session id %q: %d characters, want 20", id, len(id))
	}
}

// A session id reads back from its text; any other text is no id.
func TestParseSID(t *testing.T) {
	k := newSID()
	if got, ok := parseSID(k.String()); !ok || got != k {
		t.Fatalf("parseSID(%q) = %v, %v; want %v", k.String(), got, ok, k)
	}
	for _, bad := range []string{"", "abc", k.String() + "A", k.String()[:19], "!!!!!!!!!!!!!!!!!!!!", "AAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAA+/"} {
		if _, ok := parseSID(bad); ok {
			t.Errorf("parseSID(%q) accepted", bad)
		}
	}
}

// BenchmarkIdleSessionMemory measures the heap an idle session costs,
// b.N sessions at once (run it with -benchtime=2000x): an Engine.IO
// session on WebSocket against a bare transport connection that reads
// with NotifyReadable (what a v1 connection's transport costs), and a
// polling session waiting in a GET. The clients are raw sockets in the
// same process, the same for each: the difference between the first
// two is what Engine.IO adds per WebSocket session.
func BenchmarkIdleSessionMemory(b *testing.B) {
	b.Run("transport", func(b *testing.B) {
		u := transport.NewUpgrader(transport.Options{PingInterval: time.Minute})
		var conns []*transport.Conn
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := u.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			conns = append(conns, c) // one at a time: the clients connect in turn
			var serve func()
			serve = func() {
				for {
					if _, _, err := c.TryRead(); err != nil {
						if err == transport.ErrWouldBlock {
							c.NotifyReadable(serve)
						}
						return
					}
				}
			}
			serve()
		})
		measureIdle(b, h, "/", "\r\n\r\n")
		for _, c := range conns {
			c.Terminate(nil)
		}
		_ = u.Close(context.Background())
	})
	b.Run("engineio-websocket", func(b *testing.B) {
		srv, _ := New(Config{PingInterval: time.Minute, PingTimeout: time.Minute})
		measureIdle(b, srv, "/?EIO=4&transport=websocket", "}")
		_ = srv.Shutdown(context.Background())
	})
	b.Run("engineio-polling", func(b *testing.B) {
		srv, _ := New(Config{PingInterval: time.Minute, PingTimeout: time.Minute})
		measureIdlePolling(b, srv)
		_ = srv.Shutdown(context.Background())
	})
}

// measureIdle opens b.N WebSockets to h at path, each read until until
// has come, and reports the heap they hold.
func measureIdle(b *testing.B, h http.Handler, path, until string) {
	ts := httptest.NewServer(h)
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")
	clients := make([]net.Conn, 0, b.N)
	before := heapInUse()
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path)
		readUntil(b, c, until)
		clients = append(clients, c)
	}
	b.StopTimer()
	report(b, before, len(clients))
	for _, c := range clients {
		c.Close()
	}
}

func measureIdlePolling(b *testing.B, srv *Server) {
	ts := httptest.NewServer(srv)
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "http://")
	clients := make([]net.Conn, 0, b.N)
	before := heapInUse()
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(c, "GET /?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
		body := readUntil(b, c, "}")
		i := strings.Index(body, `"sid":"`)
		sid := body[i+7 : i+27]
		fmt.Fprintf(c, "GET /?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\n\r\n", sid)
		clients = append(clients, c)
	}
	waitForB(b, func() bool {
		n := 0
		for _, so := range srv.all() {
			so.mu.Lock()
			if so.pstate() != nil && so.pstate().pollCh != nil {
				n++
			}
			so.mu.Unlock()
		}
		return n == b.N
	})
	b.StopTimer()
	report(b, before, len(clients))
	for _, c := range clients {
		c.Close()
	}
}

func readUntil(tb testing.TB, c net.Conn, until string) string {
	var buf bytes.Buffer
	p := make([]byte, 512)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(buf.String(), until) || !strings.Contains(buf.String(), "\r\n\r\n") {
		n, err := c.Read(p)
		if err != nil {
			tb.Fatalf("read: %v (got %q)", err, buf.String())
		}
		buf.Write(p[:n])
	}
	_ = c.SetReadDeadline(time.Time{})
	return buf.String()
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func report(b *testing.B, before uint64, n int) {
	time.Sleep(100 * time.Millisecond) // let the handshakes' goroutines end
	after := heapInUse()
	b.ReportMetric(float64(int64(after)-int64(before))/float64(n), "B/session")
	b.ReportMetric(0, "ns/op")
}

func waitForB(b *testing.B, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("condition not met within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The open packet made from its template is the handshake encoded for
// the session.
func TestOpenPacketTemplate(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	for _, polling := range []bool{false, true} {
		k := newSID()
		want := "0" + string(s.handshake(k.String(), polling))
		if got := string(s.openPacket(k, polling).Payload()); got != want {
			t.Errorf("polling %v: open packet %s, want %s", polling, got, want)
		}
	}
}

// testOwner holds its session's Socket (Config.NewOwner) and is its
// Handler.
type testOwner struct {
	es        Socket
	connected *Socket // the session OnConnection was called with
	msgs      chan string
}

func (o *testOwner) EngineSocket() *Socket { return &o.es }

func (o *testOwner) OnConnection(s *Socket, _ *http.Request) Handler {
	o.connected = s
	return o
}

func (o *testOwner) OnMessage(_ *Socket, data []byte, _ bool) { o.msgs <- string(data) }
func (o *testOwner) OnClose(*Socket, error)                   {}

// With Config.NewOwner a session is the Owner's Socket, on either
// transport: no Socket of its own (one allocation per session, the
// Owner's), and the Owner's OnConnection gives its Handler.
func TestNewOwner(t *testing.T) {
	owners := make(chan *testOwner, 4)
	cfg := Config{NewOwner: func(*http.Request) Owner {
		o := &testOwner{msgs: make(chan string, 4)}
		owners <- o
		return o
	}}
	e := newEnv(t, cfg)
	check := func(t *testing.T, o *testOwner, sid string) {
		t.Helper()
		select {
		case m := <-o.msgs: // after OnConnection returned
			if m != "hello" {
				t.Fatalf("owner's handler got %q", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("owner's handler got no message")
		}
		if o.connected != &o.es {
			t.Fatalf("OnConnection got %p, want the owner's Socket %p", o.connected, &o.es)
		}
		if sid != "" && o.es.ID() != sid {
			t.Fatalf("owner's Socket has sid %q, the handshake gave %q", o.es.ID(), sid)
		}
	}
	t.Run("polling", func(t *testing.T) {
		sid := e.handshake(t)
		o := <-owners
		if r := e.post(t, sid, "4hello"); r.status != 200 {
			t.Fatalf("POST: %d %q", r.status, r.body)
		}
		check(t, o, sid)
	})
	t.Run("websocket", func(t *testing.T) {
		c := e.dial(t, "EIO=4&transport=websocket")
		read(t, c)
		o := <-owners
		write(t, c, websocket.MessageText, "4hello")
		check(t, o, "")
		if o.es.Transport() != "websocket" {
			t.Fatalf("transport %q", o.es.Transport())
		}
	})
	if raceEnabled {
		return // allocation counts differ under the race detector
	}
	s := &Server{cfg: Config{NewOwner: func(*http.Request) Owner { return &testOwner{} }}}
	if n := testing.AllocsPerRun(100, func() { s.newSocket(nil) }); n != 1 {
		t.Errorf("newSocket with an Owner allocates %v times, want 1 (the Owner)", n)
	}
}
