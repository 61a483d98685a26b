package suite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/heraldrt/herald/bench/loadgen"
)

// Engines of the scale scenario.
const (
	EngineRedis        = "redis"         // one redis-server
	EngineRedisCluster = "redis-cluster" // three masters, no replicas
	// EngineRedisShared is one redis-server with --redis-shared-rooms:
	// every room on each node's one subscriber connection instead of a
	// connection (and goroutine) per room. By name only.
	EngineRedisShared = "redis-shared"
)

// ScaleOptions configure RunScale: the scale scenario, many Herald nodes
// on one box sharing one engine, connections added in stages (Sizes) on
// the same deployment, with memory, idle CPU and a broadcast ramp measured
// at each stage.
type ScaleOptions struct {
	Engines     []string      // redis, redis-cluster (default both), redis-shared
	Sizes       []int         // total subscriber connections at each stage, ascending (default 10k, 50k, 100k)
	Nodes       int           // herald serve nodes (default 7: ~14,300 connections each at 100k)
	Procs       int           // GOMAXPROCS of each node (default 1)
	Rooms       int           // rooms the subscribers are spread over (default 1,000)
	Publishers  int           // publisher connections on the first node, each joins Rooms/Publishers rooms (default 10)
	WorkerConns int           // connections per load-generator process (default 5,000)
	SourceIPs   int           // loopback source addresses 127.0.0.2… (default 16: 6,250 ports each at 100k)
	IdleSettle  time.Duration // wait after a stage's connects before reading memory (default 10 s)
	IdleWindow  time.Duration // idle CPU window (default 40 s: one session refresh round at the default TTL)
	// Rounds are the steps of the broadcast ramp, ascending, in
	// broadcasts to every connection per second: a round is one message
	// to each room, so it reaches every subscriber once, and a step
	// offers Rounds × connections deliveries/s. The same round rate is
	// the same message rate at every size.
	Rounds   []float64
	Step     time.Duration // publishing time of one ramp step (default 20 s: two rounds at 0.1 round/s)
	Drain    time.Duration // wait for in-flight deliveries after a step (default 10 s)
	P99Bound time.Duration // a passing step's highest p99 (default 1 s)
	// Refine runs one more step between the highest passing and the
	// lowest failing rate of a stage (default true).
	Refine    bool
	Payload   int      // payload bytes (default 100)
	NodeFlags []string // more herald serve flags for every node (e.g. --heartbeat-timeout 60s)

	HeraldBin string // herald binary for nodes and workers (default: this executable)
	RedisBin  string // default "redis-server"
	RedisCLI  string // default "redis-cli" (creates the cluster)
	OutDir    string // results directory (default bench/results/scale-<timestamp>)
	Command   string // the command line, for the report
}

// ScaleDefaults are the full-size settings: 100,000 connections over
// seven nodes.
func ScaleDefaults() ScaleOptions {
	return ScaleOptions{
		Engines:     []string{EngineRedis, EngineRedisCluster},
		Sizes:       []int{10000, 50000, 100000},
		Nodes:       7,
		Procs:       1,
		Rooms:       1000,
		Publishers:  10,
		WorkerConns: 5000,
		SourceIPs:   16,
		IdleSettle:  10 * time.Second,
		IdleWindow:  40 * time.Second,
		Rounds:      []float64{0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4},
		Step:        20 * time.Second,
		Drain:       10 * time.Second,
		P99Bound:    time.Second,
		Refine:      true,
		Payload:     100,
		RedisBin:    "redis-server",
		RedisCLI:    "redis-cli",
	}
}

