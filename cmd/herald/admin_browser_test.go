package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/testserver"
)

// adminPassword is the console's password in the browser test.
const adminPassword = "browser-test-admin-pw-0123"

// TestAdminConsoleBrowser drives the admin console in headless Chromium
// (cmd/herald/testdata/admin_browser.mjs, with playwright-core from
// clients/js) against two `herald serve --admin` processes on a real
// Redis: sign-in, both nodes and their counts, find a client, publish to
// it, tail, disconnect it, revoke it, CSRF and sign-in throttling, drain.
// It takes the screenshots of docs/admin.md: set ADMIN_SCREENSHOTS to a
// directory (docs/admin) to keep them. Without Chromium, node or npm it
// skips, or fails when CI is set.
func TestAdminConsoleBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chromium := os.Getenv("CHROMIUM_PATH")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		needTool(t, chromium+" not found; install it with: apt-get update && apt-get install -y chromium")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			needTool(t, tool+" not found on PATH; install Node.js 20 or later (Debian: apt-get install -y nodejs npm)")
		}
	}
	jsDir, err := filepath.Abs("../../clients/js")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "playwright-core")); err != nil {
		runNode(ctx, t, jsDir, nil, "npm", "ci", "--no-audit", "--no-fund")
	}
	shots := os.Getenv("ADMIN_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	} else if shots, err = filepath.Abs(shots); err != nil {
		t.Fatal(err)
	}

	redis := testserver.StartRedis(t)
	bin := buildBinary(t)
	flags := []string{"--redis-url", redis.URL(), "--admin", "--admin-password", adminPassword, "--history", "lobby=100"}
	a := startNodeWith(t, bin, "node-a", flags...)
	b := startNodeWith(t, bin, "node-b", flags...)

	script, err := filepath.Abs("testdata/admin_browser.mjs")
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"CHROMIUM_PATH=" + chromium, "JS_DIR=" + jsDir, "SHOTS=" + shots, "ADMIN_PASSWORD=" + adminPassword,
		"NODE_A=" + a.http(), "NODE_B=" + b.http(),
	}
	runNode(ctx, t, jsDir, env, "node", script)

	// The console drained node-b: it left the way SIGTERM makes it leave.
	select {
	case err := <-b.exit:
		b.exit <- err // for the cleanup
		if err != nil {
			t.Fatalf("node-b after the drain: %v\n%s", err, b.logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("node-b did not exit after the drain\n%s", b.logs.String())
	}
	logs := a.logs.String() + b.logs.String()
	for _, want := range []string{
		`"msg":"admin sign-in"`, `"action":"publish"`, `"action":"disconnect"`,
		`"action":"revoke"`, `"action":"drain"`, `"msg":"drain requested from the admin console: draining"`,
		`"msg":"admin request refused: missing or wrong CSRF token"`, `"msg":"admin sign-in refused: too many failures"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("node-a:\n%s\nnode-b:\n%s", a.logs.String(), b.logs.String())
	}
}

// needTool skips t for a missing tool, or fails it when CI is set.
func needTool(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// runNode runs name in dir with env added, and fails t with its output if it fails.
func runNode(ctx context.Context, t testing.TB, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	t.Logf("%s %v:\n%s", name, args, out)
}
