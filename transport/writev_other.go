//go:build !linux

package transport

import (
	"errors"
	"net"
	"syscall"
)

// iovecScratch is unused off Linux.
type iovecScratch struct{}

var errWouldBlock = errors.New("transport: socket buffer full")

// rawConn returns nil off Linux: every write goes through a blocking
// short-lived writer goroutine per batch.
func rawConn(net.Conn) syscall.RawConn { return nil }

func writeNonBlocking(int32, [][]byte, *iovecScratch) ([][]byte, int, error) {
	return nil, 0, errors.ErrUnsupported
}

// shutdownSocket is never called off Linux: rawConn is nil there.
func shutdownSocket(syscall.RawConn) {}
