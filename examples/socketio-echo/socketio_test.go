package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/npmtest"
)

// socketIOSuiteCommit pins socketio/socket.io-protocol: the suite run is
// that commit's test-suite/, fetched at test time (never copied here).
const socketIOSuiteCommit = "4f633dd6a4445492d57af3b27ddd2d336014f1f1"

// startApp serves the whole example (Socket.IO and Engine.IO) on a free
// port until the test ends.
func startApp(t *testing.T) string {
	t.Helper()
	a, err := newApp(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(a)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		ts.Close()
	})
	return ts.URL
}

// copyInto writes files into a new directory inside the npm install nm
// (so that their imports resolve to its node_modules), each changed by
// edit; it returns the directory.
func copyInto(t *testing.T, nm, prefix string, files map[string]string, edit func(name string, b []byte) []byte) string {
	t.Helper()
	dir, err := os.MkdirTemp(nm, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), edit(name, b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSocketIOProtocolSuite runs the published Socket.IO protocol test
// suite (mocha; its Engine.IO and Socket.IO cases, at /socket.io/) against
// the example. The suite's files come from GitHub at socketIOSuiteCommit,
// or from a checkout named by SOCKETIO_PROTOCOL_DIR; its npm dependencies
// are installed by the test.
func TestSocketIOProtocolSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node: skipped in -short mode")
	}
	nm := npmtest.Install(t, "testdata/node")
	suite := npmtest.GitHubFiles(t, "socketio/socket.io-protocol", socketIOSuiteCommit, "test-suite", "SOCKETIO_PROTOCOL_DIR")
	url := startApp(t)
	files := map[string]string{}
	for _, name := range []string{"test-suite.js", "node-imports.js", "package.json"} {
		files[name] = filepath.Join(suite, name)
	}
	dir := copyInto(t, nm, "socket.io-suite-", files, func(name string, b []byte) []byte {
		if name != "test-suite.js" {
			return b
		}
		// The suite targets localhost:3000; point it at this test's
		// server instead.
		const target = `"http://localhost:3000"`
		if !strings.Contains(string(b), target) {
			t.Fatalf("test-suite.js does not target %s", target)
		}
		return []byte(strings.Replace(string(b), target, `"`+url+`"`, 1))
	})
	out := runNode(t, dir, filepath.Join(nm, "node_modules", ".bin", "mocha"), "--reporter", "spec", "test-suite.js")
	t.Logf("mocha:\n%s", out)
}

// TestSocketIOClient drives the example with the real socket.io-client
// 4.8 (testdata/sio-client.test.mjs): polling, WebSocket, the upgrade,
// two namespaces over one connection, an unknown namespace, emit and ack
// in both directions with binary arguments, reconnecting.
func TestSocketIOClient(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node: skipped in -short mode")
	}
	nm := npmtest.Install(t, "testdata/node")
	url := startApp(t)
	dir := copyInto(t, nm, "socket.io-client-", map[string]string{
		"client.test.mjs": "testdata/sio-client.test.mjs",
	}, func(_ string, b []byte) []byte { return b })
	t.Setenv("SOCKETIO_URL", url)
	out := runNode(t, dir, "node", "--test", "--test-reporter=spec", "client.test.mjs")
	t.Logf("node --test:\n%s", out)
}
