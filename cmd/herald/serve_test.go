package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/internal/portowner"
)

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "herald ") {
		t.Fatalf("version: code %d out %q", code, out.String())
	}
	// From the build info: the module's (pseudo-)version, the commit, its
	// time and whether the tree had changes; -X main.version wins.
	info := &debug.BuildInfo{GoVersion: "go1.26.3", Main: debug.Module{Version: "v0.0.0-20261205184548-f342641dd4ad+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "f342641dd4adabc688311ef729acf3f20681d96c"},
			{Key: "vcs.time", Value: "2026-12-05T18:45:48Z"}, {Key: "vcs.modified", Value: "true"}}}
	v, line := buildVersion("", info)
	want := "herald v0.0.0-20261205184548-f342641dd4ad+dirty (commit f342641dd4adabc688311ef729acf3f20681d96c 2026-12-05T18:45:48Z with uncommitted changes, go1.26.3 " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if v != "v0.0.0-20261205184548-f342641dd4ad+dirty" || line != want {
		t.Errorf("buildVersion = %q, %q\nwant %q", v, line, want)
	}
	if v, _ := buildVersion("v1.2.3", info); v != "v1.2.3" {
		t.Errorf("-X main.version: %q", v)
	}
	if v, line := buildVersion("", &debug.BuildInfo{GoVersion: "go1.26.3", Main: debug.Module{Version: "(devel)"}}); v != "devel" || strings.Contains(line, "commit") {
		t.Errorf("without VCS information: %q %q", v, line)
	}
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 {
		t.Fatalf("unknown command: code %d", code)
	}
}

// TestVersionOfTheBuiltBinary: the real binary prints what Go recorded in
// it (go version -m): its module version and, when built in a checkout
// with VCS stamping (the default outside this test's GOFLAGS), the commit.
func TestVersionOfTheBuiltBinary(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(out))
	if !strings.HasPrefix(line, "herald ") || strings.HasPrefix(line, "herald dev ") || !strings.Contains(line, runtime.Version()) {
		t.Fatalf("herald version = %q", line)
	}
	for _, l := range strings.Split(string(meta), "\n") {
		if rev, ok := strings.CutPrefix(strings.TrimSpace(l), "build\tvcs.revision="); ok && !strings.Contains(line, rev) {
			t.Fatalf("herald version = %q, lacks the commit %s recorded in the binary", line, rev)
		}
		if f := strings.Fields(l); len(f) >= 3 && f[0] == "mod" && f[2] != "(devel)" && !strings.Contains(line, f[2]) {
			t.Fatalf("herald version = %q, lacks the module version %s", line, f[2])
		}
	}
}

