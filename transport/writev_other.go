//go:build !linux

package transport

import (
	"errors"
	"net"
)

// iovecScratch is unused off Linux.
type iovecScratch struct {
	raw bool
}

var errWouldBlock = errors.New("transport: socket buffer full")

func writeNonBlocking(int32, [][]byte, *iovecScratch) ([][]byte, int, error) {
	return nil, 0, errors.ErrUnsupported
}

// writeCloseFrame writes the close frame of the close sequence: off
// Linux every connection's writes may block.
func (c *Conn) writeCloseFrame(frame []byte) error {
	return c.writeBlocking(net.Buffers{frame})
}
