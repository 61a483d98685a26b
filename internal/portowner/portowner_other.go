//go:build !linux

package portowner

import "errors"

// Listens reports errors.ErrUnsupported: only Linux says which process
// holds a socket (/proc). Callers fall back to what they did before.
func Listens(pid, port int) (bool, error) { return false, errors.ErrUnsupported }
