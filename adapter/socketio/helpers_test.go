package socketio

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// msg is one Engine.IO message sent to the client by the adapter.
type msg struct {
	binary bool
	data   string
}

func (m msg) String() string {
	if m.binary {
		return fmt.Sprintf("<binary %v>", []byte(m.data))
	}
	return m.data
}

// memConn is an in-memory EngineConn: it records what the adapter sends
// and whether it closed the connection.
type memConn struct {
	mu       sync.Mutex
	out      []msg
	closed   bool
	reason   string
	changed  chan struct{}
	prepared int // SendPrepared calls, when prepared is on
}

func newMemConn() *memConn { return &memConn{changed: make(chan struct{}, 1)} }

func (m *memConn) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

func (m *memConn) SendText(b []byte) error   { return m.add(msg{false, string(b)}) }
func (m *memConn) SendBinary(b []byte) error { return m.add(msg{true, string(b)}) }

func (m *memConn) add(x msg) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("memConn closed")
	}
	m.out = append(m.out, x)
	m.notify()
	return nil
}

func (m *memConn) Close(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed, m.reason = true, reason
	}
	m.notify()
}

// next waits for the next n messages and returns them.
func (m *memConn) next(t testing.TB, n int) []msg {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		m.mu.Lock()
		if len(m.out) >= n {
			got := m.out[:n:n]
			m.out = m.out[n:]
			m.mu.Unlock()
			return got
		}
		have := append([]msg(nil), m.out...)
		m.mu.Unlock()
		select {
		case <-m.changed:
		case <-deadline:
			t.Fatalf("waited for %d messages, have %v", n, have)
		}
	}
}

// expect checks that the next messages are want (text; binary ones
// written as msg values).
func (m *memConn) expect(t testing.TB, want ...msg) {
	t.Helper()
	got := m.next(t, len(want))
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d = %v, want %v (all: %v)", i, got[i], want[i], got)
		}
	}
}

// quiet checks that nothing more was sent and the connection is open.
func (m *memConn) quiet(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.out) > 0 || m.closed {
		t.Fatalf("unexpected: sent %v, closed %t (%s)", m.out, m.closed, m.reason)
	}
}

// waitClosed waits for the adapter to close the connection.
func (m *memConn) waitClosed(t testing.TB) string {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		m.mu.Lock()
		closed, reason := m.closed, m.reason
		m.mu.Unlock()
		if closed {
			return reason
		}
		select {
		case <-m.changed:
		case <-deadline:
			t.Fatal("connection not closed")
		}
	}
}

func text(s string) msg    { return msg{false, s} }
func binary(b ...byte) msg { return msg{true, string(b)} }

// sidReply checks that m is a CONNECT reply for ns (prefix "0" or
// "0/ns,") whose payload has exactly the keys want, and returns it.
func sidReply(t testing.TB, m msg, prefix string, want ...string) map[string]string {
	t.Helper()
	if m.binary || len(m.data) < len(prefix) || m.data[:len(prefix)] != prefix {
		t.Fatalf("CONNECT reply = %v, want prefix %q", m, prefix)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(m.data[len(prefix):]), &v); err != nil {
		t.Fatalf("CONNECT reply %v: %v", m, err)
	}
	if len(v) != len(want) {
		t.Fatalf("CONNECT reply %v: keys %v, want %v", m, v, want)
	}
	for _, k := range want {
		if v[k] == "" {
			t.Fatalf("CONNECT reply %v: no %q", m, k)
		}
	}
	return v
}

// echoConfig is the behaviour the socket.io-protocol test suite expects
// of its server (its README's reference server), as examples/socketio-echo
// has it.
func echoConfig() Config {
	return Config{
		Namespaces:     []string{"/custom"},
		ConnectTimeout: time.Second,
		OnConnect: func(_ context.Context, s *Socket, _ *ConnectRequest) (ConnectResult, error) {
			auth := s.Auth()
			if auth == nil {
				auth = json.RawMessage(`{}`)
			}
			return ConnectResult{}, s.Emit("auth", Args{JSON: []json.RawMessage{auth}})
		},
		OnEvent: func(_ context.Context, s *Socket, event string, args Args, ack AckFunc) {
			if s.Namespace() != "/" {
				return
			}
			switch event {
			case "message":
				_ = s.Emit("message-back", args)
			case "message-with-ack":
				if ack != nil {
					_ = ack(args)
				}
			}
		},
	}
}

// newClient starts a server with cfg and accepts one in-memory connection.
func newClient(t testing.TB, cfg Config) (*Client, *memConn) {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn := newMemConn()
	c := srv.Accept(context.Background(), conn)
	t.Cleanup(func() { c.HandleClose("test over") })
	return c, conn
}

// connected is newClient with the main namespace joined and its CONNECT
// reply and auth event read, as the suite's initSocketIOConnection.
func connected(t testing.TB) (*Client, *memConn) {
	t.Helper()
	c, conn := newClient(t, echoConfig())
	c.HandleText([]byte("0"))
	sidReply(t, conn.next(t, 1)[0], "0", "sid")
	conn.expect(t, text(`2["auth",{}]`))
	return c, conn
}
