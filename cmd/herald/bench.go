package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/heraldrt/herald/bench/floor"
	"github.com/heraldrt/herald/bench/loadgen"
	"github.com/heraldrt/herald/bench/rolling"
	"github.com/heraldrt/herald/bench/suite"
)

// runBench is `herald bench`: the end-to-end load generator that compares
// Herald with the reference servers of bench/peers in one run.
//
//	herald bench [flags] [scenario...]   idle, broadcast, churn, cluster (default: all), proxy
//	herald bench rolling [flags]         the rolling-deploy scenario (bench/rolling)
//	herald bench scale [flags]           many nodes, 100k connections (benchscale.go)
//	herald bench worker                  internal: a load-generator child process
//	herald bench storm-worker            internal: a storm scenario client process (bench/storm)
//	herald bench floor --addr HOST:PORT [--jwt-secret S]  internal: the floor server (bench/floor)
func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "floor" {
		f := flag.NewFlagSet("herald bench floor", flag.ContinueOnError)
		f.SetOutput(stderr)
		addr := f.String("addr", "127.0.0.1:8092", "IPv4 address to listen on")
		secret := f.String("jwt-secret", "", "require an HS256 JWT signed with this secret on every upgrade (the churn scenario's handshake floor)")
		if err := f.Parse(args[1:]); err != nil {
			return 2
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		listening := func(bound string) { fmt.Fprintf(stderr, "floor server listening on %s\n", bound) } // port 0: the one bound
		if err := floor.Run(ctx, floor.Config{Addr: *addr, JWTSecret: []byte(*secret), Listening: listening}); err != nil {
			fmt.Fprintf(stderr, "herald bench floor: %v\n", err)
			return 1
		}
		return 0
	}
	if len(args) > 0 && args[0] == "rolling" {
		return runBenchRolling(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "scale" {
		return runBenchScale(args[1:], stdout, stderr) // benchscale.go
	}
	if len(args) > 0 && args[0] == "storm-worker" {
		return runStormWorker(stdout, stderr)
	}
	if len(args) > 0 && args[0] == "worker" {
		// The orchestrator talks to its workers over stdin and stdout.
		if err := loadgen.RunWorker(context.Background(), os.Stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "herald bench worker: %v\n", err)
			return 1
		}
		return 0
	}
	o, err := parseBench(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := suite.Run(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "herald bench: %v\n", err)
		return 1
	}
	for _, t := range rep.Tables() {
		fmt.Fprintf(stdout, "\n%s\n\n%s", t.Title, suite.MarkdownTable(t))
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

func parseBench(args []string, stderr io.Writer) (suite.Options, error) {
	quick := false
	for _, a := range args {
		if a == "--quick" || a == "-quick" || a == "--quick=true" {
			quick = true
		}
	}
	if v, _ := strconv.ParseBool(os.Getenv("QUICK")); v {
		quick = true
	}
	o := suite.Defaults()
	if quick {
		o = suite.QuickDefaults()
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: herald bench [flags] [scenario...]

Runs the end-to-end benchmark: each scenario (idle, broadcast with its ramp,
churn, cluster; default all; and, by name only, proxy: Herald's connects with
the connect hook sent to a local backend vs JWT only, and storm: one of three
nodes SIGTERMed, then SIGKILLed, under 15,000 clients, herald and socketio) against Herald, the Node reference servers of
bench/peers (run "npm ci" there first) and the floor server (bench/floor;
idle, broadcast and churn), one after the other with the same parameters (churn:
the targets' repetitions interleaved, the order turned each round), and
writes report.md, results.json and SVG charts into --out.
QUICK=1 in the environment is the same as --quick.

`)
		fs.PrintDefaults()
	}
	fs.Bool("quick", quick, "short run (~3 min): 2,000 connections, 1 repetition, 3 s steps")
	targets := fs.String("targets", strings.Join(o.Targets, ","), "servers to compare, in order: herald, ws, socketio, floor (bench/floor: one epoll loop, one write per delivery); herald-history (herald with --history '"+suite.HistoryRule+"' on the bench rooms), herald-socketio (herald with Socket.IO clients), herald-mixed (v1 and Socket.IO subscribers in the same rooms, each kind's latency of the same broadcasts) and herald-base (--base-bin) by name only")
	fs.IntVar(&o.Conns, "conns", o.Conns, "subscriber connections (keep under ~15k per server process)")
	fs.IntVar(&o.Rooms, "rooms", o.Rooms, "rooms the subscribers are spread over")
	fs.IntVar(&o.Publishers, "publishers", o.Publishers, "publisher connections")
	fs.IntVar(&o.WorkerConns, "worker-conns", o.WorkerConns, "connections per load-generator process")
	fs.IntVar(&o.SourceIPs, "source-ips", o.SourceIPs, "loopback source addresses used, from 127.0.0.2")
	fs.IntVar(&o.Reps, "reps", o.Reps, "repetitions of each fixed-rate measurement (the median is reported)")
	fs.DurationVar(&o.StepDuration, "step", o.StepDuration, "publishing time of each broadcast step")
	fs.DurationVar(&o.DrainTimeout, "drain", o.DrainTimeout, "wait for in-flight deliveries after a step before counting the rest as lost")
	fs.DurationVar(&o.IdleSettle, "idle-settle", o.IdleSettle, "wait after connecting before measuring memory")
	fs.DurationVar(&o.IdleWindow, "idle-window", o.IdleWindow, "idle CPU sampling window")
	fs.Float64Var(&o.FixedRate, "rate", o.FixedRate, "deliveries/s of the fixed-rate broadcast steps")
	payloads := fs.String("payloads", joinInts(o.Payloads), "payload sizes in bytes of the fixed-rate steps")
	ramp := fs.String("ramp", joinFloats(o.RampRates), "offered deliveries/s of the ramp steps, ascending")
	fs.DurationVar(&o.P99Bound, "p99-bound", o.P99Bound, "ramp: highest p99 a passing step may have")
	fs.DurationVar(&o.ChurnTime, "churn-time", o.ChurnTime, "duration of one churn run")
	fs.IntVar(&o.ChurnConc, "churn-concurrency", o.ChurnConc, "concurrent connect loops in the churn scenario")
	fs.IntVar(&o.ClusterNodes, "cluster-nodes", o.ClusterNodes, "nodes in the cluster scenario")
	fs.IntVar(&o.ClusterProcs, "cluster-procs", o.ClusterProcs, "GOMAXPROCS of each Herald cluster node: 0 = cores/nodes, at least 1 (as a CPU limit would set it); -1 = Go's default (every core)")
	stormFlags(fs, &o.Storm)
	fs.StringVar(&o.HeraldBin, "herald-bin", "", "herald binary to benchmark (default: this executable)")
	fs.StringVar(&o.BaseBin, "base-bin", "", "herald binary of the target herald-base (e.g. a build of main), for before/after ratios in one run")
	fs.StringVar(&o.PeersDir, "peers", o.PeersDir, "directory of the Node reference servers")
	fs.StringVar(&o.NodeBin, "node", o.NodeBin, "node binary")
	fs.StringVar(&o.RedisBin, "redis-server", o.RedisBin, "redis-server binary")
	fs.StringVar(&o.OutDir, "out", "", "results directory (default bench/results/<timestamp>)")
	fs.StringVar(&o.DocsFile, "docs", "", "also write the report into the generated part of this file (e.g. docs/benchmarks.md)")
	command := fs.String("command", "", "the command line recorded in the report (default: this one)")
	fs.StringVar(&o.DocsSVG, "docs-charts", "", "directory the charts are copied to for --docs (e.g. docs/benchmarks)")
	// Flags may come after scenarios too ("herald bench storm --help",
	// "herald bench churn --churn-time 5s"): the flag package stops at the
	// first argument that is not a flag, so parse again after each one.
	// After "--" every argument is a scenario.
	var scenarios []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		if n := len(rest) - fs.NArg(); n > 0 && rest[n-1] == "--" {
			scenarios = append(scenarios, fs.Args()...)
			break
		}
		scenarios = append(scenarios, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	o.Targets = splitList(*targets)
	if len(scenarios) > 0 {
		o.Scenarios = scenarios
	}
	var err error
	if o.Payloads, err = parseInts(*payloads); err != nil {
		return o, fmt.Errorf("--payloads: %w", err)
	}
	if o.RampRates, err = parseFloats(*ramp); err != nil {
		return o, fmt.Errorf("--ramp: %w", err)
	}
	o.Command = "herald bench " + strings.Join(args, " ")
	if *command != "" {
		o.Command = *command
	}
	return o, nil
}

func joinInts(xs []int) string {
	var s []string
	for _, x := range xs {
		s = append(s, strconv.Itoa(x))
	}
	return strings.Join(s, ",")
}

func joinFloats(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, strconv.FormatFloat(x, 'f', -1, 64))
	}
	return strings.Join(s, ",")
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseFloats(s string) ([]float64, error) {
	var out []float64
	for _, f := range splitList(s) {
		n, err := strconv.ParseFloat(f, 64)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// runBenchRolling is `herald bench rolling`: nginx, three nodes of this
// binary on one redis-server, clients through a rolling deploy. It exits
// 1 when a message was lost, duplicated or out of order.
func runBenchRolling(args []string, stdout, stderr io.Writer) int {
	f := flag.NewFlagSet("herald bench rolling", flag.ContinueOnError)
	f.SetOutput(stderr)
	var o rolling.Options
	f.IntVar(&o.Clients, "clients", 300, "clients (Go client), spread over the rooms")
	f.IntVar(&o.Rooms, "rooms", 10, "rooms, each keeping history")
	f.IntVar(&o.Rate, "rate", 200, "acknowledged publishes per second through the API, all rooms together")
	f.DurationVar(&o.Phase, "phase", 10*time.Second, "traffic between two steps of the deploy")
	f.BoolVar(&o.NodeLogs, "node-logs", false, "print the end of each node's log (warnings and errors) to stderr")
	f.StringVar(&o.Redis, "redis-server", "", "redis-server binary (default: from PATH)")
	f.StringVar(&o.Nginx, "nginx", "", "nginx binary (default: from PATH, or /usr/sbin/nginx)")
	if err := f.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "herald bench rolling: %v\n", err)
		return 1
	}
	o.Herald, o.Log = exe, stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := rolling.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "herald bench rolling: %v\n", err)
		return 1
	}
	fmt.Fprint(stdout, rep.String())
	if rep.Total.Lost+rep.Total.Duplicated+rep.Total.OutOfOrder > 0 {
		return 1
	}
	return 0
}
