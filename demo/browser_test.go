package demo_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestBrowserDemo runs clients/js/test/browser.test.js: the demo chat in
// headless Chromium, two pages and the publish API against a real server.
// It needs node and npm (for playwright-core, installed with npm ci when
// clients/js/node_modules is missing) and Chromium; without them it skips,
// or fails when CI is set.
func TestBrowserDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chromium := os.Getenv("CHROMIUM_PATH")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		need(t, chromium+" not found; install it with: apt-get update && apt-get install -y chromium")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			need(t, tool+" not found on PATH; install Node.js 20 or later (Debian: apt-get install -y nodejs npm)")
		}
	}
	dir, err := filepath.Abs("../clients/js")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		runIn(ctx, t, dir, chromium, "npm", "ci", "--no-audit", "--no-fund")
	}
	runIn(ctx, t, dir, chromium, "node", "--test", "--test-reporter=spec", "test/browser.test.js")
}

// need skips t for a missing tool, or fails it when CI is set.
func need(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// runIn runs name in dir, telling it where Chromium is.
func runIn(ctx context.Context, t testing.TB, dir, chromium, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROMIUM_PATH="+chromium)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v in %s: %v\n%s", name, args, dir, err, out)
	}
	t.Logf("%s %v:\n%s", name, args, out)
}
