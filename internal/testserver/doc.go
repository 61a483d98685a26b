// Package testserver starts real backends for tests: redis-server processes
// (standalone or a three-master Redis Cluster) and an embedded nats-server,
// each on a free loopback port, so that a test can kill and restart them on
// the same port to exercise reconnects.
//
// A port picked free may be taken before the server binds it (parallel
// test packages, an outgoing connection's ephemeral port). A redis-server
// that cannot bind it exits saying so, and is started again on another
// port; until it answers, a server found on its port is checked to be
// this process (INFO's process_id), never another test's. The NATS
// server picks its own port at the first start. A restart keeps the port
// and retries until it is free again.
//
// Every helper takes a testing.TB, registers its own cleanup with t.Cleanup
// and is safe to call from parallel tests. When the redis-server or
// redis-cli binary is missing, tests are skipped with an install hint, or
// fail with it when the CI environment variable is set.
//
// The Kill/Restart/Shutdown methods of one server are safe for concurrent use
// but are meant to be called from the test goroutine.
package testserver
