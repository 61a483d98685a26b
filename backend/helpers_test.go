package backend_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/backend"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// fakeBackend is a real HTTP server playing the application's backend.
// mode chooses how it fails: "" answers with answer(hook, body), "slow"
// answers after the caller gave up, "500" with a 500, "garbage" with
// HTML, "huge" with a valid JSON answer of 2 MiB (over the bound on an
// answer).
type fakeBackend struct {
	t      testing.TB
	srv    *httptest.Server
	mode   atomic.Value // string
	answer func(hook string, body map[string]any) any

	mu   sync.Mutex
	reqs []received
}

type received struct {
	hook   string
	header http.Header
	body   map[string]any
	proto  int
}

func newFakeBackend(t testing.TB, answer func(hook string, body map[string]any) any) *fakeBackend {
	t.Helper()
	fb := &fakeBackend{t: t, answer: answer}
	fb.mode.Store("")
	fb.srv = httptest.NewUnstartedServer(http.HandlerFunc(fb.serve))
	fb.srv.Config.Protocols = new(http.Protocols)
	fb.srv.Config.Protocols.SetHTTP1(true)
	fb.srv.Config.Protocols.SetUnencryptedHTTP2(true)
	fb.srv.Start()
	t.Cleanup(fb.srv.Close)
	return fb
}

func (fb *fakeBackend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := backend.Verify(testSecret, body, r.Header.Get(backend.HeaderSignature), time.Now(), time.Minute); err != nil {
		fb.t.Errorf("request to %s not signed right: %v", r.URL.Path, err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	hook := strings.TrimPrefix(r.URL.Path, "/")
	if r.Header.Get(backend.HeaderHook) != hook {
		fb.t.Errorf("hook header %q on %s", r.Header.Get(backend.HeaderHook), r.URL.Path)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		fb.t.Errorf("body of %s is not JSON: %q", hook, body)
	}
	fb.mu.Lock()
	fb.reqs = append(fb.reqs, received{hook: hook, header: r.Header.Clone(), body: m, proto: r.ProtoMajor})
	fb.mu.Unlock()
	switch fb.mode.Load().(string) {
	case "slow":
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	case "500":
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	case "503":
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	case "garbage":
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>oops</html>")
		return
	case "huge":
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":"`+strings.Repeat("x", 2<<20)+`"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(fb.answer(hook, m))
}

func (fb *fakeBackend) requests(hook string) []received {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	var out []received
	for _, r := range fb.reqs {
		if r.hook == hook {
			out = append(out, r)
		}
	}
	return out
}

// node is a Herald server whose hooks go to a backend through a Proxy.
type node struct {
	srv   *herald.Server
	http  *httptest.Server
	url   string
	proxy *backend.Proxy
	reg   *prometheus.Registry
}

func startNode(t testing.TB, bcfg backend.Config) *node {
	t.Helper()
	reg := prometheus.NewRegistry()
	bcfg.Secret = testSecret
	bcfg.Registerer = reg
	if bcfg.Logger == nil {
		bcfg.Logger = slog.New(slog.DiscardHandler)
	}
	p, err := backend.New(bcfg)
	if err != nil {
		t.Fatalf("backend.New: %v", err)
	}
	srv, err := herald.New(herald.Config{Hooks: p.Hooks(), Registry: reg, Logger: slog.New(slog.DiscardHandler),
		APIKeys: []string{"test-api-key-0123456789"}, DrainTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
		_ = p.Close(ctx)
	})
	return &node{srv: srv, http: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", proxy: p, reg: reg}
}

// client is a minimal protocol client.
type client struct {
	t       testing.TB
	c       *websocket.Conn
	welcome map[string]any
	frames  chan map[string]any
	done    chan struct{}
	skipped []map[string]any // frames request passed over, for read
}

func dialErr(t testing.TB, url string, h http.Header) (*client, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	cl := &client{t: t, c: c, frames: make(chan map[string]any, 1000), done: make(chan struct{})}
	go func() {
		defer close(cl.done)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			cl.frames <- m
		}
	}()
	t.Cleanup(func() { _ = c.CloseNow(); <-cl.done })
	cl.welcome = cl.next()
	if cl.welcome["type"] != "welcome" {
		t.Fatalf("first frame %v", cl.welcome)
	}
	return cl, resp, nil
}

func dial(t testing.TB, url string, h http.Header) *client {
	t.Helper()
	c, resp, err := dialErr(t, url, h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, status(resp))
	}
	return c
}

func status(resp *http.Response) any {
	if resp == nil {
		return nil
	}
	return resp.StatusCode
}

func (c *client) read() map[string]any {
	c.t.Helper()
	if len(c.skipped) > 0 {
		m := c.skipped[0]
		c.skipped = c.skipped[1:]
		return m
	}
	return c.next()
}

func (c *client) next() map[string]any {
	c.t.Helper()
	select {
	case m := <-c.frames:
		return m
	case <-time.After(10 * time.Second):
		c.t.Fatal("no frame within 10s")
		return nil
	}
}

// request sends v and returns the reply or error frame with its id,
// skipping events.
func (c *client) request(v map[string]any) map[string]any {
	c.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
	for {
		m := c.next()
		if (m["type"] == "reply" || m["type"] == "error") && m["id"] == v["id"] {
			return m
		}
		c.skipped = append(c.skipped, m)
	}
}

func metric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

var _ = testutil.ToFloat64

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
