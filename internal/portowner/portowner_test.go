package portowner

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// TestListens: this process holds its own listener's port, not a port
// it only connected from; a child process holds neither.
func TestListens(t *testing.T) {
	if runtime.GOOS != "linux" {
		if _, err := Listens(os.Getpid(), 1); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("Listens on %s: %v, want ErrUnsupported", runtime.GOOS, err)
		}
		t.Skip("only Linux says which process holds a socket")
	}
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "tcp6" {
				addr = "[::1]:0"
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("no %s loopback: %v", network, err)
			}
			defer ln.Close()
			port := ln.Addr().(*net.TCPAddr).Port
			c, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			clientPort := c.LocalAddr().(*net.TCPAddr).Port

			if ok, err := Listens(os.Getpid(), port); !ok || err != nil {
				t.Errorf("Listens(self, listener's port %d) = %v, %v; want true", port, ok, err)
			}
			if ok, err := Listens(os.Getpid(), clientPort); ok || err != nil {
				t.Errorf("Listens(self, connected port %d) = %v, %v; want false", clientPort, ok, err)
			}
			child := exec.Command("sleep", "30")
			if err := child.Start(); err != nil {
				t.Skip(err)
			}
			defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
			if ok, err := Listens(child.Process.Pid, port); ok || err != nil {
				t.Errorf("Listens(child, port %d) = %v, %v; want false", port, ok, err)
			}
		})
	}
}
