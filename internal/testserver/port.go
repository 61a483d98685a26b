package testserver

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// installHint is what a missing Redis binary tells the reader.
const installHint = "apt-get install -y redis-server"

// portAttempts is how many free ports a server is started on before the
// test gives up: each is free when picked, but another process (a
// parallel test package, an outgoing connection's ephemeral port) may
// bind it before the server does.
const portAttempts = 5

// errPortTaken is returned (wrapped) by a start that found its port
// taken, so that a first start can move to another one.
var errPortTaken = errors.New("testserver: port taken")

// freePort returns a loopback TCP port that was free a moment ago. It may
// be taken before the server binds it: starts that can pick their port
// retry on another (startOnFreePort), restarts on the same port retry
// until it is free again.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testserver: free port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatalf("testserver: free port: %v", err)
	}
	return port
}

// startOnFreePort calls start with ports from next until one does not
// fail with errPortTaken, at most portAttempts times.
func startOnFreePort(t testing.TB, next func() int, start func(port int) error) {
	t.Helper()
	var err error
	for range portAttempts {
		if err = start(next()); !errors.Is(err, errPortTaken) {
			break
		}
		t.Logf("%v; trying another port", err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func hostPort(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// lookBinary returns the path of name, or skips (fails under CI) with an
// install hint.
func lookBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := name + " not found: " + installHint
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// waitFor polls cond until it reports true or timeout passes; it returns
// the last error from cond.
func waitFor(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
