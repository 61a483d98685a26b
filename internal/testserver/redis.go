package testserver

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 10 * time.Second

// Redis is a redis-server process owned by a test. Its port stays the same
// across Kill and Restart, so clients can reconnect to the same address.
type Redis struct {
	t     testing.TB
	bin   string
	port  int
	extra []string

	dir string // working directory: where SHUTDOWN SAVE writes dump.rdb

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	output *bytes.Buffer
}

// StartRedis starts a standalone redis-server on a free loopback port with
// persistence disabled, waits until it answers PING and kills it when the
// test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return startRedis(t, func() int { return freePort(t) }, nil)
}

// startRedis starts a redis-server on a port from next, with the
// arguments extra gives for that port (nil: none), on another port from
// next when another process took the one picked before it bound it.
func startRedis(t testing.TB, next func() int, extra func(port int) []string) *Redis {
	t.Helper()
	var r *Redis
	startOnFreePort(t, next, func(port int) error {
		var args []string
		if extra != nil {
			args = extra(port)
		}
		r = newRedis(t, port, args)
		return r.start()
	})
	t.Cleanup(r.Kill)
	return r
}

func newRedis(t testing.TB, port int, extra []string) *Redis {
	t.Helper()
	return &Redis{t: t, bin: lookBinary(t, "redis-server"), port: port, extra: extra, dir: t.TempDir()}
}

func (r *Redis) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return fmt.Errorf("testserver: redis on port %d already running", r.port)
	}
	args := append([]string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
	}, r.extra...)
	cmd := exec.Command(r.bin, args...)
	out := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testserver: start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	err := waitFor(startTimeout, func() error {
		select {
		case <-exited:
			return nil
		default:
		}
		return answersAs(r.Addr(), cmd.Process.Pid)
	})
	select {
	case <-exited:
		// The output is complete once the process was waited for.
		if bytes.Contains(out.Bytes(), []byte("Address already in use")) {
			return fmt.Errorf("%w: redis-server could not bind %d", errPortTaken, r.port)
		}
		return fmt.Errorf("testserver: redis-server exited on port %d: %s", r.port, out)
	default:
	}
	if err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("testserver: redis-server on port %d not ready: %v\n%s", r.port, err, out)
	}
	r.cmd, r.exited, r.output = cmd, exited, out
	return nil
}

// answersAs returns nil when the Redis answering at addr is the process
// pid: until the one just started binds its port (or fails to, and
// exits), another server may be there, e.g. another test's.
func answersAs(addr string, pid int) error {
	// Briefly: whatever holds the port may never answer, while the
	// start's loop watches for its own server's exit.
	info, err := commandWithin(200*time.Millisecond, addr, "INFO", "server")
	if err != nil {
		return err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			if v != strconv.Itoa(pid) {
				return fmt.Errorf("testserver: %s is answered by process %s, not %d", addr, v, pid)
			}
			return nil
		}
	}
	return fmt.Errorf("testserver: %s: no process_id in INFO server", addr)
}

// Kill stops the server with SIGKILL, as a crash would, and waits for the
// process to exit. Killing a stopped server does nothing.
func (r *Redis) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.cmd, r.exited = nil, nil
}

func (r *Redis) signal(sig os.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(sig)
	}
}

// Command runs one command and returns its reply if it is a status or an
// integer (EXISTS, DBSIZE, ...).
func (r *Redis) Command(args ...string) (string, error) { return command(r.Addr(), args...) }

// Restart starts the server again on the same port (killing it first if it
// is running) and waits until it answers PING. The data set starts empty.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Kill()
	if err := os.Remove(filepath.Join(r.dir, "dump.rdb")); err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	if err := waitFor(startTimeout, r.start); err != nil {
		r.t.Fatal(err)
	}
}

// RestartFromSnapshot kills the server with SIGKILL, as a crash would,
// and starts it again on the same port with the data set of its last
// snapshot on disk (SAVE, BGSAVE): what was written after it is gone, as
// on a Redis with RDB persistence that crashed. Without a snapshot the
// data set starts empty.
func (r *Redis) RestartFromSnapshot() {
	r.t.Helper()
	r.Kill()
	if err := waitFor(startTimeout, r.start); err != nil {
		r.t.Fatal(err)
	}
}

// RestartWithData stops the server as an operator's restart would
// (SHUTDOWN SAVE: it writes its data set to disk and exits), starts it
// again on the same port with that data set, and waits until it answers
// PING.
func (r *Redis) RestartWithData() {
	r.t.Helper()
	r.mu.Lock()
	exited := r.exited
	r.mu.Unlock()
	if exited == nil {
		r.t.Fatal("testserver: RestartWithData of a stopped redis-server")
	}
	// The connection ends as the server exits, so the reply is an error.
	_, _ = command(r.Addr(), "SHUTDOWN", "SAVE")
	select {
	case <-exited:
	case <-time.After(startTimeout):
		r.t.Fatal("testserver: redis-server did not exit on SHUTDOWN SAVE")
	}
	r.mu.Lock()
	r.cmd, r.exited = nil, nil
	r.mu.Unlock()
	if err := waitFor(startTimeout, r.start); err != nil {
		r.t.Fatal(err)
	}
}

// Addr returns host:port.
func (r *Redis) Addr() string { return hostPort(r.port) }

// URL returns redis://host:port/0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// SubscriberChannels returns, in ascending order, how many channels each
// connection that has subscribed to any holds (CLIENT LIST's sub=).
func (r *Redis) SubscriberChannels() ([]int, error) {
	list, err := command(r.Addr(), "CLIENT", "LIST")
	if err != nil {
		return nil, err
	}
	var subs []int
	for line := range strings.Lines(list) {
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "sub="); ok && v != "0" {
				n, err := strconv.Atoi(v)
				if err != nil {
					return nil, fmt.Errorf("testserver: CLIENT LIST: %q", f)
				}
				subs = append(subs, n)
			}
		}
	}
	slices.Sort(subs)
	return subs, nil
}
