//go:build !unix

package testserver

// Freeze would stop the server as a stall does; it needs Unix job-control
// signals, so elsewhere it fails the test that asks for it.
func (r *Redis) Freeze() { r.t.Fatal("testserver: Freeze needs SIGSTOP (Unix only)") }

// Thaw would resume a frozen server; see Freeze.
func (r *Redis) Thaw() { r.t.Fatal("testserver: Thaw needs SIGCONT (Unix only)") }
