package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/npmtest"
	"github.com/heraldrt/herald/transport/engineio"
)

// engineIOSuiteCommit pins socketio/engine.io-protocol: the suite run is
// that commit's test-suite/, fetched at test time (never copied here).
const engineIOSuiteCommit = "f21de7b00ed09b3bbad2807db718ea5d6bc36aba"

// startEngineIO serves the example's Engine.IO app, configured with cfg,
// on a free port.
func startEngineIO(t *testing.T, cfg engineio.Config) string {
	t.Helper()
	eng, err := engineio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", eng)
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := eng.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return ts.URL
}

// TestEngineIOProtocolSuite runs the published Engine.IO protocol test
// suite (mocha) against the example's Engine.IO app. The suite's files
// come from GitHub at engineIOSuiteCommit, or from a checkout named by
// ENGINEIO_PROTOCOL_DIR; its npm dependencies are installed by the test.
func TestEngineIOProtocolSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node: skipped in -short mode")
	}
	nm := npmtest.Install(t, "testdata/node")
	suite := npmtest.GitHubFiles(t, "socketio/engine.io-protocol", engineIOSuiteCommit, "test-suite", "ENGINEIO_PROTOCOL_DIR")
	url := startEngineIO(t, engineIOConfig())

	// The suite imports its libraries from node_modules: run it from a
	// directory inside the install. It targets localhost:3000; point it
	// at this test's server instead.
	dir, err := os.MkdirTemp(nm, "engine.io-suite-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, name := range []string{"test-suite.js", "node-imports.js", "package.json"} {
		b, err := os.ReadFile(filepath.Join(suite, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "test-suite.js" {
			const target = `"http://localhost:3000"`
			if !strings.Contains(string(b), target) {
				t.Fatalf("test-suite.js does not target %s", target)
			}
			b = []byte(strings.Replace(string(b), target, `"`+url+`"`, 1))
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := runNode(t, dir, filepath.Join(nm, "node_modules", ".bin", "mocha"), "--reporter", "spec", "test-suite.js")
	t.Logf("mocha:\n%s", out)
}

// TestEngineIOClient drives the npm engine.io-client against the
// example's Engine.IO app over polling, WebSocket and the upgrade.
func TestEngineIOClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node: skipped in -short mode")
	}
	nm := npmtest.Install(t, "testdata/node")
	// The suite's 200 ms pingTimeout leaves a loaded machine little
	// room; this test is about the client's transports, not timing.
	cfg := engineIOConfig()
	cfg.PingTimeout = 5 * time.Second
	url := startEngineIO(t, cfg)
	script, err := filepath.Abs("testdata/eio-client.cjs")
	if err != nil {
		t.Fatal(err)
	}
	out := runNode(t, nm, "node", script, url)
	for _, want := range []string{"ok polling", "ok websocket", "ok upgrade"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in:\n%s", want, out)
		}
	}
}

// runNode runs name in dir with node_modules of dir on NODE_PATH and
// returns its output, failing the test if it fails.
func runNode(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
