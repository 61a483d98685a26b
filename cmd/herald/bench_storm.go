package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/heraldrt/herald/bench/storm"
	"github.com/heraldrt/herald/bench/suite"
)

// stormFlags adds the storm scenario's flags to fs.
func stormFlags(fs *flag.FlagSet, o *suite.StormOptions) {
	fs.IntVar(&o.Nodes, "storm-nodes", o.Nodes, "storm: nodes on the redis-server; the first is stopped")
	fs.IntVar(&o.Clients, "storm-clients", o.Clients, "storm: clients over all nodes")
	fs.IntVar(&o.Rooms, "storm-rooms", o.Rooms, "storm: rooms the clients are spread over (at most 100)")
	fs.Float64Var(&o.Rate, "storm-rate", o.Rate, "storm: messages published per second over all rooms")
	fs.IntVar(&o.WorkerClients, "storm-worker-clients", o.WorkerClients, "storm: clients per load-generator process")
	fs.DurationVar(&o.Warmup, "storm-warmup", o.Warmup, "storm: publishing before the signal")
	fs.DurationVar(&o.Timeout, "storm-timeout", o.Timeout, "storm: longest wait for the stopped node's clients to be back")
}

// runStormWorker is `herald bench storm-worker`: it holds a share of the
// storm scenario's clients, driven over stdin and stdout.
func runStormWorker(stdout, stderr io.Writer) int {
	if err := storm.RunWorker(context.Background(), os.Stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "herald bench storm-worker: %v\n", err)
		return 1
	}
	return 0
}
