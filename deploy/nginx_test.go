package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/portowner"
	"github.com/heraldrt/herald/internal/testserver"
)

const nginxHint = "apt-get install -y nginx (Debian/Ubuntu)"

// heraldNode is one real `herald serve` process.
type heraldNode struct {
	name, addr string
	cmd        *exec.Cmd
	logs       *syncBuffer
	exited     chan struct{}
	err        error // Wait's result, once exited is closed
}

func startHeraldNode(t *testing.T, bin, name, redisURL string, extra ...string) *heraldNode {
	t.Helper()
	n := &heraldNode{name: name, logs: &syncBuffer{}, exited: make(chan struct{})}
	// The node binds a port of its own choice and names it in its
	// "listening" line: a port picked free here could be taken by another
	// test's process before the node binds it.
	n.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--node-id", name, "--redis-url", redisURL,
		"--api-key", testAPIKey, "--drain-timeout", "3s", "--drain-retry-after", "200ms", "--lease-ttl", "3s"}, extra...)...)
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		_ = n.cmd.Process.Kill()
		<-n.exited
		if t.Failed() {
			t.Logf("%s logs:\n%s", n.name, n.logs.String())
		}
	})
	waitFor(t, 15*time.Second, name+" ready", func() bool {
		select {
		case <-n.exited:
			t.Fatalf("%s exited before it was ready: %v\n%s", name, n.err, n.logs.String())
		default:
		}
		if n.addr == "" {
			if n.addr = loggedAddr(n.logs.String(), "listening"); n.addr == "" {
				return false
			}
		}
		resp, err := http.Get("http://" + n.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

// connections reads herald_connections from the node itself, not through nginx.
func (n *heraldNode) connections(t *testing.T) int {
	t.Helper()
	s, err := scrape("http://" + n.addr + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", n.name, err)
	}
	return int(s["herald_connections"])
}

// nginxProc is an nginx master process run from a deploy/nginx file.
type nginxProc struct {
	addr, dir string
	logs      *syncBuffer
}

// renderNginx fills in a deploy/nginx template: listen address and nodes.
func renderNginx(t *testing.T, file, listen string, nodes ...string) string {
	t.Helper()
	r := []string{"{{LISTEN}}", listen}
	for i, n := range nodes {
		r = append(r, fmt.Sprintf("{{NODE%d}}", i+1), n)
	}
	conf := strings.NewReplacer(r...).Replace(readFile(t, filepath.Join("deploy/nginx", file)))
	if left := regexp.MustCompile(`\{\{[A-Z0-9_]+\}\}`).FindString(conf); left != "" {
		t.Fatalf("%s: placeholder %s left after rendering", file, left)
	}
	return conf
}

// nginxMain writes the main nginx.conf around a rendered Herald file, with
// every path inside dir (the package's defaults under /var are not ours).
func nginxMain(t *testing.T, dir, heraldConf string) string {
	t.Helper()
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, "tmp", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "herald.conf"), []byte(heraldConf), 0o644); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must reach the test's private temp dir
	}
	main := fmt.Sprintf(`%s
worker_processes 1;
events { worker_connections 512; }
http {
    log_format upstream '$remote_addr "$request" $status upstream=$upstream_addr rid=$http_x_request_id';
    access_log %[2]s/access.log upstream;
    client_body_temp_path %[2]s/tmp/client_body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    include %[2]s/herald.conf;
}
`, user, dir)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func nginxArgs(dir, conf string, extra ...string) []string {
	return append(extra, "-p", dir, "-c", conf, "-e", "stderr",
		"-g", fmt.Sprintf("daemon off; pid %s/nginx.pid; error_log stderr notice;", dir))
}

// nginxPortAttempts is how many free ports startNginx tries: nginx
// cannot bind port 0 and name it, so it gets a port that was free a
// moment ago, which another process may bind first.
const nginxPortAttempts = 5

// startNginx checks the configuration with nginx -t, then runs nginx in the
// foreground in front of nodes and waits until it proxies /healthz. When
// another process took the port picked for it, nginx fails to bind and
// exits, and it is started again on another port; until then, whatever
// answers on its port is not taken for it (the master process must hold
// the listening socket).
func startNginx(t *testing.T, bin, file string, nodes ...string) *nginxProc {
	t.Helper()
	return startNginxOn(t, func() string { return freeAddr(t) }, bin, file, nodes...)
}

// startNginxOn is startNginx on addresses from next.
func startNginxOn(t *testing.T, next func() string, bin, file string, nodes ...string) *nginxProc {
	t.Helper()
	for range nginxPortAttempts {
		if ng := tryNginx(t, bin, file, next(), nodes...); ng != nil {
			return ng
		}
	}
	t.Fatalf("nginx (%s) found its port taken %d times", file, nginxPortAttempts)
	return nil
}

// tryNginx is startNginx on addr; it returns nil when nginx could not
// bind addr.
func tryNginx(t *testing.T, bin, file, addr string, nodes ...string) *nginxProc {
	t.Helper()
	dir := t.TempDir()
	ng := &nginxProc{addr: addr, dir: dir, logs: &syncBuffer{}}
	conf := nginxMain(t, dir, renderNginx(t, file, ng.addr, nodes...))
	if out, err := exec.Command(bin, nginxArgs(dir, conf, "-t")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t %s: %v\n%s", file, err, out)
	}
	cmd := exec.Command(bin, nginxArgs(dir, conf)...)
	cmd.Stdout, cmd.Stderr = ng.logs, ng.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // fast shutdown; the workers follow the master
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			access, _ := os.ReadFile(filepath.Join(dir, "access.log"))
			t.Logf("nginx (%s) error log:\n%s\naccess log:\n%s", file, ng.logs.String(), access)
		}
	})
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	bound := false
	waitFor(t, 10*time.Second, "nginx proxying /healthz", func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		if !bound {
			ok, err := portowner.Listens(cmd.Process.Pid, port)
			if bound = ok || errors.Is(err, errors.ErrUnsupported); !bound {
				return false
			}
		}
		resp, err := http.Get("http://" + ng.addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	select {
	case <-exited:
		if strings.Contains(ng.logs.String(), "Address already in use") {
			t.Logf("nginx could not bind %s; trying another port", addr)
			return nil
		}
		t.Fatalf("nginx exited:\n%s", ng.logs.String())
	default:
	}
	return ng
}

func (ng *nginxProc) ws() string { return "ws://" + ng.addr + "/ws" }

func (ng *nginxProc) publish(t *testing.T, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+ng.addr+"/api/v1/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish through nginx: %s %s", resp.Status, b)
	}
}

