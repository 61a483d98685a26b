//go:build !linux

package deploy

import "testing"

// deadAddr returns a loopback address where nothing listens, found free
// (on Linux the port is also held until the test ends).
func deadAddr(t testing.TB) string { return freeAddr(t) }
