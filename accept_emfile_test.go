package herald_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald"
)

// emfileListener fails its first fails Accepts as a process out of
// descriptors does, then accepts; it counts the calls.
type emfileListener struct {
	net.Listener // not a *net.TCPListener: Serve's loop calls Accept
	fails        atomic.Int32
	calls        atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.calls.Add(1)
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Out of descriptors (EMFILE), Serve's accept loop neither spins nor
// gives up: it waits 5 ms, doubling to 1 s, logs and counts each failure
// (herald_accept_errors_total), and serves again once Accept works.
func TestAcceptOutOfDescriptorsBacksOff(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	srv, err := herald.New(herald.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), APIKeys: []string{testAPIKey},
		DrainTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const fails = 6 // back-offs of 5, 10, 20, 40, 80 and 160 ms: 315 ms
	ln := &emfileListener{Listener: inner}
	ln.fails.Store(fails)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 2 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn)}
	start := time.Now()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, hs) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = hs.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	})

	resp, err := http.Get("http://" + inner.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz after the EMFILEs: %d", resp.StatusCode)
	}
	if took < 300*time.Millisecond {
		t.Fatalf("served %s after %d EMFILEs: the loop did not wait between them", took, fails)
	}
	// The failed calls, the one that accepted this request and the one
	// waiting now: a loop that spun would have called thousands of times.
	if n := ln.calls.Load(); n > fails+3 {
		t.Fatalf("Accept called %d times for %d failures", n, fails)
	}
	if n := strings.Count(logs.String(), "accept failed; retrying"); n != fails {
		t.Fatalf("%d accept failures logged, want %d:\n%s", n, fails, logs.String())
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if want := fmt.Sprintf("herald_accept_errors_total %d\n", fails); !strings.Contains(rec.Body.String(), want) {
		t.Fatalf("/metrics has no %q", want)
	}
}
