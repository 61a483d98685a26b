//go:build !linux

package transport

import (
	"errors"
)

// iovecScratch is unused off Linux.
type iovecScratch struct{}

var errWouldBlock = errors.New("transport: socket buffer full")

func writeNonBlocking(int32, [][]byte, *iovecScratch) ([][]byte, int, error) {
	return nil, 0, errors.ErrUnsupported
}
