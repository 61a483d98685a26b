package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/heraldrt/herald/bench/suite"
)

// runBenchScale is `herald bench scale`: many herald serve nodes on one
// box sharing Redis (and then a Redis Cluster), connections added in
// stages, memory, idle CPU and a broadcast to every connection measured
// at each stage (bench/suite, RunScale). It exits 1 when an engine's run
// failed.
func runBenchScale(args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "--render" {
		// Renders the tables of a scale.json again (after a change of
		// the report's rows).
		b, err := os.ReadFile(args[1])
		var rep suite.ScaleReport
		if err == nil {
			err = json.Unmarshal(b, &rep)
		}
		if err != nil {
			fmt.Fprintf(stderr, "herald bench scale --render: %v\n", err)
			return 1
		}
		fmt.Fprint(stdout, rep.Markdown())
		return 0
	}
	o, err := parseBenchScale(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald bench scale: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := suite.RunScale(ctx, o, stderr)
	if rep != nil {
		fmt.Fprint(stdout, rep.Markdown())
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald bench scale: %v\n", err)
		return 1
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

func parseBenchScale(args []string, stderr io.Writer) (suite.ScaleOptions, error) {
	o := suite.ScaleDefaults()
	fs := flag.NewFlagSet("herald bench scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: herald bench scale [flags]

Starts --nodes herald serve nodes on one redis-server, adds subscribers in
stages (--sizes, in total) spread over the nodes and --rooms rooms, and at
each stage reads each node's memory per connection, the kernel's socket
memory, idle CPU of the nodes and Redis, then searches the highest
sustained broadcast to every connection: each step publishes to every
room in turn at a fixed rate for --step, then checks every subscriber
against what its room was published (a step passes with nothing lost, no
subscriber short, p99 under --p99-bound). Then the same on a three-master
Redis Cluster. Writes scale.md and scale.json into --out. Needs redis-server and redis-cli in PATH, and
a descriptor limit of at least (connections / nodes + rooms + 100) per
node process.

`)
		fs.PrintDefaults()
	}
	engines := fs.String("engines", strings.Join(o.Engines, ","), "engines, in order: redis, redis-cluster; redis-shared (one redis-server, --redis-shared-rooms) by name")
	sizes := fs.String("sizes", joinInts(o.Sizes), "total subscriber connections at each stage, ascending")
	fs.IntVar(&o.Nodes, "nodes", o.Nodes, "herald serve nodes")
	fs.IntVar(&o.Procs, "procs", o.Procs, "GOMAXPROCS of each node")
	fs.IntVar(&o.Rooms, "rooms", o.Rooms, "rooms the subscribers are spread over")
	fs.IntVar(&o.Publishers, "publishers", o.Publishers, "publisher connections (each joins rooms/publishers rooms, at most 100)")
	fs.IntVar(&o.WorkerConns, "worker-conns", o.WorkerConns, "connections per load-generator process")
	fs.IntVar(&o.SourceIPs, "source-ips", o.SourceIPs, "loopback source addresses used, from 127.0.0.2")
	fs.DurationVar(&o.IdleSettle, "idle-settle", o.IdleSettle, "wait after a stage's connects before reading memory")
	fs.DurationVar(&o.IdleWindow, "idle-window", o.IdleWindow, "idle CPU window")
	rounds := fs.String("rounds", joinFloats(o.Rounds), "rates of the broadcast ramp in broadcasts to every connection per second (one message to each room), ascending; a stage starts at the highest offering at most half of the previous stage's sustained deliveries/s, goes down while steps fail and up while they pass")
	fs.DurationVar(&o.Step, "step", o.Step, "publishing time of each broadcast step")
	fs.DurationVar(&o.Drain, "drain", o.Drain, "wait for in-flight deliveries after a step before counting the rest as lost")
	fs.DurationVar(&o.P99Bound, "p99-bound", o.P99Bound, "highest p99 of a passing step")
	fs.BoolVar(&o.Refine, "refine", o.Refine, "run one more step between a stage's highest passing and lowest failing rate")
	fs.IntVar(&o.Payload, "payload", o.Payload, "payload bytes")
	nodeFlags := fs.String("node-flags", "", "more herald serve flags for every node, space-separated (e.g. \"--heartbeat-timeout 60s\")")
	fs.StringVar(&o.HeraldBin, "herald-bin", "", "herald binary for the nodes and workers (default: this executable)")
	fs.StringVar(&o.RedisBin, "redis-server", o.RedisBin, "redis-server binary")
	fs.StringVar(&o.RedisCLI, "redis-cli", o.RedisCLI, "redis-cli binary (creates the cluster)")
	fs.StringVar(&o.OutDir, "out", "", "results directory (default bench/results/scale-<timestamp>)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.Engines = splitList(*engines)
	o.NodeFlags = strings.Fields(*nodeFlags)
	var err error
	if o.Sizes, err = parseInts(*sizes); err != nil {
		return o, fmt.Errorf("--sizes: %w", err)
	}
	if o.Rounds, err = parseFloats(*rounds); err != nil {
		return o, fmt.Errorf("--rounds: %w", err)
	}
	o.Command = "herald bench scale " + strings.Join(args, " ")
	return o, nil
}