func (o *ScaleOptions) validate() error {
	if len(o.Engines) == 0 || len(o.Sizes) == 0 || len(o.Rounds) == 0 {
		return errors.New("suite: scale needs engines, sizes and rounds")
	}
	for _, e := range o.Engines {
		if e != EngineRedis && e != EngineRedisCluster && e != EngineRedisShared {
			return fmt.Errorf("suite: unknown engine %q (%s, %s, %s)", e, EngineRedis, EngineRedisCluster, EngineRedisShared)
		}
	}
	if !slices.IsSorted(o.Sizes) || o.Sizes[0] <= 0 {
		return errors.New("suite: scale sizes must be positive and ascending")
	}
	if o.Nodes <= 0 || o.Rooms <= 0 || o.Publishers <= 0 || o.WorkerConns <= 0 || o.SourceIPs <= 0 || o.SourceIPs > 250 {
		return errors.New("suite: scale nodes, rooms, publishers, worker conns and source addresses (at most 250) must be positive")
	}
	if (o.Rooms+o.Publishers-1)/o.Publishers > 100 {
		return fmt.Errorf("suite: %d rooms need at least %d publishers (a connection may join 128 rooms, a publisher joins rooms/publishers)", o.Rooms, (o.Rooms+99)/100)
	}
	if !slices.IsSorted(o.Rounds) || o.Rounds[0] <= 0 {
		return errors.New("suite: scale rounds must be positive and ascending")
	}
	if n := 2 * (len(o.Rounds) + 1); n > loadgen.MaxSteps/len(o.Sizes) {
		return fmt.Errorf("suite: %d round rates over %d sizes may take more than %d steps", len(o.Rounds), len(o.Sizes), loadgen.MaxSteps)
	}
	return nil
}

// ScaleReport is what RunScale measured, per engine and stage.
type ScaleReport struct {
	Options  ScaleOptions  `json:"options"`
	Started  time.Time     `json:"started"`
	Finished time.Time     `json:"finished"`
	Machine  string        `json:"machine"`
	LoadAvg  []string      `json:"loadAvg"` // /proc/loadavg at the start of each engine's run
	Engines  []ScaleEngine `json:"engines"`
	Errors   []string      `json:"errors,omitempty"`
}

// ScaleEngine is one deployment's stages.
type ScaleEngine struct {
	Engine string       `json:"engine"`
	Stages []ScaleStage `json:"stages"`
}

// ScaleStage holds the figures at one size.
type ScaleStage struct {
	Conns          int     `json:"conns"` // subscribers held by the load generator
	Failed         int     `json:"failed"`
	ConnectSeconds float64 `json:"connectSeconds"` // for this stage's new connections
	// NodesHold is the connections the nodes report (herald_connections,
	// the publishers included) after the settle time.
	NodesHold int `json:"nodesHold"`
	// LostIdle is the connections the load generator lost (closed by the
	// server) from the start until the end of this stage's idle window.
	LostIdle int `json:"lostIdle"`
	// Per node, in node order.
	NodeConns       []int     `json:"nodeConns"`        // herald_connections
	NodeRSSPerConn  []float64 `json:"nodeRSSPerConnKB"` // RSS growth since before any connection ÷ its connections
	NodeHeapPerConn []float64 `json:"nodeHeapPerConnKB"`
	NodeRSSMB       []float64 `json:"nodeRSSMB"`
	// Kernel, machine-wide, both ends of each loopback connection: growth
	// since before any connection ÷ subscriber connections.
	SockstatPerConnKB float64 `json:"sockstatPerConnKB"` // /proc/net/sockstat TCP mem (buffer pages)
	SlabPerConnKB     float64 `json:"slabPerConnKB"`     // socket slab caches (slabinfo)
	TCPInUse          int64   `json:"tcpInUse"`
	// Idle CPU over the window, % of one core.
	NodesIdleCPU float64 `json:"nodesIdleCPUPercent"` // all nodes together
	RedisIdleCPU float64 `json:"redisIdleCPUPercent"`
	RedisRSSMB   float64 `json:"redisRSSMB"`
	// MachineIdleCPU is the whole machine's busy CPU over the idle
	// window, % of one core: what else ran beside the nodes.
	MachineIdleCPU float64 `json:"machineIdleCPUPercent"`
	LoadAvg        string  `json:"loadAvg"` // /proc/loadavg at the idle window's start
	// The broadcast ramp.
	Steps []ScaleStep `json:"steps"`
	Best  *ScaleStep  `json:"best,omitempty"` // highest delivered rate of a passing step
}

