package suite

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/backend"
	"github.com/heraldrt/herald/bench/loadgen"
)

// Columns of the connect proxy table.
const (
	ProxyJWT     = "JWT only"
	ProxyConnect = "connect proxy"
)

// backendSecret signs the connect proxy's requests to the bench's backend.
const backendSecret = "herald-bench-backend-secret-0123456789"

// benchBackend is the local application backend of the proxy scenario: it
// verifies each request's signature and lets every client in as one user.
// It runs in the orchestrator's process: its CPU is not in "server CPU".
type benchBackend struct {
	srv   *http.Server
	ln    net.Listener
	calls atomic.Int64
	bad   atomic.Int64
	done  chan struct{}
}

func startBenchBackend() (*benchBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &benchBackend{ln: ln, done: make(chan struct{})}
	b.srv = &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	return b, nil
}

func (b *benchBackend) url() string { return "http://" + b.ln.Addr().String() }

func (b *benchBackend) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.calls.Add(1)
	if err := backend.Verify([]byte(backendSecret), body, r.Header.Get(backend.HeaderSignature), time.Now(), time.Minute); err != nil {
		b.bad.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var req backend.ConnectRequest
	if err := json.Unmarshal(body, &req); err != nil || req.Token == "" {
		b.bad.Add(1)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"allow":true,"user":"bench-proxy-user"}`))
}

func (b *benchBackend) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
	<-b.done
}

// proxy measures connects per second on one Herald node twice in the
// same run: with JWT verification only, and with the connect hook sent
// to a local backend (no JWT on the node; the backend sees the token).
func (r *runner) proxy(ctx context.Context) error {
	keep := func(col string) func(loadgen.ChurnResult) {
		return func(res loadgen.ChurnResult) { r.report.Proxy[col] = append(r.report.Proxy[col], res) }
	}
	d, err := r.deploy(ctx, TargetHerald, deployConfig{nodes: 1, jwt: true})
	if err != nil {
		return err
	}
	err = r.churnReps(ctx, d, ProxyJWT, keep(ProxyJWT))
	d.stop()
	if err != nil {
		return err
	}
	b, err := startBenchBackend()
	if err != nil {
		return err
	}
	defer b.stop()
	d, err = r.deploy(ctx, TargetHerald, deployConfig{nodes: 1, backendURL: b.url()})
	if err != nil {
		return err
	}
	defer d.stop()
	if err := r.churnReps(ctx, d, ProxyConnect, keep(ProxyConnect)); err != nil {
		return err
	}
	r.logf("connect proxy: the backend answered %d calls, %d refused as malformed or unsigned", b.calls.Load(), b.bad.Load())
	if b.calls.Load() == 0 || b.bad.Load() > 0 {
		return errors.New("suite: the connect proxy's backend saw no calls, or malformed ones")
	}
	return nil
}
