package deploy

import (
	"net"
	"strconv"
	"syscall"
	"testing"
)

// deadAddr returns a loopback address where nothing listens until the
// test ends: its port is bound by a socket that does not listen
// (connections to it are refused) and that has no SO_REUSEADDR, so no
// other process can bind the port and answer there instead, as one could
// on a port merely found free.
func deadAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// TestDeadAddr: nothing answers at deadAddr's address, and no other
// socket can be bound there to answer (a Go listener sets SO_REUSEADDR,
// nginx and redis-server too).
func TestDeadAddr(t *testing.T) {
	addr := deadAddr(t)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s answered", addr)
	}
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Fatalf("another listener bound %s", addr)
	}
}
