package client_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/client"
)

const testAPIKey = "client-test-api-key-0123"

// testServer is a Herald server on a fixed local port, so a test can stop
// it and start another on the same address.
type testServer struct {
	t    testing.TB
	addr string // 127.0.0.1:port
	URL  string // ws://addr/ws

	mu   sync.Mutex
	srv  *herald.Server
	hs   *httptest.Server
	reg  *prometheus.Registry
	cfg  herald.Config
	down bool
}

// startServer runs Herald on a random port and stops it at the end of the
// test.
func startServer(t testing.TB, cfg herald.Config) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{t: t, addr: ln.Addr().String(), cfg: cfg}
	ts.URL = "ws://" + ts.addr + "/ws"
	ts.start(ln)
	t.Cleanup(ts.stop)
	return ts
}

func withDefaults(cfg herald.Config) (herald.Config, *prometheus.Registry) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.APIKeys == nil {
		cfg.APIKeys = []string{testAPIKey}
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 500 * time.Millisecond
	}
	if cfg.DrainRetryAfter == 0 {
		cfg.DrainRetryAfter = 50 * time.Millisecond
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = time.Second
	}
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	return cfg, reg
}

func (ts *testServer) start(ln net.Listener) {
	ts.t.Helper()
	cfg, reg := withDefaults(ts.cfg)
	srv, err := herald.New(cfg)
	if err != nil {
		ts.t.Fatalf("herald.New: %v", err)
	}
	hs := httptest.NewUnstartedServer(srv)
	_ = hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	ts.mu.Lock()
	ts.srv, ts.hs, ts.reg, ts.down = srv, hs, reg, false
	ts.mu.Unlock()
}

// Server returns the running Herald server.
func (ts *testServer) Server() *herald.Server {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.srv
}

// stop shuts Herald down (drain) and closes the listener; it is idempotent.
func (ts *testServer) stop() {
	ts.mu.Lock()
	srv, hs, down := ts.srv, ts.hs, ts.down
	ts.down = true
	ts.mu.Unlock()
	if down {
		return
	}
	hs.Listener.Close() // no new connections during the drain
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		ts.t.Errorf("Shutdown: %v", err)
	}
	hs.Close()
}

// restart stops the server and starts a new one on the same port.
func (ts *testServer) restart() {
	ts.t.Helper()
	ts.stop()
	var ln net.Listener
	var err error
	waitFor(ts.t, 5*time.Second, "listen again on "+ts.addr, func() bool {
		ln, err = net.Listen("tcp", ts.addr)
		return err == nil
	})
	ts.start(ln)
}

// metric returns the value of a counter or gauge, summed over the series
// whose labels include labels.
func (ts *testServer) metric(name string, labels ...string) float64 {
	ts.t.Helper()
	ts.mu.Lock()
	reg := ts.reg
	ts.mu.Unlock()
	mfs, err := reg.Gather()
	if err != nil {
		ts.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// dial connects a client that is closed at the end of the test.
func dial(t testing.TB, url string, opts ...client.Option) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts = append([]client.Option{client.WithReconnect(10*time.Millisecond, 100*time.Millisecond)}, opts...)
	c, err := client.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatalf("Dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// events collects the events a client's handlers see.
type events struct {
	mu  sync.Mutex
	evs []client.Event
	ch  chan client.Event
}

func collect(c *client.Client) *events {
	e := &events{ch: make(chan client.Event, 1000)}
	c.OnAny(func(ev client.Event) {
		e.mu.Lock()
		e.evs = append(e.evs, ev)
		e.mu.Unlock()
		e.ch <- ev
	})
	return e
}

// next returns the next event, failing after 5 s.
func (e *events) next(t testing.TB) client.Event {
	t.Helper()
	select {
	case ev := <-e.ch:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
		return client.Event{}
	}
}

func (e *events) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.evs)
}

// states records a client's state changes.
type states struct {
	mu  sync.Mutex
	all []client.State
}

func (s *states) handler(st client.State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = append(s.all, st)
}

func (s *states) count(st client.State) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, x := range s.all {
		if x == st {
			n++
		}
	}
	return n
}

// proxy is a TCP proxy a test can cut, to simulate a network failure.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  []net.Conn
	frozen map[net.Conn]bool // connections whose bytes are dropped
}

// startProxy forwards addr (empty: a random port) to target.
func startProxy(t testing.TB, addr, target string) *proxy {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	waitFor(t, 5*time.Second, "proxy listen on "+addr, func() bool {
		ln, err = net.Listen("tcp", addr)
		return err == nil
	})
	p := &proxy{t: t, ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.kill)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(up, down)
		go p.pipe(down, up)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		frozen := p.frozen[src]
		p.mu.Unlock()
		if err != nil {
			if !frozen { // a frozen link does not pass the close on either
				dst.Close()
				src.Close()
			}
			return
		}
		if frozen {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			dst.Close()
			src.Close()
			return
		}
	}
}

// freeze silently drops every byte of the current connections, both ways,
// closes included, as a dead link would; new connections work.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(map[net.Conn]bool)
	}
	for _, c := range p.conns {
		p.frozen[c] = true
	}
}

// kill cuts every connection without a close frame, as a network failure
// would, and stops listening.
func (p *proxy) kill() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func isClosed(err error) bool { return errors.Is(err, client.ErrClosed) }
