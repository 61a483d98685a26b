package suite

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Targets in report order: Herald first, then the peers it is compared to.
const (
	TargetHerald   = "herald"
	TargetWS       = "ws"
	TargetSocketIO = "socketio"
	// TargetFloor is bench/floor: one epoll loop, one write per delivery,
	// no features. It measures what the kernel costs on the machine of
	// the day: in the idle and broadcast scenarios, and in churn as the
	// handshake floor (the same JWT verified, the 101 and the welcome in
	// one write).
	TargetFloor = "floor"
	// TargetHeraldHistory is the same herald serve as TargetHerald with
	// history on for every bench room (HistoryRule), in memory as a
	// single node keeps it. Not in the default list: run it by name next
	// to herald (--targets herald,herald-history) to read the ratio of
	// the two ceilings.
	TargetHeraldHistory = "herald-history"
	// TargetHeraldBase is herald serve from another binary
	// (Options.BaseBin), run by name only: Herald before a change, next
	// to herald after it, in the same run, so that a before/after ratio
	// does not straddle an hour of this machine's noise.
	TargetHeraldBase = "herald-base"
	// TargetHeraldSocketIO is the same herald serve as TargetHerald with
	// its subscribers and publishers speaking Socket.IO (WebSocket
	// transport, Herald's herald:join / herald:publish events) at
	// /socket.io/ instead of v1 at /ws. Not in the default list: run it by
	// name next to herald (--targets herald,herald-socketio) to read what
	// a Socket.IO client costs Herald against a v1 one in the same run.
	TargetHeraldSocketIO = "herald-socketio"
	// TargetHeraldMixed is the same herald serve with v1 and Socket.IO
	// subscribers in the same rooms, every other member of each room of
	// either kind, and v1 publishers: both kinds get the same broadcasts
	// at the same moment, so their latencies compare on equal terms
	// even on a busy machine, where herald next to herald-socketio
	// compares two stretches of time. Its broadcast steps report the
	// Socket.IO subscribers' latency apart. Run by name only; its other
	// scenarios (churn, cluster) use v1 clients.
	TargetHeraldMixed = "herald-mixed"
)

// HistoryRule is the --history rule of TargetHeraldHistory: every room
// the load generator uses (loadgen.RoomName: bench-0, bench-1, …) keeps
// its last 1,000 messages.
const HistoryRule = "bench-*=1000"

// isHerald reports whether target runs herald serve (with or without
// history): it speaks Herald's protocol, takes a JWT and has /metrics.
func isHerald(target string) bool {
	return target == TargetHerald || target == TargetHeraldHistory || target == TargetHeraldBase || target == TargetHeraldSocketIO ||
		target == TargetHeraldMixed
}

// Scenarios.
const (
	ScenarioIdle      = "idle"
	ScenarioBroadcast = "broadcast"
	ScenarioChurn     = "churn"
	ScenarioCluster   = "cluster"
	// ScenarioProxy compares Herald's connects with the connect hook sent
	// to a local backend (docs/backend.md) with JWT-only connects, in the
	// same run. Not in the default list: run it by name.
	ScenarioProxy = "proxy"
)

// Options configure a Run. Zero fields take the defaults of Defaults (or
// QuickDefaults).
type Options struct {
	Targets   []string // herald, ws, socketio, floor; herald-history by name only
	Scenarios []string // idle, broadcast, churn, cluster (broadcast includes the ramp); proxy by name only

	Conns        int           // subscribers per run (default 10,000)
	Rooms        int           // rooms they are spread over (default 10)
	Publishers   int           // publisher connections (default 2)
	WorkerConns  int           // connections per worker process (default 5,000)
	SourceIPs    int           // loopback source addresses 127.0.0.2… (default 8)
	Reps         int           // repetitions of each fixed-rate measurement (default 3)
	StepDuration time.Duration // publishing time of one step (default 10 s)
	DrainTimeout time.Duration // wait for in-flight deliveries after a step (default 5 s)
	IdleSettle   time.Duration // wait after connecting before reading RSS (default 10 s)
	IdleWindow   time.Duration // CPU sampling window while idle (default 10 s)
	FixedRate    float64       // deliveries/s of the fixed-rate steps (default 50,000)
	Payloads     []int         // payload sizes of the fixed-rate steps (default 100, 4096)
	RampRates    []float64     // offered deliveries/s of the ramp, ascending; the default has 800k and 850k so that 0.8x of a ~1M/s node is resolved
	P99Bound     time.Duration // ramp bound on p99 (default 500 ms)
	ChurnTime    time.Duration // duration of one churn run (default 10 s)
	ChurnConc    int           // concurrent connect loops in total (default 64)
	ClusterNodes int           // nodes in the cluster scenario (default 3)
	// Storm sizes the storm scenario (ScenarioStorm).
	Storm StormOptions
	// ClusterProcs is GOMAXPROCS for each Herald node of the cluster
	// scenario. 0 (the default) gives each node its share of the
	// machine's cores, at least one, as a CPU limit of cores/nodes would
	// (Go reads a container's limit); -1 leaves Go's default (every core)
	// to every node. The one-node scenarios always run with Go's default.
	ClusterProcs int

	HeraldBin string // herald binary for servers and workers (default: this executable)
	BaseBin   string // herald binary of TargetHeraldBase
	PeersDir  string // bench/peers (default "bench/peers")
	NodeBin   string // default "node"
	RedisBin  string // default "redis-server"
	OutDir    string // results directory (default bench/results/<timestamp>)
	DocsFile  string // when set, the report replaces the generated part of this file
	DocsSVG   string // directory the charts are copied to for DocsFile
	Command   string // the command line, for the report
	Quick     bool
}

