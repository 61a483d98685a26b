package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/internal/npmtest"
	"github.com/heraldrt/herald/internal/testserver"
)

// socketIONode is one examples/socketio-echo process: the Socket.IO app
// of the protocol suites (pingInterval 300 ms, pingTimeout 200 ms unless
// started with -ping-timeout).
type socketIONode struct {
	name, addr string
}

var builtEcho struct {
	once sync.Once
	path string
	err  error
}

// buildSocketIOEcho builds examples/socketio-echo once per test binary.
func buildSocketIOEcho(t *testing.T) string {
	t.Helper()
	b := &builtEcho
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "socketio-echo-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "socketio-echo")
		cmd := exec.Command("go", "build", "-o", b.path, "./examples/socketio-echo")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build ./examples/socketio-echo: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// startSocketIONode starts examples/socketio-echo (bin) with flags.
func startSocketIONode(t *testing.T, bin, name string, flags ...string) *socketIONode {
	t.Helper()
	n := &socketIONode{name: name}
	logs := &syncBuffer{}
	// Port 0: the node names the port it bound in its log.
	cmd := exec.Command(bin, append([]string{"-addr", "127.0.0.1:0"}, flags...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, logs.String())
		}
	})
	waitFor(t, 15*time.Second, name+" up", func() bool {
		select {
		case <-exited:
			t.Fatalf("%s exited before it was up:\n%s", name, logs.String())
		default:
		}
		if n.addr == "" {
			if n.addr = loggedAddr(logs.String(), "socketio-echo listening"); n.addr == "" {
				return false
			}
		}
		resp, err := http.Get("http://" + n.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

// pollSession is a raw Engine.IO long-polling session.
type pollSession struct {
	t   *testing.T
	url string // with the sid
	hc  *http.Client
}

// pollClient never waits long: a request the server leaves hanging fails
// the test instead of hanging it.
var pollClient = &http.Client{Timeout: 5 * time.Second}

func openPolling(t *testing.T, base string) *pollSession {
	t.Helper()
	status, body := pollDo(t, http.MethodGet, base+"/socket.io/?EIO=4&transport=polling", "")
	if status != http.StatusOK || !strings.HasPrefix(body, `0{"sid":"`) {
		t.Fatalf("handshake: %d %s", status, body)
	}
	sid := strings.TrimPrefix(body, `0{"sid":"`)
	sid = sid[:strings.IndexByte(sid, '"')]
	return &pollSession{t: t, url: base + "/socket.io/?EIO=4&transport=polling&sid=" + sid, hc: pollClient}
}

func pollDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pollClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *pollSession) post(body string) (int, string) {
	return pollDo(p.t, http.MethodPost, p.url, body)
}

func (p *pollSession) get() (int, string) { return pollDo(p.t, http.MethodGet, p.url, "") }

// expect polls until it has received want, in order, answering pings.
func (p *pollSession) expect(want ...string) {
	p.t.Helper()
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < len(want) {
		if time.Now().After(deadline) {
			p.t.Fatalf("polled %q, want %q", got, want)
		}
		status, body := p.get()
		if status != http.StatusOK {
			p.t.Fatalf("poll: %d %s (got so far %q)", status, body, got)
		}
		for _, pkt := range strings.Split(body, "\x1e") {
			if pkt == "2" {
				if status, body := p.post("3"); status != http.StatusOK {
					p.t.Fatalf("pong: %d %s", status, body)
				}
				continue
			}
			got = append(got, pkt)
		}
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			p.t.Fatalf("polled %q, want %q", got, want)
		}
	}
}

// TestNginxStickySocketIO runs deploy/nginx/herald-sticky.conf in front of
// two Socket.IO nodes: polling sessions, each a dozen requests, all reach
// the node that opened them (the other would answer 400), and the real
// socket.io-client connects, upgrades and exchanges events and acks
// through nginx.
func TestNginxStickySocketIO(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx and two Socket.IO nodes")
	}
	t.Parallel()
	nginx := need(t, "nginx", nginxHint, "/usr/sbin/nginx")
	bin := buildSocketIOEcho(t)
	// The real socket.io-client's pongs cross nginx and a loaded machine:
	// with the suites' 200 ms pingTimeout its polling session was closed
	// now and then (heartbeat timeout 0.46 s after it connected, at load
	// ~20 on 2 cores) and its ack never came. The raw sessions answer
	// their pings as they poll and need no more.
	n1 := startSocketIONode(t, bin, "sio1", "-ping-timeout", "5s")
	n2 := startSocketIONode(t, bin, "sio2", "-ping-timeout", "5s")
	ng := startNginx(t, nginx, "herald-sticky.conf", n1.addr, n2.addr)
	base := "http://" + ng.addr

	for i := range 8 {
		p := openPolling(t, base)
		if status, body := p.post("40"); status != http.StatusOK {
			t.Fatalf("session %d: CONNECT: %d %s", i, status, body)
		}
		p.expect(`40{"sid":"`, `42["auth",{}]`)
		if status, body := p.post(fmt.Sprintf(`42["message",%d]`, i)); status != http.StatusOK {
			t.Fatalf("session %d: EVENT: %d %s", i, status, body)
		}
		p.expect(fmt.Sprintf(`42["message-back",%d]`, i))
	}

	// The reference client, polling first then upgrading, and the other
	// cases of examples/socketio-echo's client test, through nginx.
	nm := npmtest.Install(t, "../examples/socketio-echo/testdata/node")
	dir, err := os.MkdirTemp(nm, "nginx-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	script, err := os.ReadFile("../examples/socketio-echo/testdata/sio-client.test.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "client.test.mjs"), script, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-reporter=spec", "client.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SOCKETIO_URL="+base)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("socket.io-client through nginx: %v\n%s", err, out)
	}
	t.Logf("socket.io-client through nginx:\n%s", out)
}

