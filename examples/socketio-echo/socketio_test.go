package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/npmtest"
)

// socketIOSuiteCommit pins socketio/socket.io-protocol: the suite run is
// that commit's test-suite/, fetched at test time (never copied here).
const socketIOSuiteCommit = "4f633dd6a4445492d57af3b27ddd2d336014f1f1"

// clientPingTimeout is the Socket.IO pingTimeout of the tests that drive
// the real socket.io-client: the suite's 200 ms leaves a loaded machine
// little room (a polling client's pong came later now and then, at load
// 11-20 on 2 cores, and the server rightly closed it: "xhr post error", or
// an ack never came), and these tests are about the client's transports,
// not timing. As TestEngineIOClient's.
const clientPingTimeout = 5 * time.Second

// startApp serves the whole example (Socket.IO and Engine.IO) on a free
// port until the test ends, with the given Socket.IO timing: as main
// does, through herald.Server.Serve, whose accept path serves the
// WebSocket handshakes at /socket.io/ (and net/http every other request),
// or, with netHTTP, through net/http alone.
func startApp(t *testing.T, netHTTP bool, tm timing) string {
	t.Helper()
	a, err := newApp(slog.New(slog.NewTextHandler(io.Discard, nil)), tm)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: a, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() {
		if netHTTP {
			served <- hs.Serve(ln)
		} else {
			served <- a.herald.Serve(ln, hs)
		}
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		_ = hs.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
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
// the example, served as main serves it (Server.Serve: its WebSocket
// handshakes on Herald's accept path) and through net/http alone. The
// suite's files come from GitHub at socketIOSuiteCommit, or from a
// checkout named by SOCKETIO_PROTOCOL_DIR; its npm dependencies are
// installed by the test.
func TestSocketIOProtocolSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node: skipped in -short mode")
	}
	nm := npmtest.Install(t, "testdata/node")
	suite := npmtest.GitHubFiles(t, "socketio/socket.io-protocol", socketIOSuiteCommit, "test-suite", "SOCKETIO_PROTOCOL_DIR")
	for _, path := range []struct {
		name    string
		netHTTP bool
	}{{"serve", false}, {"net-http", true}} {
		t.Run(path.name, func(t *testing.T) { runSocketIOSuite(t, nm, suite, path.netHTTP) })
	}
}

func runSocketIOSuite(t *testing.T, nm, suite string, netHTTP bool) {
	url := startApp(t, netHTTP, suiteRunTiming)
	files := map[string]string{}
	for _, name := range []string{"test-suite.js", "node-imports.js", "package.json"} {
		files[name] = filepath.Join(suite, name)
	}
	dir := copyInto(t, nm, "socket.io-suite-", files, func(name string, b []byte) []byte {
		if name != "test-suite.js" {
			return b
		}
		return suiteText(t, b, url, suiteRunTiming)
	})
	out := runNode(t, dir, filepath.Join(nm, "node_modules", ".bin", "mocha"), "--reporter", "spec", "--timeout", mochaTimeout, "test-suite.js")
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
	url := startApp(t, false, timing{pingInterval, clientPingTimeout, connectTimeout})
	dir := copyInto(t, nm, "socket.io-client-", map[string]string{
		"client.test.mjs": "testdata/sio-client.test.mjs",
	}, func(_ string, b []byte) []byte { return b })
	t.Setenv("SOCKETIO_URL", url)
	out := runNode(t, dir, "node", "--test", "--test-reporter=spec", "client.test.mjs")
	t.Logf("node --test:\n%s", out)
}
