package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stream is go test -json output of a run with a pass, a skip for a
// missing tool, a skip of a subtest and a failure, in two packages.
const stream = `{"Action":"start","Package":"example.com/m/a"}
{"Action":"run","Package":"example.com/m/a","Test":"TestPass"}
{"Action":"output","Package":"example.com/m/a","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"output","Package":"example.com/m/a","Test":"TestPass","Output":"    a_test.go:9: noise of a passing test\n"}
{"Action":"output","Package":"example.com/m/a","Test":"TestPass","Output":"--- PASS: TestPass (0.00s)\n"}
{"Action":"pass","Package":"example.com/m/a","Test":"TestPass"}
{"Action":"run","Package":"example.com/m/a","Test":"TestRedis"}
{"Action":"output","Package":"example.com/m/a","Test":"TestRedis","Output":"=== RUN   TestRedis\n"}
{"Action":"output","Package":"example.com/m/a","Test":"TestRedis","Output":"    port.go:47: redis-server not found: apt-get install redis-server\n"}
{"Action":"output","Package":"example.com/m/a","Test":"TestRedis","Output":"--- SKIP: TestRedis (0.00s)\n"}
{"Action":"skip","Package":"example.com/m/a","Test":"TestRedis"}
{"Action":"output","Package":"example.com/m/a","Output":"PASS\n"}
{"Action":"output","Package":"example.com/m/a","Output":"ok  \texample.com/m/a\t0.01s\n"}
{"Action":"pass","Package":"example.com/m/a"}
{"Action":"run","Package":"example.com/m/b","Test":"TestCluster"}
{"Action":"output","Package":"example.com/m/b","Test":"TestCluster","Output":"    port.go:47: redis-server not found: apt-get install redis-server\n"}
{"Action":"skip","Package":"example.com/m/b","Test":"TestCluster"}
{"Action":"run","Package":"example.com/m/b","Test":"TestBroken"}
{"Action":"output","Package":"example.com/m/b","Test":"TestBroken","Output":"=== RUN   TestBroken\n"}
{"Action":"output","Package":"example.com/m/b","Test":"TestBroken","Output":"    b_test.go:12: got 1, want 2\n"}
{"Action":"output","Package":"example.com/m/b","Test":"TestBroken","Output":"--- FAIL: TestBroken (0.00s)\n"}
{"Action":"fail","Package":"example.com/m/b","Test":"TestBroken"}
{"Action":"output","Package":"example.com/m/b","Output":"FAIL\n"}
{"Action":"output","Package":"example.com/m/b","Output":"FAIL\texample.com/m/b\t0.02s\n"}
{"Action":"fail","Package":"example.com/m/b"}
`

func TestSummaryShowsSkipsAndFailures(t *testing.T) {
	var out bytes.Buffer
	s := newSummary(&out)
	s.read(strings.NewReader(stream))
	s.printUnfinished()
	s.printSkips()
	got := out.String()
	for _, want := range []string{
		"ok  \texample.com/m/a\t0.01s\n",
		"    b_test.go:12: got 1, want 2\n--- FAIL: TestBroken (0.00s)\n",
		"FAIL\texample.com/m/b\t0.02s\n",
		"SKIPPED 2 tests (with CI set, a test skipped for a missing tool fails instead):\n" +
			"  redis-server not found: apt-get install redis-server\n      2: a.TestRedis, b.TestCluster\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "noise of a passing test") || strings.Contains(got, "PASS\n") {
		t.Errorf("a passing test's output is shown:\n%s", got)
	}
	if !s.failed {
		t.Error("a failed test does not fail the run")
	}
}

// TestExitCodeIsTheCommands: the summary never turns a failed run green
// (nor a green one red).
func TestExitCodeIsTheCommands(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "stream.json")
	if err := os.WriteFile(file, []byte(stream), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := runCommand([]string{"sh", "-c", "cat " + file + "; exit 3"}, &out, &errOut); code != 3 {
		t.Errorf("exit %d, want the command's 3", code)
	}
	if !strings.Contains(out.String(), "SKIPPED 2 tests") {
		t.Errorf("no skip summary:\n%s", out.String())
	}
	if code := runCommand([]string{"sh", "-c", "cat " + file}, &out, &errOut); code != 1 {
		t.Errorf("a stream with a failed test, command exit 0: %d, want 1", code)
	}
	if code := runCommand([]string{"true"}, &out, &errOut); code != 0 {
		t.Errorf("a clean run: exit %d", code)
	}
}
