// Package admin is Herald's admin console: a single-page application
// embedded in the binary (no external assets), served at /admin/, and the
// JSON API under /admin/api/ that it and scripts use.
//
// It owns two parts:
//
//   - Responder, present on every node, answers the console's questions
//     about this node (stats, connections, rooms) and carries out its
//     node-local actions (disconnect a connection, drain). Questions and
//     answers travel as broker control messages (broker.ControlAdminQuery,
//     broker.ControlAdminReply), so the console on one node sees every node.
//   - Console, on nodes started with the console enabled, signs admins in
//     (its own credential, a session cookie, CSRF tokens, rate-limited
//     failures), asks the cluster through the engine only while a console
//     or script asks it, and serves the page.
//
// Nothing runs while nobody uses the console: no goroutine, no timer, no
// control message. The node the console is served from caches the
// cluster's answers for a second, so that many open consoles cost the
// cluster what one costs.
//
// Concurrency: a Responder answers each question on a goroutine of its
// own, at most maxAnswering at once (more are dropped; the asker sees the
// node as not answering), and Close waits for them. Console handlers run
// on the HTTP server's goroutines; a tail's stream ends with its request,
// or when the Console is closed.
package admin
