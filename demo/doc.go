// Package demo serves Herald's browser demo: a small chat page and the
// JavaScript client it runs on (clients/js), embedded in the binary.
//
// The page connects to the same host's /ws in anonymous mode
// (?clientId=<name>), joins a room and publishes "message" events to it, so
// it needs a Herald server mounted at /ws next to Handler. It holds no state
// and starts no goroutines; Handler is safe for concurrent use.
//
// static/herald.js is a copy of clients/js/src/herald.js, refreshed with
// `go generate ./demo`; a test fails when the two differ.
package demo
