// Package loadgen is the load generator behind `herald bench`: a minimal
// WebSocket client that can bind its connections to chosen loopback source
// addresses, the client side of the scenario protocol spoken by Herald and
// by the reference servers in bench/peers (Herald v1 JSON, or Socket.IO v5
// over Engine.IO v4), subscriber workers that record publish→deliver
// latency and loss, publishers paced at a given rate, and the /proc readers
// that measure a server's memory and CPU.
//
// A worker (RunWorker) holds many subscriber connections and is driven by
// JSON lines on its input; the orchestrator in bench/suite runs workers as
// `herald bench worker` child processes (so that no process holds more than
// a few thousand sockets) or, in tests, as goroutines over pipes. Every
// worker goroutine is owned by RunWorker and ends before it returns.
package loadgen