// TestNginxRoundRobinSocketIOUnknownSid runs herald-stateless.conf (round
// robin) in front of two Socket.IO nodes: a polling session's requests
// alternate between them, and the node that does not know the sid
// answers at once with the protocol's error, 400 {"code":1,"message":
// "Session ID unknown"}, never leaving the request hanging.
func TestNginxRoundRobinSocketIOUnknownSid(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx and two Socket.IO nodes")
	}
	t.Parallel()
	nginx := need(t, "nginx", nginxHint, "/usr/sbin/nginx")
	bin := buildSocketIOEcho(t)
	n1 := startSocketIONode(t, bin, "rr1")
	n2 := startSocketIONode(t, bin, "rr2")
	ng := startNginx(t, nginx, "herald-stateless.conf", n1.addr, n2.addr)

	const unknown = `{"code":1,"message":"Session ID unknown"}`
	p := openPolling(t, "http://"+ng.addr)
	refused := 0
	for range 4 {
		start := time.Now()
		status, body := p.get()
		switch {
		case status == http.StatusBadRequest && body == unknown:
			refused++
		case status == http.StatusOK: // the node that opened it (a ping, or a noop)
		default:
			t.Fatalf("poll through round robin: %d %s after %v", status, body, time.Since(start))
		}
		if status == http.StatusOK && strings.Contains(body, "2") {
			p.post("3")
		}
	}
	if refused == 0 {
		t.Fatal("round robin never sent a poll to the node that does not know the sid")
	}

	// Directly: a sid of one node on the other.
	direct := openPolling(t, "http://"+n1.addr)
	direct.url = strings.Replace(direct.url, n1.addr, n2.addr, 1)
	if status, body := direct.get(); status != http.StatusBadRequest || body != unknown {
		t.Fatalf("other node: %d %s", status, body)
	}
}

// TestNginxStickySocketIOHerald runs herald-sticky.conf in front of two
// real `herald serve` nodes sharing Redis, Socket.IO on by default at
// /socket.io/: long-polling Socket.IO sessions through nginx connect, join
// a room with herald:join and get a publication made through the server
// API, every request of each session reaching its node.
func TestNginxStickySocketIOHerald(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx, redis-server and two herald processes")
	}
	t.Parallel()
	nginx := need(t, "nginx", nginxHint, "/usr/sbin/nginx")
	bin, _ := buildHerald(t)
	redis := testserver.StartRedis(t)
	n1 := startHeraldNode(t, bin, "sio-h1", redis.URL())
	n2 := startHeraldNode(t, bin, "sio-h2", redis.URL())
	ng := startNginx(t, nginx, "herald-sticky.conf", n1.addr, n2.addr)
	base := "http://" + ng.addr

	var sessions []*pollSession
	for i := range 4 {
		p := openPolling(t, base)
		if status, body := p.post("40"); status != http.StatusOK {
			t.Fatalf("session %d: CONNECT: %d %s", i, status, body)
		}
		p.expect(`40{"sid":"`)
		if status, body := p.post(`421["herald:join",{"room":"news"}]`); status != http.StatusOK {
			t.Fatalf("session %d: herald:join: %d %s", i, status, body)
		}
		p.expect(`431[{"room":"news"`)
		sessions = append(sessions, p)
	}
	ng.publish(t, `{"room":"news","event":"hello","data":{"n":1}}`)
	for _, p := range sessions {
		p.expect(`42["hello",{"n":1}]`)
	}
}
