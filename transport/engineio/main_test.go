package engineio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The suite's settings.
const (
	testPingInterval = 300 * time.Millisecond
	testPingTimeout  = 200 * time.Millisecond
)

// recorder is a Handler that echoes every message (as the suite's app
// does) and records what happened.
type recorder struct {
	mu      sync.Mutex
	msgs    []string // "t:data" or "b:data"
	closed  chan error
	noEcho  bool
	onOpen  func(*Socket)
	sockets chan *Socket
}

func (h *recorder) OnMessage(s *Socket, data []byte, binary bool) {
	h.mu.Lock()
	kind := "t:"
	if binary {
		kind = "b:"
	}
	h.msgs = append(h.msgs, kind+string(data))
	h.mu.Unlock()
	if h.noEcho {
		return
	}
	if binary {
		_ = s.SendBinary(data)
	} else {
		_ = s.SendText(data)
	}
}

func (h *recorder) OnClose(_ *Socket, reason error) { h.closed <- reason }

// testEnv is a Server behind an httptest server.
type testEnv struct {
	srv *Server
	ts  *httptest.Server
	url string // http://host/engine.io/
	h   *recorder
}

func newEnv(tb testing.TB, cfg Config) *testEnv {
	tb.Helper()
	if cfg.PingInterval == 0 {
		cfg.PingInterval = testPingInterval
	}
	if cfg.PingTimeout == 0 {
		cfg.PingTimeout = testPingTimeout
	}
	h := &recorder{closed: make(chan error, 64), sockets: make(chan *Socket, 64)}
	if cfg.OnConnection == nil {
		cfg.OnConnection = func(s *Socket, r *http.Request) Handler {
			if h.onOpen != nil {
				h.onOpen(s)
			}
			select {
			case h.sockets <- s:
			default:
			}
			return h
		}
	}
	srv, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", srv)
	ts := httptest.NewServer(mux)
	e := &testEnv{srv: srv, ts: ts, url: ts.URL + "/engine.io/", h: h}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return e
}

type response struct {
	status int
	body   string
	header http.Header
}

// do sends one request with its own connection.
func (e *testEnv) do(tb testing.TB, method, query, body string) response {
	tb.Helper()
	req, err := http.NewRequest(method, e.url+"?"+query, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	return e.send(tb, req)
}

func (e *testEnv) send(tb testing.TB, req *http.Request) response {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return response{resp.StatusCode, string(b), resp.Header}
}

// handshake opens a polling session and returns its sid.
func (e *testEnv) handshake(tb testing.TB) string {
	tb.Helper()
	r := e.do(tb, "GET", "EIO=4&transport=polling", "")
	if r.status != 200 || !strings.HasPrefix(r.body, "0") {
		tb.Fatalf("handshake: %d %q", r.status, r.body)
	}
	var h struct{ SID string }
	if err := json.Unmarshal([]byte(r.body[1:]), &h); err != nil || h.SID == "" {
		tb.Fatalf("handshake body %q: %v", r.body, err)
	}
	return h.SID
}

func (e *testEnv) poll(tb testing.TB, sid string) response {
	tb.Helper()
	return e.do(tb, "GET", "EIO=4&transport=polling&sid="+sid, "")
}

func (e *testEnv) post(tb testing.TB, sid, body string) response {
	tb.Helper()
	return e.do(tb, "POST", "EIO=4&transport=polling&sid="+sid, body)
}

func (e *testEnv) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(e.url, "http") + "?" + query
}

// dial opens a WebSocket; the test's cleanup closes it.
func (e *testEnv) dial(tb testing.TB, query string) *websocket.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.wsURL(query), nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		tb.Fatalf("dial %s: %v (status %d)", query, err, status)
	}
	c.SetReadLimit(-1)
	tb.Cleanup(func() { c.CloseNow() })
	return c
}

// read returns the next message, failing after 3 s.
func read(tb testing.TB, c *websocket.Conn) (websocket.MessageType, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		tb.Fatalf("read: %v", err)
	}
	return typ, string(b)
}

func write(tb testing.TB, c *websocket.Conn, typ websocket.MessageType, msg string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, []byte(msg)); err != nil {
		tb.Fatalf("write %q: %v", msg, err)
	}
}

// waitClosed reads until the connection ends and returns the close
// status (-1 if it ended without a close frame).
func waitClosed(tb testing.TB, c *websocket.Conn, within time.Duration) websocket.StatusCode {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				tb.Fatalf("still open after %v", within)
			}
			return websocket.CloseStatus(err)
		}
	}
}

// closeReason waits for the handler's OnClose.
func (e *testEnv) closeReason(tb testing.TB) error {
	tb.Helper()
	select {
	case err := <-e.h.closed:
		return err
	case <-time.After(5 * time.Second):
		tb.Fatal("no OnClose")
		return nil
	}
}

func wantClose(tb testing.TB, e *testEnv, want error) {
	tb.Helper()
	if got := e.closeReason(tb); !errors.Is(got, want) {
		tb.Fatalf("close reason %v, want %v", got, want)
	}
}

func errorBody(code int, msg string) string {
	return fmt.Sprintf(`{"code":%d,"message":%q}`, code, msg)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
