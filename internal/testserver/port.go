package testserver

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// installHint is what a missing Redis binary tells the reader.
const installHint = "apt-get install -y redis-server"

// freePort returns a loopback TCP port that was free a moment ago. The
// usual race (someone else may take it before the server binds) is
// acceptable in tests.
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