// TestNginxPortTaken: the port picked for nginx is taken, before nginx
// binds it, by a server that answers /healthz too. nginx, failing to
// bind, is started on another port, and the helper never takes the other
// server's answer for nginx's.
func TestNginxPortTaken(t *testing.T) {
	ngBin := need(t, "nginx", nginxHint, "/usr/sbin/nginx")
	serve := func(body string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))
		t.Cleanup(s.Close)
		return s
	}
	node, taker := serve("node"), serve("taker")
	taken := strings.TrimPrefix(taker.URL, "http://")
	first := true
	ng := startNginxOn(t, func() string {
		if first {
			first = false
			return taken
		}
		return freeAddr(t)
	}, ngBin, "herald-stateless.conf", strings.TrimPrefix(node.URL, "http://"), strings.TrimPrefix(node.URL, "http://"))
	if ng.addr == taken {
		t.Fatalf("nginx taken to be on %s, the other server's port", taken)
	}
	resp, err := http.Get("http://" + ng.addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "node" {
		t.Fatalf("through nginx: %q, want the node's answer", b)
	}
}

// wsClient is a Go client that records events and server_shutdown frames.
type wsClient struct {
	*client.Client
	shutdowns atomic.Int32
	mu        sync.Mutex
	events    map[string]int
}

func (c *wsClient) got(event string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[event]
}

