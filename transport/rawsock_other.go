//go:build !linux

package transport

import (
	"errors"
	"net"
)

// rawSocket is Linux only: elsewhere every connection keeps its net.Conn
// and newRawSocket returns nil, so none of these methods runs.
type rawSocket struct {
	net.Conn
	fd int32
}

func newRawSocket(net.Conn) *rawSocket { return nil }

func (*rawSocket) readNow([]byte) (int, error) { return 0, errWouldBlock }
func (*rawSocket) control(func(int)) bool      { return false }
func (*rawSocket) unread() int                 { return 0 }
func (*rawSocket) shutdownBoth() error         { return errors.ErrUnsupported }
func (*rawSocket) writeBuffers([][]byte) (int64, error) {
	return 0, errors.ErrUnsupported
}
