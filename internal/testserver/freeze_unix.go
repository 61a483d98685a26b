//go:build unix

package testserver

import "syscall"

// Freeze stops the server with SIGSTOP: its connections stay open and
// nothing answers, as when Redis stalls (a long command, a paused VM).
// Thaw resumes it; Kill also ends a frozen server.
func (r *Redis) Freeze() { r.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (r *Redis) Thaw() { r.signal(syscall.SIGCONT) }