func dialThrough(t *testing.T, url, id string) *wsClient {
	t.Helper()
	c := &wsClient{events: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	c.Client, err = client.Dial(ctx, url, client.WithClientID(id),
		client.WithReconnect(50*time.Millisecond, 500*time.Millisecond),
		client.WithFrameHandler(func(frame []byte) {
			var f struct{ Type string }
			if json.Unmarshal(frame, &f) == nil && f.Type == "server_shutdown" {
				c.shutdowns.Add(1)
			}
		}))
	if err != nil {
		t.Fatalf("dial %s through nginx: %v", id, err)
	}
	c.OnAny(func(e client.Event) {
		c.mu.Lock()
		c.events[e.Event]++
		c.mu.Unlock()
	})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Join(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNginxStateless runs deploy/nginx/herald-stateless.conf in front of
// two Herald nodes sharing Redis: round robin spreads clients over both, a
// broadcast reaches all, and when one node drains its clients are told,
// come back through nginx to the other node, resume their sessions and
// keep receiving, while the drained node exits 0.
func TestNginxStateless(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx, redis-server and two herald processes")
	}
	t.Parallel()
	nginx := need(t, "nginx", nginxHint, "/usr/sbin/nginx")
	bin, _ := buildHerald(t)
	redis := testserver.StartRedis(t)
	n1 := startHeraldNode(t, bin, "n1", redis.URL())
	n2 := startHeraldNode(t, bin, "n2", redis.URL())
	ng := startNginx(t, nginx, "herald-stateless.conf", n1.addr, n2.addr)

	const clients = 6
	var cs []*wsClient
	for i := range clients {
		cs = append(cs, dialThrough(t, ng.ws(), fmt.Sprintf("user-%d", i)))
	}
	on1, on2 := n1.connections(t), n2.connections(t)
	if on1 == 0 || on2 == 0 || on1+on2 != clients {
		t.Fatalf("round robin should spread %d clients over both nodes: n1 has %d, n2 has %d", clients, on1, on2)
	}

	ng.publish(t, `{"room":"news","event":"before","data":1}`)
	for i, c := range cs {
		waitFor(t, 5*time.Second, fmt.Sprintf("client %d got the broadcast", i), func() bool { return c.got("before") == 1 })
	}

	// Drain n1.
	if err := n1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n1.exited:
	case <-time.After(3*time.Second + 10*time.Second):
		t.Fatal("n1 did not exit within its drain timeout (3s) + 10s")
	}
	if n1.err != nil {
		t.Fatalf("n1 exited with %v, want 0", n1.err)
	}
	var told []*wsClient
	for _, c := range cs {
		if c.shutdowns.Load() > 0 {
			told = append(told, c)
		}
	}
	if len(told) != on1 {
		t.Fatalf("%d clients got server_shutdown, but n1 had %d", len(told), on1)
	}
	waitFor(t, 10*time.Second, "every client connected to n2", func() bool {
		for _, c := range cs {
			if c.State() != client.Connected {
				return false
			}
		}
		return n2.connections(t) == clients
	})
	for i, c := range told {
		if !c.Resumed() {
			t.Errorf("drained client %d did not resume its session on n2", i)
		}
	}

	ng.publish(t, `{"room":"news","event":"after","data":2}`)
	for i, c := range cs {
		waitFor(t, 5*time.Second, fmt.Sprintf("client %d got the broadcast after the drain", i), func() bool { return c.got("after") == 1 })
	}
	if t.Failed() {
		return
	}

	// nginx forwards X-Request-ID (Herald's correlation id, echoed on the
	// upgrade response) and makes one when the client sends none.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, sent := range []string{"deploy-test-rid", ""} {
		h := http.Header{}
		if sent != "" {
			h.Set("X-Request-ID", sent)
		}
		conn, resp, err := websocket.Dial(ctx, ng.ws()+"?clientId=rid", &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Header.Get("X-Request-ID")
		conn.Close(websocket.StatusNormalClosure, "")
		if sent != "" && got != sent || got == "" {
			t.Errorf("sent X-Request-ID %q, upgrade response has %q", sent, got)
		}
	}
}

// dialFrom attempts an upgrade to url from the local address src (any
// 127/8 address is the loopback) with a forged X-Forwarded-For, and
// returns the HTTP status (101 when it succeeded; the connection stays
// open until the test ends).
func dialFrom(t *testing.T, url, src, forged string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: hc,
		HTTPHeader: http.Header{"X-Forwarded-For": {forged}, "X-Client-Id": {"spoofer"}},
	})
	if err == nil {
		t.Cleanup(func() { _ = c.CloseNow() })
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial %s from %s: %v", url, src, err)
	}
	return resp.StatusCode
}

