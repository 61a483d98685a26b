package testserver

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRedisKillRestart(t *testing.T) {
	t.Parallel()
	r := StartRedis(t)
	if _, err := command(r.Addr(), "PING"); err != nil {
		t.Fatal(err)
	}
	r.Kill()
	if _, err := command(r.Addr(), "PING"); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	r.Restart()
	if got, err := command(r.Addr(), "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after Restart = %q, %v", got, err)
	}
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := StartRedisCluster(t)
	if len(c.Addrs()) != 3 {
		t.Fatalf("got %d nodes", len(c.Addrs()))
	}
	for _, a := range c.Addrs() {
		if _, err := command(a, "CLUSTER", "INFO"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNATSShutdownRestart(t *testing.T) {
	t.Parallel()
	n := StartNATS(t)
	if err := natsGreets(n.Addr()); err != nil {
		t.Fatal(err)
	}
	n.Shutdown()
	// A refused dial is not required: once the port is free, another
	// test process may listen on it. Nothing there may speak NATS.
	if natsGreets(n.Addr()) == nil {
		t.Fatal("a NATS server still answers after Shutdown")
	}
	n.Restart()
	if err := natsGreets(n.Addr()); err != nil {
		t.Fatal(err)
	}
}

// natsGreets returns nil when a NATS server answers at addr: it sends
// INFO as soon as a client connects.
func natsGreets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != "INFO " {
		return fmt.Errorf("%s greets with %q, not INFO", addr, b)
	}
	return nil
}

// listenTaken holds a loopback port, as another process would, until the
// test ends or release is called.
func listenTaken(t *testing.T) (port int, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { ln.Close() }) }
	t.Cleanup(release)
	return ln.Addr().(*net.TCPAddr).Port, release
}

// portsFrom returns first, then free ports.
func portsFrom(t *testing.T, first ...int) func() int {
	return func() int {
		if len(first) > 0 {
			p := first[0]
			first = first[1:]
			return p
		}
		return freePort(t)
	}
}

// pidAt is the process_id of the Redis answering at addr.
func pidAt(t *testing.T, addr string) string {
	t.Helper()
	info, err := command(addr, "INFO", "server")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return v
		}
	}
	t.Fatalf("no process_id from %s", addr)
	return ""
}

// TestRedisPortTakenFirst: the free port picked for a Redis is taken
// before it binds it, by a listener or by another test's Redis; the
// start moves to another port, and never takes the other Redis for its
// own.
func TestRedisPortTakenFirst(t *testing.T) {
	t.Parallel()
	other := StartRedis(t)
	for _, tt := range []struct {
		name  string
		taken func(t *testing.T) int
	}{
		{name: "listener", taken: func(t *testing.T) int { p, _ := listenTaken(t); return p }},
		{name: "another redis", taken: func(*testing.T) int { return other.port }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			taken := tt.taken(t)
			r := startRedis(t, portsFrom(t, taken, taken), nil)
			if r.port == taken {
				t.Fatalf("started on the taken port %d", taken)
			}
			if got, want := pidAt(t, r.Addr()), strconv.Itoa(r.cmd.Process.Pid); got != want {
				t.Fatalf("%s answered by process %s, not the one started (%s)", r.Addr(), got, want)
			}
		})
	}
}

// TestRestartWaitsForPort: a server restarts on its own port (its
// clients reconnect there) even if something held it for a moment.
func TestRestartWaitsForPort(t *testing.T) {
	t.Parallel()
	hold := func(t *testing.T, port int) {
		t.Helper()
		ln, err := net.Listen("tcp", hostPort(port))
		if err != nil {
			t.Fatalf("hold port %d: %v", port, err)
		}
		time.AfterFunc(300*time.Millisecond, func() { ln.Close() })
	}
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		r := StartRedis(t)
		r.Kill()
		hold(t, r.port)
		r.Restart()
		if got, want := pidAt(t, r.Addr()), strconv.Itoa(r.cmd.Process.Pid); got != want {
			t.Fatalf("%s answered by process %s after Restart, not %s", r.Addr(), got, want)
		}
	})
	t.Run("nats", func(t *testing.T) {
		t.Parallel()
		n := StartNATS(t)
		n.Shutdown()
		hold(t, n.opts.Port)
		start := time.Now()
		n.Restart()
		if err := natsGreets(n.Addr()); err != nil {
			t.Fatal(err)
		}
		// Not the start timeout: the failed bind is seen at once.
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("Restart took %v with the port held for 300ms", took)
		}
	})
}