// ScaleStep is one broadcast step to every connection.
type ScaleStep struct {
	loadgen.StepResult
	Rounds                float64 `json:"rounds"` // broadcasts to every connection per second offered
	NodesCPUPerDeliveryUs float64 `json:"nodesCPUPerDeliveryUs"`
	RedisCPUPercent       float64 `json:"redisCPUPercent"` // % of one core over the step
	RedisCPUPerDeliveryUs float64 `json:"redisCPUPerDeliveryUs"`
	// MachineCPUPercent is the whole machine's busy CPU over the step, %
	// of one core; OthersCPUPercent what of it neither the nodes, Redis
	// nor the load generator used (other processes, the kernel's softirq
	// work charged to none of them).
	MachineCPUPercent float64 `json:"machineCPUPercent"`
	OthersCPUPercent  float64 `json:"othersCPUPercent"`
	LoadAvg           string  `json:"loadAvg"` // /proc/loadavg at the step's start
	// OK: nothing lost, every subscriber got every message of its room,
	// p99 under the bound, no disconnect, the publishers kept the rate.
	OK bool `json:"ok"`
}

// RunScale runs the scale scenario for every engine of o, writes
// scale.md and scale.json into o.OutDir and returns the report. A failed
// engine is recorded in the report and the next one runs.
func RunScale(ctx context.Context, o ScaleOptions, log io.Writer) (*ScaleReport, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.HeraldBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.HeraldBin = exe
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join("bench", "results", "scale-"+time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(filepath.Join(o.OutDir, "logs"), 0o755); err != nil {
		return nil, err
	}
	r := &runner{opts: Options{OutDir: o.OutDir, HeraldBin: o.HeraldBin, RedisBin: o.RedisBin}, log: log}
	rep := &ScaleReport{Options: o, Started: time.Now(), Machine: machineLine(ctx, o.RedisBin)}
	r.logf("scale: results in %s", o.OutDir)
	for _, e := range o.Engines {
		if ctx.Err() != nil {
			break
		}
		la, _ := os.ReadFile("/proc/loadavg")
		rep.LoadAvg = append(rep.LoadAvg, string(la))
		se := ScaleEngine{Engine: e}
		err := r.scaleEngine(ctx, o, &se)
		rep.Engines = append(rep.Engines, se)
		if err != nil {
			msg := fmt.Sprintf("scale %s: %v", e, err)
			r.logf("FAILED: %s", msg)
			rep.Errors = append(rep.Errors, msg)
		}
	}
	rep.Finished = time.Now()
	if err := writeJSON(filepath.Join(o.OutDir, "scale.json"), rep); err != nil {
		return rep, err
	}
	if err := os.WriteFile(filepath.Join(o.OutDir, "scale.md"), []byte(rep.Markdown()), 0o644); err != nil {
		return rep, err
	}
	r.logf("scale report: %s", filepath.Join(o.OutDir, "scale.md"))
	return rep, ctx.Err()
}

// scaleNode is one herald serve of the deployment.
type scaleNode struct {
	p       *process
	url     string // WebSocket endpoint
	metrics string
	rss0    int64
	heap0   float64
}

func (r *runner) scaleEngine(ctx context.Context, o ScaleOptions, se *ScaleEngine) error {
	eng, err := r.startEngine(ctx, o, se.Engine)
	if err != nil {
		return err
	}
	defer eng.stop()
	var nodes []*scaleNode
	defer func() {
		for _, n := range nodes {
			n.p.stop(10 * time.Second)
		}
	}()
	for i := 0; i < o.Nodes; i++ {
		p, port, err := r.startListening(ctx, fmt.Sprintf("scale-%s-node%d-%d", se.Engine, i, r.seq()), o.HeraldBin, func(port int) ([]string, []string, error) {
			args := append(append(heraldArgs(TargetHerald, "127.0.0.1:"+strconv.Itoa(port), i), eng.flags...), o.NodeFlags...)
			return []string{"GOMAXPROCS=" + strconv.Itoa(o.Procs)}, args, nil
		})
		if err != nil {
			return err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		nodes = append(nodes, &scaleNode{p: p, url: loadgen.KindHerald.EndpointURL("ws://" + addr), metrics: "http://" + addr + "/metrics"})
	}
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url)
	}
	// Publishers first, so that the baseline holds them.
	pub, err := loadgen.NewPublisher(ctx, loadgen.KindHerald, urls[0], o.Rooms, o.Publishers, nil, nil)
	if err != nil {
		return err
	}
	defer pub.Close()
	time.Sleep(2 * time.Second)
	for _, n := range nodes {
		n.rss0, _ = loadgen.ProcRSS(n.p.pid())
		n.heap0, _ = loadgen.ScrapeMetric(ctx, n.metrics, "go_memstats_heap_inuse_bytes")
	}
	k0 := readKernelMem()
	fleet := &loadgen.Fleet{PerRoom: map[int]int{}}
	defer fleet.Close()
	step := 0
	var prevBest *ScaleStep // the previous stage's highest passing step
	for _, size := range o.Sizes {
		st := ScaleStage{}
		delta := size - fleet.Connected - fleet.Failed
		r.logf("scale %s: connecting %d more subscribers (to %d) over %d nodes", se.Engine, delta, size, len(nodes))
		base := loadgen.WorkerSpec{
			Kind: loadgen.KindHerald, URLs: urls, Mode: "subscribe", Conns: delta, Offset: fleet.Connected + fleet.Failed,
			Rooms: o.Rooms, SourceIPs: sourceIPs(o.SourceIPs),
		}
		more, err := loadgen.StartFleet(ctx, loadgen.SplitSpecs(base, o.WorkerConns), r.workerStarter())
		if err != nil {
			return err
		}
		mergeFleet(fleet, more)
		st.ConnectSeconds = more.ConnectIn.Seconds()
		st.Conns, st.Failed = fleet.Connected, fleet.Failed
		r.logf("scale %s: %d connected (%d failed) in %.1fs %s", se.Engine, fleet.Connected, fleet.Failed, st.ConnectSeconds, more.FirstErr)
		if more.Connected == 0 {
			se.Stages = append(se.Stages, st)
			return fmt.Errorf("no subscriber connected: %s", more.FirstErr)
		}
		time.Sleep(o.IdleSettle)
		for _, n := range nodes {
			c, _ := loadgen.ScrapeMetric(ctx, n.metrics, "herald_connections")
			rss, _ := loadgen.ProcRSS(n.p.pid())
			heap, _ := loadgen.ScrapeMetric(ctx, n.metrics, "go_memstats_heap_inuse_bytes")
			st.NodeConns = append(st.NodeConns, int(c))
			st.NodeRSSMB = append(st.NodeRSSMB, float64(rss)/(1<<20))
			if c > 0 {
				st.NodeRSSPerConn = append(st.NodeRSSPerConn, float64(rss-n.rss0)/1024/c)
				st.NodeHeapPerConn = append(st.NodeHeapPerConn, (heap-n.heap0)/1024/c)
			}
		}
		// What the nodes hold: a connection the load generator opened may
		// have been closed since (a heartbeat timeout on an overloaded
		// machine), and its sockets are gone from the kernel's figures.
		held := 0
		for _, c := range st.NodeConns {
			held += c
		}
		st.NodesHold = held
		k := readKernelMem()
		st.TCPInUse = k.tcpInUse
		if held > 0 {
			st.SockstatPerConnKB = float64(k.sockstatBytes-k0.sockstatBytes) / 1024 / float64(held)
			st.SlabPerConnKB = float64(k.slabBytes-k0.slabBytes) / 1024 / float64(held)
		}
		nodePIDs := make([]int, len(nodes))
		for i, n := range nodes {
			nodePIDs[i] = n.p.pid()
		}
		redisPIDs := eng.pids()
		rss := loadgen.SumRSS(redisPIDs)
		st.RedisRSSMB = float64(rss) / (1 << 20)
		c0, rc0, m0 := loadgen.SumCPU(nodePIDs), loadgen.SumCPU(redisPIDs), loadgen.ReadMachineCPU()
		st.LoadAvg = loadgen.LoadAvg()
		time.Sleep(o.IdleWindow)
		st.NodesIdleCPU = 100 * (loadgen.SumCPU(nodePIDs) - c0).Seconds() / o.IdleWindow.Seconds()
		st.MachineIdleCPU = loadgen.ReadMachineCPU().BusySince(m0)
		st.LostIdle = int(fleetDisconnects(fleet))
		st.RedisIdleCPU = 100 * (loadgen.SumCPU(redisPIDs) - rc0).Seconds() / o.IdleWindow.Seconds()
		r.logf("scale %s @%d: node RSS/conn %s KB, heap/conn %s KB, kernel %.2f KB sockstat + %.2f KB slab per conn (both ends), idle CPU nodes %.1f%% redis %.1f%% machine %.0f%% (load %s)",
			se.Engine, fleet.Connected, scaleFmtList(st.NodeRSSPerConn), scaleFmtList(st.NodeHeapPerConn), st.SockstatPerConnKB, st.SlabPerConnKB, st.NodesIdleCPU, st.RedisIdleCPU, st.MachineIdleCPU, st.LoadAvg)

		// The broadcast ramp: every room in turn, so each round of Rooms
		// messages reaches every connection.
		if err := r.scaleRamp(ctx, o, se.Engine, fleet, pub, &step, &st, prevBest, nodePIDs, redisPIDs); err != nil {
			se.Stages = append(se.Stages, st)
			return err
		}
		if st.Best != nil {
			prevBest = st.Best
		}
		se.Stages = append(se.Stages, st)
		if fleet.Connected > 0 && st.Best == nil {
			r.logf("scale %s @%d: no broadcast step passed", se.Engine, fleet.Connected)
		}
	}
	return nil
}