// TestNginxForwardedForSpoof is the attack on per-IP limits through the
// shipped nginx file and around it: a client forges a new X-Forwarded-For
// on every upgrade, through nginx (which must not pass the client's header
// on) and directly to the node (which must not believe a peer that is not
// a trusted proxy). The node trusts nginx's address only, and allows two
// connections per client address: the third is refused both ways.
func TestNginxForwardedForSpoof(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx, redis-server and a herald process")
	}
	t.Parallel()
	nginx := need(t, "nginx", nginxHint, "/usr/sbin/nginx")
	bin, _ := buildHerald(t)
	redis := testserver.StartRedis(t)
	// nginx reaches the node from 127.0.0.1; the attacker comes from
	// 127.0.0.2 (through nginx) and 127.0.0.3 (directly).
	n := startHeraldNode(t, bin, "xff", redis.URL(), "--trusted-proxies", "127.0.0.1/32", "--max-conns-per-ip", "2")
	ng := startNginx(t, nginx, "herald-stateless.conf", n.addr, n.addr)
	for _, way := range []struct{ name, url, src string }{
		{"through nginx", ng.ws(), "127.0.0.2"},
		{"directly", "ws://" + n.addr + "/ws", "127.0.0.3"},
	} {
		for i := range 3 {
			// Each upgrade claims another client, and claims to have come
			// through the trusted proxy, as a client that knows the setup would.
			forged := fmt.Sprintf("203.0.113.%d, 127.0.0.1", i+1)
			want := http.StatusSwitchingProtocols
			if i == 2 {
				want = http.StatusTooManyRequests
			}
			if code := dialFrom(t, way.url, way.src, forged); code != want {
				t.Fatalf("%s, upgrade %d with X-Forwarded-For %q: %d, want %d", way.name, i+1, forged, code, want)
			}
		}
	}
	if got := n.connections(t); got != 4 {
		t.Fatalf("node holds %d connections, want 4 (two per attacking address)", got)
	}
}

// TestNginxSticky checks herald-sticky.conf: nginx accepts it, proxies
// WebSockets and the API, and ip_hash keeps one client address on one node.
func TestNginxSticky(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nginx, redis-server and two herald processes")
	}
	t.Parallel()
	nginx := need(t, "nginx", nginxHint, "/usr/sbin/nginx")
	bin, _ := buildHerald(t)
	redis := testserver.StartRedis(t)
	n1 := startHeraldNode(t, bin, "s1", redis.URL())
	n2 := startHeraldNode(t, bin, "s2", redis.URL())
	ng := startNginx(t, nginx, "herald-sticky.conf", n1.addr, n2.addr)

	a := dialThrough(t, ng.ws(), "sticky-a")
	b := dialThrough(t, ng.ws(), "sticky-b")
	ng.publish(t, `{"room":"news","event":"hello","data":1}`)
	for _, c := range []*wsClient{a, b} {
		waitFor(t, 5*time.Second, "sticky client got the broadcast", func() bool { return c.got("hello") == 1 })
	}
	if on1, on2 := n1.connections(t), n2.connections(t); on1 != 2 && on2 != 2 {
		t.Fatalf("ip_hash should put both clients from 127.0.0.1 on one node: s1 has %d, s2 has %d", on1, on2)
	}
}

// TestNginxConfigs checks what a short test cannot observe: both files
// keep the WebSocket essentials, and the read timeout outlasts a heartbeat.
func TestNginxConfigs(t *testing.T) {
	t.Parallel()
	minRead := herald.DefaultHeartbeatInterval + herald.DefaultHeartbeatTimeout
	for _, file := range []string{"herald-stateless.conf", "herald-sticky.conf"} {
		t.Run(file, func(t *testing.T) {
			t.Parallel()
			conf := readFile(t, filepath.Join("deploy/nginx", file))
			for _, want := range []string{
				"proxy_http_version 1.1;",
				"proxy_set_header Upgrade $http_upgrade;",
				"proxy_set_header Connection $connection_upgrade;",
				"map $http_upgrade $connection_upgrade",
				"proxy_set_header X-Request-ID",
				"proxy_set_header X-Forwarded-For $remote_addr;",
				"proxy_buffering off;",
				"proxy_send_timeout",
				"http_503",
			} {
				if !strings.Contains(conf, want) {
					t.Errorf("missing %q", want)
				}
			}
			if sticky := strings.Contains(conf, "\n    ip_hash;"); sticky != strings.Contains(file, "sticky") {
				t.Errorf("ip_hash present = %v", sticky)
			}
			ws := conf[strings.Index(conf, "location = /ws"):]
			ws = ws[:strings.Index(ws, "}")]
			m := regexp.MustCompile(`proxy_read_timeout (\d+)s;`).FindStringSubmatch(ws)
			if m == nil {
				t.Fatal("no proxy_read_timeout in seconds in location = /ws")
			}
			if d, _ := time.ParseDuration(m[1] + "s"); d <= minRead {
				t.Errorf("proxy_read_timeout %s must exceed heartbeat interval + timeout (%s)", d, minRead)
			}
		})
	}
}
