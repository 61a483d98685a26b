// Package portowner tells whether a process listens on a TCP port, from
// what the kernel reports (Linux's /proc).
//
// A test or a benchmark that starts a server on a port it picked free
// cannot take "something answers there" for "my server is up": between
// the pick and the bind another process (a parallel test package's
// server, an outgoing connection's ephemeral port) may have taken the
// port, and then that process answers while the one started fails to
// bind and exits. Listens asks the kernel which process holds the
// listening socket instead. It has no goroutines and no state.
package portowner
