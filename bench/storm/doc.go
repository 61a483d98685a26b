// Package storm holds the client side of the reconnect-storm scenario of
// `herald bench` (bench/suite runs the servers and the storm): worker
// processes (`herald bench storm-worker`) each hold a share of the
// clients, Herald's Go client (package client, resuming its session and
// recovering its room from history) or the load generator's Socket.IO
// client, and count what every client receives; a Publisher sends
// numbered messages to every room throughout.
//
// The clients stand in for a load balancer themselves: client i has an
// order of the nodes (its home node first, then the others, rotated so
// that the clients of one node spread evenly over the rest); its first
// connection goes to its home node, every reconnect to the next node of
// its order, and a node that refuses the TCP connection is skipped at
// once. So when a node goes away its clients land on the others, as
// behind DNS round robin with client-side failover.
//
// Concurrency: RunWorker owns every client and goroutine it starts and
// stops them before it returns; a Publisher's goroutines end with Stop.
package storm
