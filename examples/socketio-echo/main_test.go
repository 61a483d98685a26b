package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The published protocol test suites, pinned. They are fetched at test
// time (they are other projects' code) from GitHub, or read from a local
// checkout named by the environment variable, for machines without
// access to GitHub.
var suites = map[string]struct {
	repo, commit, env string
}{
	"socket.io-protocol": {"socketio/socket.io-protocol", "4f633dd6a4445492d57af3b27ddd2d336014f1f1", "SOCKETIO_PROTOCOL_SUITE"},
	"engine.io-protocol": {"socketio/engine.io-protocol", "f21de7b00ed09b3bbad2807db718ea5d6bc36aba", "ENGINEIO_PROTOCOL_SUITE"},
}

// TestSocketIOProtocolSuite runs the mocha test suite of
// socketio/socket.io-protocol (Engine.IO and Socket.IO cases, at
// /socket.io/) against the example.
func TestSocketIOProtocolSuite(t *testing.T) { runSuite(t, "socket.io-protocol") }

// TestEngineIOProtocolSuite runs the mocha test suite of
// socketio/engine.io-protocol (at /engine.io/) against the example.
func TestEngineIOProtocolSuite(t *testing.T) { runSuite(t, "engine.io-protocol") }

// TestSocketIOClient drives the example with the real socket.io-client
// 4.8 (clienttest/client.test.mjs): polling, WebSocket, the upgrade,
// namespaces over one connection, an unknown namespace, emit and ack in
// both directions with binary arguments, reconnecting.
func TestSocketIOClient(t *testing.T) {
	needNode(t)
	dir, err := filepath.Abs("clienttest")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socket.io-client")); err != nil {
		runCmd(ctx, t, dir, nil, "npm", "ci", "--no-audit", "--no-fund")
	}
	url := startApp(t)
	runCmd(ctx, t, dir, []string{"SOCKETIO_URL=" + url}, "node", "--test", "--test-reporter=spec", "client.test.mjs")
}

// runSuite fetches suite, installs its dependencies with npm and runs it
// against the example, with its URL pointed at the example's address.
func runSuite(t *testing.T, name string) {
	needNode(t)
	s := suites[name]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir := os.Getenv(s.env)
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "herald-test", name+"-"+s.commit[:12], "test-suite")
		if _, err := os.Stat(filepath.Join(dir, "test-suite.js")); err != nil {
			if err := download(ctx, s.repo, s.commit, filepath.Dir(dir)); err != nil {
				need(t, fmt.Sprintf("cannot fetch the %s test suite from GitHub (%v); set %s to the test-suite directory of a checkout of github.com/%s at %s",
					name, err, s.env, s.repo, s.commit[:12]))
			}
		}
	}
	src, err := os.ReadFile(filepath.Join(dir, "test-suite.js"))
	if err != nil {
		t.Fatalf("%s: %v", s.env, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "mocha")); err != nil {
		runCmd(ctx, t, dir, nil, "npm", "ci", "--no-audit", "--no-fund")
	}

	url := startApp(t)
	const want = `const URL = "http://localhost:3000";`
	if !bytes.Contains(src, []byte(want)) {
		t.Fatalf("%s/test-suite.js no longer holds %s", dir, want)
	}
	f, err := os.CreateTemp(dir, "herald-*.js")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	if _, err := f.Write(bytes.Replace(src, []byte(want), fmt.Appendf(nil, "const URL = %q;", url), 1)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	runCmd(ctx, t, dir, nil, filepath.Join("node_modules", ".bin", "mocha"), "--reporter", "spec", filepath.Base(f.Name()))
}

// startApp serves the example on a free port until the test ends.
func startApp(t *testing.T) string {
	t.Helper()
	a, err := newApp(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(a)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return ts.URL
}

// download extracts the test-suite directory of repo at commit into dst.
func download(ctx context.Context, repo, commit, dst string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://codeload.github.com/"+repo+"/tar.gz/"+commit, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GitHub answered %s", resp.Status)
	}
	gz, err := gzip.NewReader(resp.Body)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".download-*")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(dst), ".download-*"); err != nil {
			return err
		}
	}
	defer os.RemoveAll(tmp)
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		// Entries are <repo>-<commit>/test-suite/<file>: keep the suite's
		// regular files only.
		parts := strings.SplitN(h.Name, "/", 3)
		if len(parts) != 3 || parts[1] != "test-suite" || h.Typeflag != tar.TypeReg || strings.Contains(parts[2], "/") {
			continue
		}
		dir := filepath.Join(tmp, "test-suite")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(tr, 4<<20))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, parts[2]), b, 0o644); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "test-suite", "test-suite.js")); err != nil {
		return fmt.Errorf("no test-suite/test-suite.js in the archive")
	}
	_ = os.RemoveAll(dst)
	return os.Rename(tmp, dst)
}

func needNode(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(t, tool+" not found on PATH; install Node.js 20 or later (Debian: apt-get install -y nodejs npm)")
		}
	}
}

// need skips t with msg, or fails it when CI is set.
func need(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// runCmd runs name in dir and fails t, showing its output, when it fails.
func runCmd(ctx context.Context, t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	t.Logf("%s %s:\n%s", name, strings.Join(args, " "), out)
}
