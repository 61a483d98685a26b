// Command testsummary runs `go test -json ...` and prints what a person
// needs from it: the usual line per package, the output of failing tests,
// and at the end every skipped test with its reason, so that a test
// skipped for a missing tool (with the hint how to install it) does not
// hide behind an "ok". Its exit code is the command's. `make test` runs
// the suite through it:
//
//	go run ./internal/testsummary go test -json -race ./...
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testsummary go test -json [flags] [packages]")
		os.Exit(2)
	}
	os.Exit(runCommand(os.Args[1:], os.Stdout, os.Stderr))
}

// runCommand runs args, summarises its JSON output on out and returns its
// exit code.
func runCommand(args []string, out, errOut io.Writer) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(errOut, "testsummary:", err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(errOut, "testsummary:", err)
		return 1
	}
	s := newSummary(out)
	s.read(stdout)
	err = cmd.Wait()
	s.printUnfinished()
	s.printSkips()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintln(errOut, "testsummary:", err)
		return 1
	case s.failed:
		return 1
	}
	return 0
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output, build-fail
	Test       string
	Output     string
}

type skip struct {
	pkg, test, reason string
}

type summary struct {
	out    io.Writer
	tests  map[string][]string // package + test → its output so far
	skips  []skip
	failed bool
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, tests: make(map[string][]string)}
}

// read consumes the JSON stream; lines that are not JSON are printed as
// they are.
func (s *summary) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(s.out, "%s\n", line)
			continue
		}
		s.handle(e)
	}
}

func (s *summary) handle(e event) {
	key := e.Package + " " + e.Test
	switch {
	case e.Action == "build-output":
		fmt.Fprint(s.out, e.Output)
	case e.Action == "build-fail":
		s.failed = true
	case e.Test == "":
		// Package-level lines: "ok  pkg 1.2s", "FAIL pkg", "? pkg [no test
		// files]", and output outside any test (a panic in TestMain).
		if e.Action == "output" && e.Output != "PASS\n" {
			fmt.Fprint(s.out, e.Output)
		}
		if e.Action == "fail" {
			s.failed = true
		}
	case e.Action == "output":
		s.tests[key] = append(s.tests[key], e.Output)
	case e.Action == "fail":
		s.failed = true
		fmt.Fprint(s.out, strings.Join(s.tests[key], ""))
		delete(s.tests, key)
	case e.Action == "skip":
		s.skips = append(s.skips, skip{pkg: e.Package, test: e.Test, reason: skipReason(s.tests[key])})
		delete(s.tests, key)
	case e.Action == "pass":
		delete(s.tests, key)
	}
}

// skipReason is the message a test gave t.Skip: its output without the
// "=== RUN" and "--- SKIP" framing and the file:line prefix.
func skipReason(lines []string) string {
	var reason []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		if i := strings.Index(t, ".go:"); i >= 0 {
			if j := strings.Index(t[i:], ": "); j >= 0 {
				t = t[i+j+2:]
			}
		}
		reason = append(reason, t)
	}
	if len(reason) == 0 {
		return "(no reason given)"
	}
	return strings.Join(reason, " ")
}

// printUnfinished prints the output of tests that never ended (the test
// binary crashed or timed out while they ran): it is where the cause is.
func (s *summary) printUnfinished() {
	keys := make([]string, 0, len(s.tests))
	for k := range s.tests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprint(s.out, strings.Join(s.tests[k], ""))
	}
}

// printSkips lists the skipped tests, grouped by reason, so that a missing
// tool shows once with its install hint and the tests it cost.
func (s *summary) printSkips() {
	if len(s.skips) == 0 {
		return
	}
	byReason := map[string][]string{}
	for _, k := range s.skips {
		pkg := k.pkg[strings.LastIndexByte(k.pkg, '/')+1:]
		byReason[k.reason] = append(byReason[k.reason], pkg+"."+k.test)
	}
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprintf(s.out, "\nSKIPPED %d tests (with CI set, a test skipped for a missing tool fails instead):\n", len(s.skips))
	for _, r := range reasons {
		tests := byReason[r]
		sort.Strings(tests)
		fmt.Fprintf(s.out, "  %s\n      %d: %s\n", r, len(tests), strings.Join(tests, ", "))
	}
}
