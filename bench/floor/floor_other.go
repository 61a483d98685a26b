//go:build !linux

package floor

import (
	"context"
	"errors"
)

// Serve needs Linux's epoll.
func Serve(ctx context.Context, addr string) error {
	return errors.New("floor: the floor server needs Linux (epoll)")
}
