package herald_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/npmtest"
)

// The Socket.IO tests drive the real npm socket.io-client (4.8, installed by
// the test with npm, as examples/socketio-echo's tests do) through
// testdata/socketio/peer.js: one node process per peer, commands on its
// stdin, what it sees as JSON lines on its stdout.

// sioNodeDir returns the npm install holding socket.io-client, with
// peer.js copied into it so that its require resolves there.
func sioNodeDir(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs node: skipped in -short mode")
	}
	nm := npmtest.Install(t, "examples/socketio-echo/testdata/node")
	dir, err := os.MkdirTemp(nm, "herald-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b, err := os.ReadFile("testdata/socketio/peer.js")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "peer.js"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sioPeer is one node process running peer.js.
type sioPeer struct {
	t     testing.TB
	cmd   *exec.Cmd
	in    io.WriteCloser
	mu    sync.Mutex
	lines []map[string]any // seen and not yet matched
	more  chan struct{}    // signalled when a line arrives
	done  chan struct{}    // closed when stdout ends
}

func startPeer(t testing.TB, dir string) *sioPeer {
	t.Helper()
	cmd := exec.Command("node", "peer.js")
	cmd.Dir = dir
	cmd.Stderr = &testWriter{t: t, prefix: "peer: "}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &sioPeer{t: t, cmd: cmd, in: in, more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Logf("peer wrote %q", sc.Text())
				continue
			}
			p.mu.Lock()
			p.lines = append(p.lines, m)
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-p.done
	})
	// Starting node and loading socket.io-client is not what is tested,
	// and it is slow on a loaded machine: 3 s for one peer at load ~12 on
	// 2 cores, and over 10 s (the fresh clone's CI run, load ~20, with the
	// package's other tests and peers) once (TestSocketIOAuthentication:
	// "no ready within 10 s; saw []").
	p.expectWithin("ready", peerStartTimeout, func(m map[string]any) bool { return m["type"] == "ready" })
	return p
}

// peerStartTimeout bounds a peer's start (node, then socket.io-client
// loaded) until it says it is ready.
const peerStartTimeout = time.Minute

// testWriter logs what a peer writes to stderr.
type testWriter struct {
	t      testing.TB
	prefix string
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Logf("%s%s", w.prefix, strings.TrimSpace(string(b)))
	return len(b), nil
}

// do sends a command.
func (p *sioPeer) do(cmd map[string]any) {
	p.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("peer command %s: %v", b, err)
	}
}

// expect returns the first line, seen or to come within 10 s, that match
// accepts, and forgets it.
func (p *sioPeer) expect(what string, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	return p.expectWithin(what, 10*time.Second, match)
}

// expectWithin is expect with a deadline of d.
func (p *sioPeer) expectWithin(what string, d time.Duration, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.After(d)
	for {
		p.mu.Lock()
		for i, m := range p.lines {
			if match(m) {
				p.lines = append(p.lines[:i:i], p.lines[i+1:]...)
				p.mu.Unlock()
				return m
			}
		}
		seen := p.lines
		p.mu.Unlock()
		select {
		case <-p.more:
		case <-p.done:
			p.t.Fatalf("peer ended before %s; saw %v", what, seen)
		case <-deadline:
			p.t.Fatalf("no %s within %v; saw %v", what, d, seen)
		}
	}
}

// is matches a line of name with type typ and, when event is not empty,
// that event.
func is(name, typ, event string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		if m["name"] != name || m["type"] != typ {
			return false
		}
		return event == "" || m["event"] == event
	}
}

// ackTagged matches the ack of the emit tagged tag.
func ackTagged(name, tag string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["name"] == name && m["type"] == "ack" && m["tag"] == tag }
}

// connectPeer connects socket name of p to url (http://host) with opts and
// returns its connect line.
func (p *sioPeer) connect(name, url string, opts map[string]any) map[string]any {
	p.t.Helper()
	p.do(map[string]any{"op": "connect", "name": name, "url": url, "opts": opts})
	return p.expect(name+" connect", func(m map[string]any) bool {
		if m["name"] != name {
			return false
		}
		if m["type"] == "connect_error" {
			p.t.Fatalf("%s: connect_error %v", name, m)
		}
		return m["type"] == "connect"
	})
}

// call emits event with args and an ack, tagged tag, and returns the ack's
// arguments.
func (p *sioPeer) call(name, tag, event string, args ...any) []any {
	p.t.Helper()
	p.do(map[string]any{"op": "emit", "name": name, "event": event, "args": args, "ack": true, "tag": tag})
	m := p.expect("ack "+tag, ackTagged(name, tag))
	if m["err"] != nil {
		p.t.Fatalf("%s: ack error %v", tag, m["err"])
	}
	a, _ := m["args"].([]any)
	return a
}
