package rolling

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heraldrt/herald/deploy"
	"github.com/heraldrt/herald/internal/portowner"
)

// tailBuffer keeps the last bytes a process wrote, for error messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 16 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > tailSize {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// proc is one child process; wait for it with exited.
type proc struct {
	name   string
	cmd    *exec.Cmd
	logs   *tailBuffer
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

func startProc(name, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, logs: &tailBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	return p, nil
}

// signal sends sig and waits at most timeout for the process to exit;
// it reports whether it did.
func (p *proc) signal(sig syscall.Signal, timeout time.Duration) bool {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// kill ends the process for good.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// portAttempts is how many free ports a server is started on before the
// run gives up: each is free when picked, but another process (a test
// run at the same time, an outgoing connection's ephemeral port) may
// bind it before the server does.
const portAttempts = 5

// errPortTaken is returned (wrapped) when a server exited because its
// port was taken.
var errPortTaken = errors.New("rolling: port taken")

// waitServing waits until p listens on addr and then ready (nil: at
// once) reports nil. Until p holds the listening socket, whatever answers
// on addr may be another process that took the port first while p fails
// to bind it and exits: where the system says who holds the socket
// (Linux), p must. A p that exits saying its address is in use gives
// errPortTaken at once.
func waitServing(ctx context.Context, p *proc, addr string, timeout time.Duration, ready func() error) error {
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	bound := false
	err := poll(ctx, timeout, p.name+" serving on "+addr, func() error {
		if !p.running() {
			return nil // told apart below
		}
		if !bound {
			ok, err := portowner.Listens(p.cmd.Process.Pid, port)
			if bound = ok || errors.Is(err, errors.ErrUnsupported); !bound {
				return fmt.Errorf("%s does not hold %s yet (%v)", p.name, addr, err)
			}
		}
		if ready == nil {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err
		}
		return ready()
	})
	if !p.running() {
		if l := strings.ToLower(p.logs.String()); strings.Contains(l, "address already in use") {
			return fmt.Errorf("%w: %s could not bind %s", errPortTaken, p.name, addr)
		}
		return fmt.Errorf("%s exited (%v): %s", p.name, p.err, p.logs)
	}
	return err
}

// startServing starts a server on a free address, with the arguments
// args gives for it, and waits until it serves (waitServing); one that
// found its port taken is started again on another.
func startServing(ctx context.Context, name, bin string, timeout time.Duration, args func(addr string) []string, ready func(addr string) func() error) (*proc, string, error) {
	for range portAttempts {
		addr, err := freeAddr()
		if err != nil {
			return nil, "", err
		}
		p, err := startProc(name, bin, args(addr)...)
		if err != nil {
			return nil, "", err
		}
		var r func() error
		if ready != nil {
			r = ready(addr)
		}
		if err = waitServing(ctx, p, addr, timeout, r); err == nil {
			return p, addr, nil
		}
		if p.running() {
			p.kill()
		}
		if !errors.Is(err, errPortTaken) {
			return nil, "", err
		}
	}
	return nil, "", fmt.Errorf("rolling: %s found its port taken %d times", name, portAttempts)
}

// poll calls cond until it returns nil or timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startRedis runs redis-server on a free port without persistence.
func startRedis(ctx context.Context, bin string) (*proc, string, error) {
	return startServing(ctx, "redis", bin, 10*time.Second, func(addr string) []string {
		_, port, _ := net.SplitHostPort(addr)
		return []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
	}, nil)
}

// node is one `herald serve` process on a fixed address, which a
// restart keeps.
type node struct {
	name, addr string
	args       func(addr string) []string
	bin        string
	p          *proc
}

// startFirst starts the node on a free address, and on another when
// another process took the port first.
func (n *node) startFirst(ctx context.Context) error {
	p, addr, err := startServing(ctx, n.name, n.bin, 20*time.Second, n.args, n.readyz)
	if err != nil {
		return err
	}
	n.p, n.addr = p, addr
	return nil
}

// start starts the node again on its address: the proxy in front sends
// to that one. Another process (an outgoing connection's ephemeral
// port) may hold the port a moment; the start is tried again then.
func (n *node) start(ctx context.Context) error {
	var err error
	for range portAttempts {
		p, serr := startProc(n.name, n.bin, n.args(n.addr)...)
		if serr != nil {
			return serr
		}
		n.p = p
		if err = waitServing(ctx, p, n.addr, 20*time.Second, n.readyz(n.addr)); !errors.Is(err, errPortTaken) {
			return err
		}
		time.Sleep(time.Second)
	}
	return err
}

// readyz is the node's readiness check at addr.
func (n *node) readyz(addr string) func() error {
	return func() error {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz %s", resp.Status)
		}
		return nil
	}
}

// nginx runs deploy/nginx/herald-stateless.conf in front of nodes.
type nginx struct {
	addr, dir string
	p         *proc
}

// renderNginx fills in the stateless configuration: one server line per
// node, built from the file's first one.
func renderNginx(listen string, nodes []string) (string, error) {
	b, err := fs.ReadFile(deploy.Nginx, "nginx/herald-stateless.conf")
	if err != nil {
		return "", err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(line, "{{NODE1}}"):
			for _, n := range nodes {
				out = append(out, strings.Replace(line, "{{NODE1}}", n, 1))
			}
		case strings.Contains(line, "{{NODE"):
		default:
			out = append(out, strings.ReplaceAll(line, "{{LISTEN}}", listen))
		}
	}
	return strings.Join(out, "\n"), nil
}

// startNginx runs nginx in front of nodes on a free port, and on another
// when another process took the port first (nginx cannot bind port 0
// and say which it got).
func startNginx(ctx context.Context, bin, dir string, nodes []string) (*nginx, error) {
	for range portAttempts {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		ng, err := tryNginx(ctx, bin, dir, addr, nodes)
		if !errors.Is(err, errPortTaken) {
			return ng, err
		}
	}
	return nil, fmt.Errorf("rolling: nginx found its port taken %d times", portAttempts)
}

// tryNginx is startNginx on addr.
func tryNginx(ctx context.Context, bin, dir, addr string, nodes []string) (*nginx, error) {
	conf, err := renderNginx(addr, nodes)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		if err := os.MkdirAll(filepath.Join(dir, "tmp", d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "herald.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must reach the private temp dir
	}
	main := fmt.Sprintf(`%s
worker_processes 1;
events { worker_connections 4096; }
http {
    access_log off;
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
		return nil, err
	}
	args := []string{"-p", dir, "-c", path, "-e", "stderr",
		"-g", fmt.Sprintf("daemon off; pid %s/nginx.pid; error_log stderr error;", dir)}
	if out, err := exec.Command(bin, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nginx -t: %v\n%s", err, bytes.TrimSpace(out))
	}
	p, err := startProc("nginx", bin, args...)
	if err != nil {
		return nil, err
	}
	ng := &nginx{addr: addr, dir: dir, p: p}
	err = waitServing(ctx, p, addr, 10*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	if err != nil {
		if p.running() {
			p.kill()
		}
		return nil, err
	}
	return ng, nil
}

func (ng *nginx) stop() {
	if !ng.p.signal(syscall.SIGTERM, 5*time.Second) {
		ng.p.kill()
	}
}
