package deploy

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the module root: tests run in deploy/.
const repoRoot = ".."

// readFile returns a file of the repository as text.
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// need returns the path of a binary the test cannot do without. Missing, it
// fails the test with an install hint when CI is set, and skips it otherwise.
func need(t testing.TB, name, hint string, fallbacks ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range fallbacks {
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found; install it with: %s", name, hint)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// builtHerald is the herald binary built once per test run the way the
// Dockerfile builds it, so the tests run the artifact that ships.
var builtHerald struct {
	once    sync.Once
	path    string
	version string
	err     error
}

// buildHerald builds cmd/herald with the Dockerfile's build flags
// (CGO_ENABLED=0, its -trimpath and -ldflags, with VERSION set) and returns
// the binary's path and the version stamped into it.
func buildHerald(t testing.TB) (path, version string) {
	t.Helper()
	b := &builtHerald
	b.once.Do(func() {
		df, err := parseDockerfile(readFile(t, "Dockerfile"))
		if err != nil {
			b.err = err
			return
		}
		flags, err := df.goBuildFlags()
		if err != nil {
			b.err = err
			return
		}
		dir, err := os.MkdirTemp("", "herald-deploy-")
		if err != nil {
			b.err = err
			return
		}
		b.version = "deploy-test-" + strconv.FormatInt(time.Now().Unix(), 36)
		b.path = filepath.Join(dir, "herald")
		for i, f := range flags {
			flags[i] = strings.ReplaceAll(strings.ReplaceAll(f, "${VERSION}", b.version), "$VERSION", b.version)
		}
		args := append([]string{"build"}, flags...)
		args = append(args, "-o", b.path, "./cmd/herald")
		cmd := exec.Command("go", args...)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path, b.version
}

// isStatic reports whether the ELF binary at path needs no dynamic loader,
// as it must on a distroless/static or scratch base.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return false, nil
		}
	}
	return true, nil
}

// heraldEnvNames lists the HERALD_* variables `herald serve --help` documents.
func heraldEnvNames(t testing.TB) map[string]bool {
	t.Helper()
	bin, _ := buildHerald(t)
	out, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`\((HERALD_[A-Z0-9_]+)\)`).FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	if len(names) < 10 {
		t.Fatalf("herald serve --help listed %d variables:\n%s", len(names), out)
	}
	return names
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. Another process may bind it before the one it is meant for: a
// server that can bind port 0 does (loggedAddr); nginx, which cannot, is
// started again on another port when it fails to bind it.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// loggedAddr returns the addr attribute of the first slog line whose
// message is msg in logs, JSON or text, or "" while there is none: the
// address a server started on port 0 bound.
func loggedAddr(logs, msg string) string {
	quoted := "msg=" + strconv.Quote(msg)
	for line := range strings.Lines(logs) {
		var l struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil {
			if l.Msg == msg {
				return l.Addr
			}
			continue
		}
		if !strings.Contains(line, quoted) && !strings.Contains(line, "msg="+msg+" ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if a, ok := strings.CutPrefix(f, "addr="); ok {
				return a
			}
		}
	}
	return ""
}

// waitFor polls cond until it holds or timeout passes, then fails with what.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// scrape fetches a Prometheus text page and returns each sample's value by
// its name with labels as written (`herald_connections`,
// `herald_errors_total{code="internal"}`), plus the names the page declares
// in # TYPE lines under the key "# TYPE <name>".
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				samples["# TYPE "+f[0]] = 1
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		samples[line[:i]] = v
	}
	return samples, sc.Err()
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
