// Package floor is the benchmark's floor: about the least a WebSocket
// broadcast server can do on Linux. One epoll loop on one thread, on
// golang.org/x/sys/unix; no goroutine and no buffer per connection while
// idle; each published message framed once and written with one write(2)
// per member, as it arrives (no coalescing). It speaks the subset of
// protocol v1 that the benchmark's ws peer speaks (welcome, join, publish,
// event; no auth, no compression, no heartbeat), so `herald bench` can run
// it side by side with Herald: the CPU per delivery it needs at a low rate
// is what the kernel costs on the machine of the day.
//
// With Config.JWTSecret it is also the handshake floor of the churn
// scenario: each upgrade must carry an HS256 JWT in "Authorization:
// Bearer", verified (signature, alg, exp, nbf, subject) before the 101
// and the welcome go out together in one write; the client's close frame
// is answered and the socket closed. Its CPU per connect is what the
// kernel's TCP connect, accept and close plus one token check cost on the
// machine of the day.
//
// It is a measuring stick, not a server: it trusts its clients (it
// handles only unfragmented frames and closes on anything else) and has no
// limits beyond a per-client backlog.
package floor
