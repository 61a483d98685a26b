//go:build !linux

package floor

import (
	"context"
	"errors"
)

// Serve needs Linux's epoll.
func Serve(ctx context.Context, addr string) error {
	return Run(ctx, Config{Addr: addr})
}

// Run needs Linux's epoll.
func Run(ctx context.Context, cfg Config) error {
	return errors.New("floor: the floor server needs Linux (epoll)")
}
