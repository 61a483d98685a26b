package herald_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
)

// logBuffer collects JSON log lines from a server under test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns every log record as a map.
func (b *logBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type testServer struct {
	*herald.Server
	HTTP *httptest.Server
	URL  string // ws:// URL of the WebSocket endpoint
	Logs *logBuffer
}

// startServer runs a Herald server on a random port and shuts it down at
// the end of the test.
func startServer(t testing.TB, cfg herald.Config) *testServer {
	t.Helper()
	logs := &logBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if cfg.APIKeys == nil {
		cfg.APIKeys = []string{testAPIKey}
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 500 * time.Millisecond
	}
	srv, err := herald.New(cfg)
	if err != nil {
		t.Fatalf("herald.New: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		// The test's clients were closed by their own cleanups (which run
		// first); their handlers finish as soon as the node gets to them.
		// On a loaded machine that can take longer than the short test
		// drain gives handlers after its terminations (under 100 ms):
		// wait for them first, the deadline only bounding a hang, so that
		// Shutdown reports what did not stop, not what ran late. Drain
		// timing itself is what server_test.go's drain tests check.
		deadline := time.Now().Add(30 * time.Second)
		for srv.Connections() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		hs.Close()
	})
	path := cfg.Path
	if path == "" {
		path = "/ws"
	}
	return &testServer{Server: srv, HTTP: hs, URL: "ws" + strings.TrimPrefix(hs.URL, "http") + path, Logs: logs}
}

const testAPIKey = "test-api-key-0123456789"

// wsClient is a test client on coder/websocket, an independent
// implementation of RFC 6455. A goroutine reads frames into a channel, so a
// test can wait for "nothing more" without cancelling a Read (which would
// close a coder/websocket connection).
type wsClient struct {
	t       testing.TB
	c       *websocket.Conn
	resp    *http.Response
	welcome map[string]any
	frames  chan []byte
	done    chan struct{}
	err     error // read error, valid after done is closed
	running atomic.Bool
}

type dialOpt func(*websocket.DialOptions)

func withHeader(k, v string) dialOpt {
	return func(o *websocket.DialOptions) {
		if o.HTTPHeader == nil {
			o.HTTPHeader = http.Header{}
		}
		o.HTTPHeader.Set(k, v)
	}
}

func withCompression() dialOpt {
	return func(o *websocket.DialOptions) {
		o.CompressionMode = websocket.CompressionNoContextTakeover
		o.CompressionThreshold = 1
	}
}

// dial connects and reads the welcome frame.
func dial(t testing.TB, url string, opts ...dialOpt) *wsClient {
	t.Helper()
	wc := dialNoRead(t, url, opts...)
	wc.startReader()
	wc.welcome = wc.expect("welcome")
	return wc
}

// dialNoRead connects but does not read: the client answers no ping and
// reads nothing until startReader is called.
func dialNoRead(t testing.TB, url string, opts ...dialOpt) *wsClient {
	t.Helper()
	o := &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled}
	for _, f := range opts {
		f(o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, o)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(1 << 24)
	wc := &wsClient{t: t, c: c, resp: resp, frames: make(chan []byte, 100000), done: make(chan struct{})}
	t.Cleanup(func() {
		_ = c.CloseNow()
		if wc.started() {
			<-wc.done
		}
	})
	return wc
}

func (w *wsClient) started() bool { return w.running.Load() }

func (w *wsClient) startReader() {
	w.running.Store(true)
	go func() {
		defer close(w.done)
		for {
			typ, b, err := w.c.Read(context.Background())
			if err != nil {
				w.err = err
				return
			}
			if typ != websocket.MessageText {
				b = append([]byte("BINARY:"), b...)
			}
			w.frames <- b
		}
	}()
}

// read returns the next frame as a map, failing the test after 5 s.
func (w *wsClient) read() map[string]any {
	w.t.Helper()
	m, err := w.tryRead(5 * time.Second)
	if err != nil {
		w.t.Fatalf("read: %v", err)
	}
	return m
}

var errTimeout = errors.New("no frame before the timeout")

func (w *wsClient) tryRead(timeout time.Duration) (map[string]any, error) {
	w.t.Helper()
	var b []byte
	select {
	case b = <-w.frames:
	case <-w.done:
		select {
		case b = <-w.frames:
		default:
			return nil, w.err
		}
	case <-time.After(timeout):
		return nil, errTimeout
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatalf("frame is not JSON: %q", b)
	}
	return m, nil
}

// expect reads frames until one of type typ arrives; other types fail.
func (w *wsClient) expect(typ string) map[string]any {
	w.t.Helper()
	m := w.read()
	if m["type"] != typ {
		w.t.Fatalf("want a %q frame, got %v", typ, m)
	}
	return m
}

// expectGaps reads one gap frame for each of rooms, in any order, and
// fails on any other frame or room: what a resumed session is told of the
// rooms it is back in without a replay.
func (w *wsClient) expectGaps(rooms ...string) {
	w.t.Helper()
	var got []string
	for range rooms {
		got = append(got, str(w.expect("gap")["room"]))
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(rooms))
	if !slices.Equal(got, want) {
		w.t.Fatalf("gap frames for %v, want %v", got, want)
	}
}

func (w *wsClient) send(v any) {
	w.t.Helper()
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	case []byte:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			w.t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// request sends a frame with an id and returns the reply or error with it.
func (w *wsClient) request(v map[string]any) map[string]any {
	w.t.Helper()
	w.send(v)
	for {
		m := w.read()
		if (m["type"] == "reply" || m["type"] == "error") && fmt.Sprint(m["id"]) == fmt.Sprint(v["id"]) {
			return m
		}
		if _, hasID := m["id"]; m["type"] == "error" && !hasID {
			return m // the request's id itself was unusable
		}
		if m["type"] == "reply" || m["type"] == "error" {
			w.t.Fatalf("reply to another request: %v (waiting for id %v)", m, v["id"])
		}
	}
}

func (w *wsClient) join(room string) {
	w.t.Helper()
	if m := w.request(map[string]any{"type": "join", "id": "j-" + room, "room": room}); m["type"] != "reply" {
		w.t.Fatalf("join %s: %v", room, m)
	}
}

// closeStatus waits until the connection ends and returns the close code
// (-1 when it ended without a close frame) and reason.
func (w *wsClient) closeStatus(timeout time.Duration) (websocket.StatusCode, string) {
	w.t.Helper()
	select {
	case <-w.done:
	case <-time.After(timeout):
		w.t.Fatalf("connection still open after %s", timeout)
	}
	var ce websocket.CloseError
	if errors.As(w.err, &ce) {
		return ce.Code, ce.Reason
	}
	return -1, w.err.Error()
}

// apiPublish posts to /api/v1/publish.
func apiPublish(t testing.TB, ts *testServer, key string, body string) (int, map[string]any) {
	t.Helper()
	code, _, m := apiCall(t, ts, "POST", "/api/v1/publish", key, body)
	return code, m
}

// apiCall sends an API request with key (none when empty) and returns the
// status, the headers and the JSON answer, failing when it is not JSON.
func apiCall(t testing.TB, ts *testServer, method, path, key, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.HTTP.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %q", method, path, b)
	}
	return resp.StatusCode, resp.Header, m
}

// logCount returns how many of the server's log lines have msg.
func logCount(t testing.TB, ts *testServer, msg string) int {
	t.Helper()
	n := 0
	for _, l := range ts.Logs.lines(t) {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func io_ReadFull(r *bufio.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

// metricValue scrapes /metrics and returns the value of the sample whose
// name and labels are series (e.g. `herald_connections_closed_total{reason="x"}`);
// 0 when absent.
func metricValue(t testing.TB, ts *testServer, series string) float64 {
	t.Helper()
	resp, err := http.Get(ts.HTTP.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// str is v as a string, "" when it is absent or not a string: a JSON
// field compared with "" must not pass when the field is missing.
func str(v any) string {
	s, _ := v.(string)
	return s
}

// recv takes one value from ch, failing after 5 s instead of hanging
// until the test binary's timeout.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received within 5 s")
		var zero T
		return zero
	}
}