func TestServeHelpListsEveryFlagWithEnvAndDefault(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	help := errb.String() + out.String()
	for _, want := range []string{
		"--addr (HERALD_ADDR)", "(default 127.0.0.1:8080)",
		"--drain-timeout (HERALD_DRAIN_TIMEOUT)", "(default 30s)",
		"--heartbeat-interval (HERALD_HEARTBEAT_INTERVAL)",
		"--compression-threshold (HERALD_COMPRESSION_THRESHOLD)", "(default 1024)",
		"--read-limit (HERALD_READ_LIMIT)", "(default 65536)",
		"--api-key (HERALD_API_KEY)", "--log-format (HERALD_LOG_FORMAT)", "(default json)",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestServeConfigFromEnvAndFlags(t *testing.T) {
	t.Setenv("HERALD_ADDR", "127.0.0.1:9999")
	t.Setenv("HERALD_DRAIN_TIMEOUT", "7s")
	t.Setenv("HERALD_COMPRESSION_LEVEL", "6")
	sc, err := parseServe([]string{"--compression-level", "9"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.addr != "127.0.0.1:9999" || sc.server.DrainTimeout != 7*time.Second || sc.server.CompressionLevel != 9 {
		t.Fatalf("got addr %s drain %s level %d", sc.addr, sc.server.DrainTimeout, sc.server.CompressionLevel)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"bad env duration", map[string]string{"HERALD_DRAIN_TIMEOUT": "soon"}, nil, "HERALD_DRAIN_TIMEOUT"},
		{"bad env int", map[string]string{"HERALD_READ_LIMIT": "lots"}, nil, "HERALD_READ_LIMIT"},
		{"bad flag", nil, []string{"--no-such-flag"}, "no-such-flag"},
		{"bad gc tuning", nil, []string{"--gc-tuning", "fast"}, "gc-tuning"},
		{"bad io_uring", nil, []string{"--io-uring", "on"}, "io-uring"},
		{"bad level", nil, []string{"--compression-level", "12"}, "--compression-level: must be 1..9 (got 12)"},
		{"negative level", nil, []string{"--compression-level", "-2"}, "--compression-level: must be 1..9"},
		{"bad log format", nil, []string{"--log-format", "xml"}, "log-format"},
		{"short api key", nil, []string{"--api-key", "short"}, "--api-key: key 1 of 1 has 5 characters"},
		{"short admin password", nil, []string{"--admin", "--admin-password", "short"}, "--admin-password (Admin.Password): has 5 characters; it needs at least 12"},
		{"admin password without --admin", nil, []string{"--admin-password", "long-enough-password"}, "need --admin"},
		{"admin insecure without --admin", map[string]string{"HERALD_ADMIN_INSECURE": "1"}, nil, "need --admin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out, errb bytes.Buffer
			code := run(append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.args...), &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %s", code, errb.String(), tt.want)
			}
			// Nothing unrelated comes before the error that stops the server.
			if strings.Contains(errb.String(), "no authentication") || strings.Contains(errb.String(), "api_key") || strings.Contains(errb.String(), "admin_password") {
				t.Fatalf("a startup warning buries the error:\n%s", errb.String())
			}
		})
	}
}

// TestServeDemoRootAndGeneratedKey: with --demo, / sends a newcomer to the
// demo page, and the generated API key's line names what the binary reads.
func TestServeDemoRootAndGeneratedKey(t *testing.T) {
	srv := startBinary(t, nil, "--demo")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(srv.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/demo/" {
		t.Fatalf("GET / with --demo: %d Location %q, want 302 to /demo/", resp.StatusCode, resp.Header.Get("Location"))
	}
	var keyLine map[string]any
	for _, line := range strings.Split(srv.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["api_key"] != nil {
			keyLine = m
		}
	}
	if msg, _ := keyLine["msg"].(string); !strings.Contains(msg, "HERALD_API_KEY") || strings.Contains(msg, "Config.") {
		t.Fatalf("generated-key line %v: want one naming HERALD_API_KEY", keyLine)
	}
	resp, err = http.Get(srv.base + "/api/v1/rooms/r/presence")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API without the key: %d", resp.StatusCode)
	}
}

// TestServeRejectsEngineConfig: engine flags that cannot go together
// stop the server at start with a message naming them.
func TestServeRejectsEngineConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"redis url and cluster", []string{"--redis-url", "redis://127.0.0.1:1/0", "--redis-cluster", "127.0.0.1:2"}, "--redis-url and --redis-cluster are exclusive"},
		{"shared rooms without redis", []string{"--redis-shared-rooms"}, "--redis-shared-rooms needs --redis-url"},
		{"shared rooms on redis cluster", []string{"--redis-shared-rooms", "--redis-cluster", "127.0.0.1:2"}, "--redis-shared-rooms needs --redis-url"},
		{"shared rooms with nats", []string{"--redis-shared-rooms", "--redis-url", "redis://127.0.0.1:1/0", "--nats-url", "nats://127.0.0.1:1"}, "--redis-shared-rooms needs --redis-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.args...), &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 (invalid configuration) naming %q", code, errb.String(), tt.want)
			}
		})
	}
}

var (
	buildOnce sync.Once
	binDir    string // removed by TestMain
	binPath   string
	buildErr  error
)

// buildBinary builds the real herald binary once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "herald-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		binPath = filepath.Join(dir, "herald")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, binPath)
	}
	return binPath
}