// Defaults are the full-run settings.
func Defaults() Options {
	return Options{
		Targets:      []string{TargetHerald, TargetWS, TargetSocketIO, TargetFloor},
		Scenarios:    []string{ScenarioIdle, ScenarioBroadcast, ScenarioChurn, ScenarioCluster},
		Conns:        10000,
		Rooms:        10,
		Publishers:   2,
		WorkerConns:  5000,
		SourceIPs:    8,
		Reps:         3,
		StepDuration: 10 * time.Second,
		DrainTimeout: 5 * time.Second,
		IdleSettle:   10 * time.Second,
		IdleWindow:   10 * time.Second,
		FixedRate:    50000,
		Payloads:     []int{100, 4096},
		RampRates:    []float64{50e3, 75e3, 100e3, 125e3, 150e3, 200e3, 250e3, 300e3, 400e3, 600e3, 750e3, 800e3, 850e3, 900e3, 1000e3},
		P99Bound:     500 * time.Millisecond,
		ChurnTime:    10 * time.Second,
		ChurnConc:    64,
		ClusterNodes: 3,
		Storm:        defaultStormOptions(),
		PeersDir:     "bench/peers",
		NodeBin:      "node",
		RedisBin:     "redis-server",
	}
}

// QuickDefaults finish in about three minutes: fewer connections, one
// repetition, short steps, a short ramp.
func QuickDefaults() Options {
	o := Defaults()
	o.Quick = true
	o.Conns = 2000
	o.Reps = 1
	o.StepDuration = 3 * time.Second
	o.DrainTimeout = 2 * time.Second
	o.IdleSettle = 2 * time.Second
	o.IdleWindow = 3 * time.Second
	o.FixedRate = 20000
	o.RampRates = []float64{20e3, 50e3, 100e3, 200e3}
	o.ChurnTime = 3 * time.Second
	o.ChurnConc = 32
	return o
}

func (o *Options) has(scenario string) bool {
	for _, s := range o.Scenarios {
		if s == scenario {
			return true
		}
	}
	return false
}

// fullRun reports whether o covers every default target and scenario
// at full size: only such a run may rewrite the generated part of
// DocsFile, so that a subset does not replace the full run's standings.
func (o *Options) fullRun() bool {
	if o.Quick {
		return false
	}
	d := Defaults()
	for _, t := range d.Targets {
		if !slices.Contains(o.Targets, t) {
			return false
		}
	}
	for _, s := range d.Scenarios {
		if !o.has(s) {
			return false
		}
	}
	return true
}

func (o *Options) validate() error {
	for _, t := range o.Targets {
		switch t {
		case TargetHerald, TargetHeraldHistory, TargetHeraldSocketIO, TargetHeraldMixed, TargetWS, TargetSocketIO, TargetFloor:
		case TargetHeraldBase:
			if o.BaseBin == "" {
				return fmt.Errorf("suite: target %s needs the binary to compare with (--base-bin)", t)
			}
		default:
			return fmt.Errorf("suite: unknown target %q (herald, herald-history, herald-base, herald-socketio, herald-mixed, ws, socketio, floor)", t)
		}
	}
	for _, s := range o.Scenarios {
		switch s {
		case ScenarioIdle, ScenarioBroadcast, ScenarioChurn, ScenarioCluster, ScenarioProxy, ScenarioStorm:
		default:
			return fmt.Errorf("suite: unknown scenario %q (%s)", s,
				strings.Join([]string{ScenarioIdle, ScenarioBroadcast, ScenarioChurn, ScenarioCluster, ScenarioProxy, ScenarioStorm}, ", "))
		}
	}
	if o.Conns <= 0 || o.Rooms <= 0 || o.Reps <= 0 {
		return fmt.Errorf("suite: conns, rooms and reps must be positive")
	}
	if o.has(ScenarioStorm) {
		if err := o.Storm.validate(); err != nil {
			return err
		}
	}
	if o.ClusterProcs < -1 {
		return fmt.Errorf("suite: cluster procs must be -1 (Go's default), 0 (cores/nodes) or a count")
	}
	if o.Rooms > 100 {
		return fmt.Errorf("suite: at most 100 rooms (Herald's default per-connection room limit is 128 and a publisher joins all)")
	}
	return nil
}

// clusterProcs returns the GOMAXPROCS of each Herald cluster node, or 0
// for Go's default.
func (o *Options) clusterProcs(cpus int) int {
	switch {
	case o.ClusterProcs > 0:
		return o.ClusterProcs
	case o.ClusterProcs < 0:
		return 0
	}
	return max(1, cpus/max(1, o.ClusterNodes))
}

// sourceIPs returns 127.0.0.2 … 127.0.0.(1+n).
func sourceIPs(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("127.0.0.%d", 2+i))
	}
	return out
}
