// Package herald is a production WebSocket server as a Go library: an
// http.Handler to mount next to an application's own routes, with rooms,
// direct-to-user delivery, heartbeats that terminate dead connections,
// bounded send queues, correlation ids on every log line, Prometheus
// metrics, a server-side publish API and a graceful drain.
//
// The moving parts sit behind small interfaces so they can be swapped
// without touching the rest: a broker.Broker carries messages between nodes
// (memory by default), a session.Store keeps resumable sessions (memory by
// default) and an auth.Authenticator decides who connects (anonymous by
// default).
//
// Inside, a core (identity and permissions, rooms and fan-out, acks,
// limits, sessions and recovery, drain, hooks, metrics) serves clients
// through protocol adapters that it knows only by a small interface, a
// connection's link: protocol v1 (Herald's JSON over a WebSocket) is one
// adapter. adapter.go describes the seam, how v1 is plugged into it and
// where another protocol goes.
//
// A Server starts goroutines in New; call Shutdown to drain clients and stop
// them. All methods are safe for concurrent use.
package herald