// binaryServer is a `herald serve` child process started by startBinary.
type binaryServer struct {
	addr   string // host:port it listens on
	base   string // http://addr, or https://addr under --tls-cert
	logs   *syncWriter
	cmd    *exec.Cmd
	exited chan error // gets Wait's result; a test that takes it puts it back for the cleanup
	// client reaches base: one that skips certificate verification under
	// --tls-cert (the tests' certificates are self-signed).
	client *http.Client
}

// startBinary runs the built binary's `serve` on 127.0.0.1:0, with env
// added to the environment and args after --addr, reads the address it
// bound from its "listening" log line (args must leave the log level at
// info or below, and the format JSON), waits for /healthz and kills the
// process at the end of the test. The binary picks its own port: a port
// picked free by the test could be taken by another test's process
// before the binary binds it, and that process would answer for it.
func startBinary(t *testing.T, env []string, args ...string) *binaryServer {
	t.Helper()
	srv := &binaryServer{logs: &syncWriter{w: &bytes.Buffer{}}, exited: make(chan error, 1), client: http.DefaultClient}
	srv.cmd = exec.Command(buildBinary(t), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	srv.cmd.Env = append(os.Environ(), env...)
	srv.cmd.Stderr = srv.logs
	if err := srv.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { srv.exited <- srv.cmd.Wait() }()
	t.Cleanup(func() {
		_ = srv.cmd.Process.Kill()
		<-srv.exited
	})
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for {
		if srv.addr == "" {
			if l, ok := listeningLine(srv.logs.String()); ok {
				srv.addr, srv.base = l.Addr, "http://"+l.Addr
				if l.TLS {
					srv.base = "https://" + l.Addr
					tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
					srv.client = &http.Client{Transport: tr}
					t.Cleanup(tr.CloseIdleConnections)
				}
			}
		}
		if srv.addr != "" {
			var resp *http.Response
			if resp, err = srv.client.Get(srv.base + "/healthz"); err == nil {
				resp.Body.Close()
				return srv
			}
		}
		select {
		case exit := <-srv.exited:
			srv.exited <- exit // for the cleanup
			t.Fatalf("herald serve exited before it was up: %v\n%s", exit, srv.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not come up: %v\n%s", err, srv.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeOnPortZero: with --addr on port 0 the binary binds a port of
// the kernel's choice and names it in its "listening" line, which is how
// a test (or a supervisor) learns it; on Linux, the process holding that
// port's listening socket is the binary itself.
func TestServeOnPortZero(t *testing.T) {
	srv := startBinary(t, nil, "--api-key", "port-zero-key-0123456789")
	_, port, err := net.SplitHostPort(srv.addr)
	if err != nil || port == "0" {
		t.Fatalf("listening addr %q (%v), want the port bound", srv.addr, err)
	}
	p, _ := strconv.Atoi(port)
	ok, err := portowner.Listens(srv.cmd.Process.Pid, p)
	if errors.Is(err, errors.ErrUnsupported) {
		return
	}
	if !ok || err != nil {
		t.Fatalf("port %d of the listening line is not the binary's: %v, %v", p, ok, err)
	}
}

// TestSIGTERMDrainsRealBinary runs `herald serve`, connects clients, sends
// SIGTERM and checks the drain end to end: readiness fails, every client is
// told server_shutdown, and the process exits 0 within the drain timeout.
func TestSIGTERMDrainsRealBinary(t *testing.T) {
	srv := startBinary(t, nil, "--drain-timeout", "3s", "--drain-retry-after", "1s", "--api-key", "binary-test-key-0123456789")
	addr, base, logs, cmd, exited := srv.addr, srv.base, srv.logs, srv.cmd, srv.exited

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	type result struct {
		shutdown bool
		retryMs  float64
		err      error
	}
	const clients = 4
	results := make(chan result, clients)
	for i := 0; i < clients; i++ {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		// The welcome comes once the server holds the connection, so the
		// drain below will find it.
		if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), `"welcome"`) {
			t.Fatalf("welcome: %q %v", b, err)
		}
		leaveWhenTold := i%2 == 0
		go func() {
			var r result
			for {
				_, b, err := c.Read(ctx)
				if err != nil {
					r.err = err
					results <- r
					return
				}
				var m map[string]any
				_ = json.Unmarshal(b, &m)
				if m["type"] == "server_shutdown" {
					r.shutdown = true
					r.retryMs, _ = m["retryAfterMs"].(float64)
					if leaveWhenTold {
						_ = c.Close(websocket.StatusNormalClosure, "bye")
						results <- r
						return
					}
				}
			}
		}()
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Readiness turns 503 at once while the process still serves.
	waitReady := time.Now().Add(2 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(waitReady) {
			t.Fatalf("/readyz did not turn 503 during the drain")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < clients; i++ {
		r := <-results
		if !r.shutdown || r.retryMs < 500 || r.retryMs > 1500 {
			t.Errorf("client %d: server_shutdown=%v retryAfterMs=%v err=%v", i, r.shutdown, r.retryMs, r.err)
		}
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("herald exited with %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("herald did not exit within the drain timeout\n%s", logs.String())
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("exit took %s with a 3s drain timeout", took)
	}
	if !strings.Contains(logs.String(), `"msg":"draining"`) || !strings.Contains(logs.String(), `"msg":"exit"`) {
		t.Errorf("drain not logged:\n%s", logs.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

func TestSecureDefault(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"loopback without auth", []string{"--addr", "127.0.0.1:0"}, true},
		{"localhost without auth", []string{"--addr", "localhost:0"}, true},
		{"all interfaces without auth", []string{"--addr", "0.0.0.0:8080"}, false},
		{"empty host without auth", []string{"--addr", ":8080"}, false},
		{"all interfaces, explicitly insecure", []string{"--addr", "0.0.0.0:8080", "--insecure-no-auth"}, true},
		{"all interfaces with a JWT secret", []string{"--addr", "0.0.0.0:8080", "--jwt-secret", "0123456789abcdef0123456789abcdef"}, true},
		{"all interfaces with the backend's connect hook", []string{"--addr", "0.0.0.0:8080", "--backend-url", "http://127.0.0.1:3000",
			"--backend-hooks", "connect", "--backend-secret", "0123456789abcdef0123456789abcdef"}, true},
		{"all interfaces with other backend hooks only", []string{"--addr", "0.0.0.0:8080", "--backend-url", "http://127.0.0.1:3000",
			"--backend-hooks", "emit,events", "--backend-secret", "0123456789abcdef0123456789abcdef"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServe(tt.args, &bytes.Buffer{})
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "--insecure-no-auth") {
				t.Fatalf("the refusal does not say how to proceed: %v", err)
			}
		})
	}
}

func TestBackendFlags(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name string
		args []string
		want string // in the error; "" for none
	}{
		{"hooks without url", []string{"--backend-hooks", "emit"}, "--backend-hooks needs --backend-url"},
		{"url without hooks", []string{"--backend-url", "http://127.0.0.1:3000", "--backend-secret", secret}, "needs --backend-hooks"},
		{"unknown hook", []string{"--backend-url", "http://127.0.0.1:3000", "--backend-hooks", "emit,subscribe", "--backend-secret", secret}, `"subscribe" is not one of`},
		{"short secret", []string{"--backend-url", "http://127.0.0.1:3000", "--backend-hooks", "emit", "--backend-secret", "short"}, "--backend-secret: the secret has 5 bytes; at least 32"},
		{"not a URL", []string{"--backend-url", "ftp://x", "--backend-hooks", "emit", "--backend-secret", secret}, `--backend-url: "ftp://x" is not an http`},
		{"bad hook timeout", []string{"--backend-url", "http://x", "--backend-hooks", "emit", "--backend-secret", secret, "--backend-hook-timeouts", "emit=5"}, `--backend-hook-timeouts: emit: "5" is not a positive duration`},
		{"unknown hook timeout", []string{"--backend-url", "http://x", "--backend-hooks", "emit", "--backend-secret", secret, "--backend-hook-timeouts", "sub=5s"}, `"sub" is not one of`},
		{"zero timeout", []string{"--backend-url", "http://x", "--backend-hooks", "emit", "--backend-secret", secret, "--backend-hook-timeout", "0s"}, "--backend-hook-timeout: must be positive"},
		{"all hooks", []string{"--backend-url", "http://127.0.0.1:3000", "--backend-hooks", "connect, join,publish,emit,events", "--backend-secret", secret,
			"--backend-hook-timeouts", "connect=1s, emit=10s"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := parseServe(tt.args, &bytes.Buffer{})
			if tt.want == "" {
				if err != nil || len(sc.backend.hooks) != 5 || sc.backend.hookTimeouts["emit"] != 10*time.Second {
					t.Fatalf("parse: %v %+v", err, sc)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestTLSDirect serves wss:// from the binary with --tls-cert/--tls-key.
func TestTLSDirect(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	srv := startBinary(t, nil, "--tls-cert", certFile, "--tls-key", keyFile, "--api-key", "tls-test-key-0123456789")
	if !strings.HasPrefix(srv.base, "https://") {
		t.Fatalf("listening line of a TLS server: %s", srv.base)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "wss://"+srv.addr+"/ws", &websocket.DialOptions{HTTPClient: srv.client})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, b, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(b), `"type":"welcome"`) {
		t.Fatalf("welcome over wss: %q %v", b, err)
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestHeaderLimit sends an upgrade whose header block is over
// --max-header-bytes to the real binary: refused with 431, no socket.
func TestHeaderLimit(t *testing.T) {
	srv := startBinary(t, nil, "--max-header-bytes", "4096", "--api-key", "header-test-key-0123456789")
	addr := srv.addr
	req, _ := http.NewRequest("GET", "http://"+addr+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("X-Padding", strings.Repeat("p", 8192))
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized header: %d, want 431", resp.StatusCode)
	}
}

// TestInsecureNoAuthReachesTheLibrary: --insecure-no-auth sets
// Config.InsecureNoAuth, so the library's per-connection rule (anonymous
// clients on loopback only) is lifted exactly when the binary's is.
func TestInsecureNoAuthReachesTheLibrary(t *testing.T) {
	for args, want := range map[string]bool{"--addr 0.0.0.0:8080 --insecure-no-auth": true, "--addr 127.0.0.1:8080": false} {
		sc, err := parseServe(strings.Fields(args), &bytes.Buffer{})
		if err != nil || sc.server.InsecureNoAuth != want {
			t.Errorf("%s: InsecureNoAuth %v, %v; want %v", args, sc != nil && sc.server.InsecureNoAuth, err, want)
		}
	}
}

// TestServeAdminGeneratedPassword: --admin without a password generates
// one, logs it once naming what the binary reads, and it opens the console.
func TestServeAdminGeneratedPassword(t *testing.T) {
	srv := startBinary(t, nil, "--admin")
	var line map[string]any
	for _, l := range strings.Split(srv.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["admin_password"] != nil {
			if line != nil {
				t.Fatal("the generated admin password was logged twice")
			}
			line = m
		}
	}
	pw, _ := line["admin_password"].(string)
	if msg, _ := line["msg"].(string); !strings.Contains(msg, "HERALD_ADMIN_PASSWORD") || len(pw) < 12 {
		t.Fatalf("generated-password line %v: want one naming HERALD_ADMIN_PASSWORD", line)
	}
	for _, tt := range []struct {
		password string
		want     int
	}{{"wrong-password-000", http.StatusUnauthorized}, {pw, http.StatusOK}} {
		req, _ := http.NewRequest("GET", srv.base+"/admin/api/overview", nil)
		req.Header.Set("Authorization", "Bearer "+tt.password)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Fatalf("overview with password %q: %d, want %d", tt.password, resp.StatusCode, tt.want)
		}
	}
}
