package suite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heraldrt/herald/bench/loadgen"
	"github.com/heraldrt/herald/internal/portowner"
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

// portAttempts is how many free ports a server is started on before the
// suite gives up: each is free when picked, but another process (a test
// run at the same time, an outgoing connection's ephemeral port) may
// bind it before the server does.
const portAttempts = 5

// errPortTaken is returned (wrapped) by waitListening when the server
// exited because its port was taken.
var errPortTaken = errors.New("suite: port taken")

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startListening starts a server (name, bin) that listens on a TCP port
// picked free, with the environment and arguments command gives for the
// port, and waits until it listens there. A server that exits because
// another process took the port first is started again on another one.
func (r *runner) startListening(ctx context.Context, name, bin string, command func(port int) (env, args []string, err error)) (*process, int, error) {
	pick := r.freePort
	if pick == nil {
		pick = freePort
	}
	for attempt := range portAttempts {
		port, err := pick()
		if err != nil {
			return nil, 0, err
		}
		env, args, err := command(port)
		if err != nil {
			return nil, 0, err
		}
		pname := name
		if attempt > 0 {
			pname = fmt.Sprintf("%s-port%d", name, attempt+1)
		}
		p, err := r.startProcess(ctx, pname, env, bin, args...)
		if err != nil {
			return nil, 0, err
		}
		err = waitListening(ctx, p, port)
		if err == nil {
			return p, port, nil
		}
		p.stop(3 * time.Second)
		if !errors.Is(err, errPortTaken) {
			return nil, 0, err
		}
		r.logf("%v; trying another port", err)
	}
	return nil, 0, fmt.Errorf("suite: %s found its port taken %d times", name, portAttempts)
}

// waitListening waits until process p listens on port. Until it does, a
// process found answering there may be another one (which took the port
// first, while p fails to bind it and exits): where the system says who
// holds the listening socket (Linux), p must. A p that exits saying its
// address is in use gives errPortTaken.
func waitListening(ctx context.Context, p *process, port int) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			log, _ := os.ReadFile(p.log.Name())
			if l := strings.ToLower(string(log)); strings.Contains(l, "address already in use") || strings.Contains(l, "eaddrinuse") {
				return fmt.Errorf("%w: %s could not bind %s", errPortTaken, p.name, addr)
			}
			return fmt.Errorf("suite: %s exited: %v (see %s)", p.name, p.waitErr, p.log.Name())
		default:
		}
		ok, err := portowner.Listens(p.pid(), port)
		if errors.Is(err, errors.ErrUnsupported) {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				ok = true
			}
		}
		if ok {
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
		var port int
		d.redis, port, err = r.startListening(ctx, fmt.Sprintf("%s-redis-%d", target, r.seq()), r.opts.RedisBin, func(port int) ([]string, []string, error) {
			return nil, []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, nil
		})
		if err != nil {
			return nil, err
		}
		redisURL = "redis://127.0.0.1:" + strconv.Itoa(port) + "/0"
	}
	for i := 0; i < max(1, c.nodes); i++ {
		name := fmt.Sprintf("%s-node%d-%d", target, i, r.seq())
		var bin string
		var command func(port int) (env, args []string, err error)
		switch {
		case isHerald(target):
			bin = r.opts.HeraldBin
			if target == TargetHeraldBase {
				bin = r.opts.BaseBin
			}
			command = func(port int) ([]string, []string, error) {
				args := heraldArgs(target, "127.0.0.1:"+strconv.Itoa(port), i)
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
				return env, args, nil
			}
		case target == TargetFloor:
			bin = r.opts.HeraldBin
			command = func(port int) ([]string, []string, error) {
				args := []string{"bench", "floor", "--addr", "127.0.0.1:" + strconv.Itoa(port)}
				if c.jwt {
					args = append(args, "--jwt-secret", jwtSecret)
				}
				return nil, args, nil
			}
		default:
			script := "ws-server.js"
			if target == TargetSocketIO {
				script = "socketio-server.js"
			}
			bin = r.opts.NodeBin
			command = func(port int) ([]string, []string, error) {
				env := []string{"PORT=" + strconv.Itoa(port), "HOST=127.0.0.1"}
				if c.jwt {
					env = append(env, "JWT_SECRET="+jwtSecret)
				}
				if redisURL != "" {
					env = append(env, "REDIS_URL="+redisURL)
				}
				return env, []string{filepath.Join(r.opts.PeersDir, script)}, nil
			}
		}
		p, port, err := r.startListening(ctx, name, bin, command)
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		d.nodes = append(d.nodes, p)
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