// scaleRamp finds the stage's highest sustained broadcast to every
// connection: a step publishes one message to each room in turn at a
// rate for o.Step, then every subscriber is checked against what its
// room was published. It starts at the highest of o.Rounds that offers
// at most half the deliveries/s the previous stage sustained (the first
// rate at the first stage), goes down the list while steps fail and up
// it while they pass, and with o.Refine runs one step between the
// highest passing and the lowest failing rate. A step that fails only its
// p99 bound is run once more, so that one noisy moment does not end it.
func (r *runner) scaleRamp(ctx context.Context, o ScaleOptions, engine string, fleet *loadgen.Fleet, pub *loadgen.Publisher,
	step *int, st *ScaleStage, prevBest *ScaleStep, nodePIDs, redisPIDs []int) error {
	conns := float64(fleet.Connected)
	start := 0
	if prevBest != nil {
		for i, rounds := range o.Rounds {
			if rounds*conns <= prevBest.DeliveriesPerSec/2 {
				start = i
			}
		}
	}
	// run runs the steps at rounds (twice if the first fails only its
	// p99 bound) and reports whether one passed; ok is false without a
	// step when the step budget is spent.
	run := func(rounds float64) (bool, error) {
		for attempt := 0; attempt < 2 && *step < loadgen.MaxSteps; attempt++ {
			s, err := r.scaleStep(ctx, o, fleet, pub, *step, rounds, nodePIDs, redisPIDs)
			*step++
			if err != nil {
				return false, err
			}
			st.Steps = append(st.Steps, s)
			r.logf("  scale %s @%d: %g rounds/s, %8.0f/s offered (%.0f msgs/s, %.0f published): %8.0f/s delivered, p50 %.1f ms, p99 %.1f ms, lost %d (publications refused %d), clients short %d of %d, disconnects %d, %.1f µs/delivery nodes, redis %.1f%%, machine %.0f%% (others %.0f%%), load %s",
				engine, fleet.Connected, rounds, s.OfferedDeliveriesPerSec, s.MsgsPerSec, s.PublishedPerSec, s.DeliveriesPerSec, s.Latency.P50, s.Latency.P99,
				s.Lost, s.PublishErrors, s.ClientsShort, s.Clients, s.Disconnects, s.NodesCPUPerDeliveryUs, s.RedisCPUPercent, s.MachineCPUPercent, s.OthersCPUPercent, s.LoadAvg)
			if s.OK {
				if st.Best == nil || s.DeliveriesPerSec > st.Best.DeliveriesPerSec {
					best := s
					st.Best = &best
				}
				time.Sleep(time.Second)
				return true, nil
			}
			// Let what is still in flight of the failed step arrive (or
			// be dropped) before the next one.
			time.Sleep(min(o.Drain, 5*time.Second))
			if s.Lost > 0 || s.ClientsShort > 0 || s.Disconnects > 0 || !s.publishedAll() {
				break
			}
		}
		return false, nil
	}
	var pass, fail float64 // highest passing, lowest failing rate so far
	i := start
	for {
		ok, err := run(o.Rounds[i])
		if err != nil {
			return err
		}
		if ok {
			pass = o.Rounds[i]
			break
		}
		fail = o.Rounds[i]
		if i == 0 || *step >= loadgen.MaxSteps {
			break
		}
		i--
	}
	for i++; pass > 0 && i < len(o.Rounds) && (fail == 0 || o.Rounds[i] < fail) && *step < loadgen.MaxSteps; i++ {
		ok, err := run(o.Rounds[i])
		if err != nil {
			return err
		}
		if !ok {
			fail = o.Rounds[i]
			break
		}
		pass = o.Rounds[i]
	}
	if o.Refine && pass > 0 && fail > 0 {
		if mid := roundSig2(math.Sqrt(pass * fail)); mid > pass && mid < fail {
			if _, err := run(mid); err != nil {
				return err
			}
		}
	}
	return nil
}

