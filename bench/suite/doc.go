// Package suite is the orchestrator behind `herald bench` and `make
// bench-e2e`: it starts each server under test (Herald, and the Node ws and
// Socket.IO reference servers of bench/peers; three nodes and a
// redis-server for the cluster scenario) as child processes, drives them
// with the same loadgen workers and parameters one after the other (churn:
// every target started first and the repetitions interleaved, in an order
// turned each round), repeats each measurement, and writes the
// side-by-side markdown report,
// SVG charts and raw JSON into one results directory.
//
// Everything a Run starts (servers, workers) is stopped before it
// returns.
package suite
