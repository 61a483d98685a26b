package suite

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/heraldrt/herald/bench/loadgen"
)

// jwtSecret signs the churn scenario's tokens (HS256 needs 32 bytes).
const jwtSecret = "herald-bench-secret-0123456789abcdef"

// process is one child process the suite started.
type process struct {
	name    string
	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{} // closed once the process has been reaped
	waitErr error         // set before exited is closed
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// stop asks the process to end (SIGINT), then kills it after grace.
func (p *process) stop(grace time.Duration) {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	if p.log != nil {
		_ = p.log.Close()
	}
}

// deployment is a running server under test: one or more nodes and,
// for a cluster, the redis-server they share.
type deployment struct {
	target     string
	kind       loadgen.Kind
	bases      []string // ws://127.0.0.1:PORT per node
	nodes      []*process
	redis      *process
	metricsURL string // Herald's first node
}

func (d *deployment) urls() []string {
	var out []string
	for _, b := range d.bases {
		out = append(out, d.kind.EndpointURL(b))
	}
	return out
}

func (d *deployment) nodePIDs() []int {
	var out []int
	for _, n := range d.nodes {
		out = append(out, n.pid())
	}
	return out
}

// serverPIDs is what "server CPU" sums: every node, and redis.
func (d *deployment) serverPIDs() []int {
	out := d.nodePIDs()
	if d.redis != nil {
		out = append(out, d.redis.pid())
	}
	return out
}

func (d *deployment) stop() {
	for _, n := range d.nodes {
		n.stop(5 * time.Second)
	}
	d.redis.stop(3 * time.Second)
}

// deployConfig selects what a deployment needs.
type deployConfig struct {
	nodes int
	jwt   bool
	procs int // GOMAXPROCS of each Herald node; 0 for Go's default
	// backendURL sends Herald's connect hook to this backend.
	backendURL string
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(ctx context.Context, addr string, p *process) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("suite: %s exited: %v (see %s)", p.name, p.waitErr, p.log.Name())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("suite: %s did not listen on %s within 30 s (see %s)", p.name, addr, p.log.Name())
}

func (r *runner) startProcess(ctx context.Context, name string, env []string, bin string, args ...string) (*process, error) {
	logf, err := os.Create(filepath.Join(r.opts.OutDir, "logs", name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("suite: start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logf, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// deploy starts target with c.nodes nodes (a redis-server too when more
// than one) and waits until every node listens.
func (r *runner) deploy(ctx context.Context, target string, c deployConfig) (*deployment, error) {
	d := &deployment{target: target}
	var err error
	kind := target
	switch {
	case target == TargetFloor:
		kind = TargetWS // speaks the ws peer's protocol
	case target == TargetHeraldSocketIO:
		kind = string(loadgen.KindHeraldSocketIO)
	case isHerald(target):
		kind = TargetHerald
	}
	if d.kind, err = loadgen.ParseKind(kind); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			d.stop()
		}
	}()
	redisURL := ""
	if c.nodes > 1 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		d.redis, err = r.startProcess(ctx, fmt.Sprintf("%s-redis-%d", target, r.seq()), nil, r.opts.RedisBin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if err := waitTCP(ctx, addr, d.redis); err != nil {
			return nil, err
		}
		redisURL = "redis://" + addr + "/0"
	}
	for i := 0; i < max(1, c.nodes); i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		name := fmt.Sprintf("%s-node%d-%d", target, i, r.seq())
		var p *process
		switch {
		case isHerald(target):
			args := heraldArgs(target, addr, i)
			if c.jwt {
				args = append(args, "--jwt-secret", jwtSecret)
			}
			if redisURL != "" {
				args = append(args, "--redis-url", redisURL)
			}
			if c.backendURL != "" {
				args = append(args, "--backend-url", c.backendURL, "--backend-hooks", "connect", "--backend-secret", backendSecret,
					"--backend-max-calls", "256")
			}
			var env []string
			if c.procs > 0 {
				env = []string{"GOMAXPROCS=" + strconv.Itoa(c.procs)}
			}
			bin := r.opts.HeraldBin
			if target == TargetHeraldBase {
				bin = r.opts.BaseBin
			}
			p, err = r.startProcess(ctx, name, env, bin, args...)
		case target == TargetFloor:
			args := []string{"bench", "floor", "--addr", addr}
			if c.jwt {
				args = append(args, "--jwt-secret", jwtSecret)
			}
			p, err = r.startProcess(ctx, name, nil, r.opts.HeraldBin, args...)
		default:
			script := "ws-server.js"
			if target == TargetSocketIO {
				script = "socketio-server.js"
			}
			env := []string{"PORT=" + strconv.Itoa(port), "HOST=127.0.0.1"}
			if c.jwt {
				env = append(env, "JWT_SECRET="+jwtSecret)
			}
			if redisURL != "" {
				env = append(env, "REDIS_URL="+redisURL)
			}
			p, err = r.startProcess(ctx, name, env, r.opts.NodeBin, filepath.Join(r.opts.PeersDir, script))
		}
		if err != nil {
			return nil, err
		}
		d.nodes = append(d.nodes, p)
		if err := waitTCP(ctx, addr, p); err != nil {
			return nil, err
		}
		d.bases = append(d.bases, "ws://"+addr)
		if isHerald(target) && i == 0 {
			d.metricsURL = "http://" + addr + "/metrics"
		}
	}
	ok = true
	return d, nil
}

// heraldArgs is the herald serve command line of node i of target (herald
// or herald-history) listening on addr, before the flags of deployConfig.
func heraldArgs(target, addr string, i int) []string {
	args := []string{"serve", "--addr", addr, "--api-key", "herald-bench-api-key", "--message-rate", "-1",
		"--log-level", "warn", "--log-format", "text", "--node-id", fmt.Sprintf("bench-%d", i)}
	if target == TargetHeraldHistory {
		args = append(args, "--history", HistoryRule)
	}
	return args
}