// roundSig2 rounds x to two significant digits.
func roundSig2(x float64) float64 {
	if x <= 0 {
		return x
	}
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 2, 64), 64)
	return v
}

func (r *runner) scaleStep(ctx context.Context, o ScaleOptions, fleet *loadgen.Fleet, pub *loadgen.Publisher, step int, rounds float64, nodePIDs, redisPIDs []int) (ScaleStep, error) {
	la := loadgen.LoadAvg()
	loadPIDs := append(fleet.PIDs(), os.Getpid())
	rc0, m0 := loadgen.SumCPU(redisPIDs), loadgen.ReadMachineCPU()
	t0 := time.Now()
	res, err := loadgen.RunBroadcastStep(ctx, fleet, pub, loadgen.StepConfig{
		Step: step, DeliveriesPerSec: rounds * float64(fleet.Connected), PayloadBytes: o.Payload, Duration: o.Step, DrainTimeout: o.Drain,
		ServerPIDs: nodePIDs, LoadPIDs: loadPIDs,
	})
	if err != nil {
		return ScaleStep{}, err
	}
	redis := (loadgen.SumCPU(redisPIDs) - rc0).Seconds()
	secs := time.Since(t0).Seconds()
	s := ScaleStep{StepResult: res, Rounds: rounds, NodesCPUPerDeliveryUs: res.ServerCPUPerDeliveryUs, LoadAvg: la}
	s.OK = res.OK(o.P99Bound) && res.Disconnects == 0 && s.publishedAll()
	s.RedisCPUPercent = 100 * redis / secs
	if res.Received > 0 {
		s.RedisCPUPerDeliveryUs = redis * 1e6 / float64(res.Received)
	}
	s.MachineCPUPercent = loadgen.ReadMachineCPU().BusySince(m0)
	load := res.LoadCPUPerDeliveryUs * float64(res.Received) / 1e6
	s.OthersCPUPercent = max(0, s.MachineCPUPercent-100*(res.ServerCPUSeconds+redis+load)/secs)
	return s, nil
}

// publishedAll reports whether the publishers kept up with the offered
// message rate (within 5 %): if the nodes push back on them, the rate
// offered was not the rate carried.
func (s *ScaleStep) publishedAll() bool {
	return s.PublishedPerSec >= 0.95*s.MsgsPerSec
}

// mergeFleet adds the workers and connections of src to dst.
func mergeFleet(dst, src *loadgen.Fleet) {
	dst.Workers = append(dst.Workers, src.Workers...)
	dst.Connected += src.Connected
	dst.Failed += src.Failed
	for room, n := range src.PerRoom {
		dst.PerRoom[room] += n
	}
	if dst.FirstErr == "" {
		dst.FirstErr = src.FirstErr
	}
}

func scaleFmtList(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f–%.2f", slices.Min(xs), slices.Max(xs))
}

// fleetDisconnects returns how many of the fleet's connections were
// closed by the other end so far (0 when a worker does not answer).
func fleetDisconnects(f *loadgen.Fleet) int64 {
	var n int64
	for _, h := range f.Workers {
		r, err := h.Do(loadgen.Command{Cmd: "report", Step: 0})
		if err != nil || r.Report == nil {
			return 0
		}
		n += r.Report.Disconnects
	}
	return n
}
