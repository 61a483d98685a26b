package suite

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/heraldrt/herald/bench/loadgen"
	"github.com/heraldrt/herald/bench/storm"
)

// ScenarioStorm is the reconnect storm: StormOptions.Nodes nodes on one
// redis-server hold StormOptions.Clients clients in rooms (Herald: with
// history, the Go client resuming its session; Socket.IO: the cluster
// peer with its Redis adapter), a publisher sends numbered messages to
// every room throughout, and the first node is stopped, once with
// SIGTERM and once (on a fresh deployment) with SIGKILL; its clients
// land on the other nodes. Not in the default list: run it by name
// (herald bench --targets herald,socketio storm).
const ScenarioStorm = "storm"

// Signals of the storm scenario, in the order they run.
var stormSignals = []struct {
	name string
	sig  syscall.Signal
}{{"SIGTERM", syscall.SIGTERM}, {"SIGKILL", syscall.SIGKILL}}

// StormOptions size the storm scenario.
type StormOptions struct {
	Nodes   int // nodes sharing the redis-server (default 3)
	Clients int // clients over all nodes (default 15,000)
	Rooms   int // rooms they are spread over (default 100)
	// Rate is the messages published per second over all rooms
	// (default 100: one per room per second, 150 deliveries each).
	Rate float64
	// WorkerClients bounds the clients of one worker process (default
	// 5,000: a Go client holds one descriptor, far under the limit).
	WorkerClients int
	// Warmup is the publishing before the signal (default 5 s), Tail the
	// publishing after every client is back (default 3 s).
	Warmup, Tail time.Duration
	// Timeout bounds the wait for every client of the stopped node to be
	// connected again (default 120 s); what is left then is reported.
	Timeout time.Duration
}

func defaultStormOptions() StormOptions {
	return StormOptions{Nodes: 3, Clients: 15000, Rooms: 100, Rate: 100, WorkerClients: 5000,
		Warmup: 5 * time.Second, Tail: 3 * time.Second, Timeout: 120 * time.Second}
}

func (s *StormOptions) validate() error {
	if s.Nodes < 2 || s.Clients <= 0 || s.Rooms <= 0 || s.Rate <= 0 || s.WorkerClients <= 0 {
		return errors.New("suite: storm needs at least 2 nodes and positive clients, rooms, rate and clients per worker")
	}
	if s.Rooms > 100 {
		return errors.New("suite: storm: at most 100 rooms (the publisher joins them all; Herald's default room limit per connection is 128)")
	}
	return nil
}

// StormResult is one storm against one target.
type StormResult struct {
	Target string `json:"target"`
	Signal string `json:"signal"`
	// Clients connected before the storm (of Options.Clients), and those
	// that failed to.
	Clients, FailedInitial int
	// Moving is the clients on the stopped node at the signal; Moved
	// those connected and joined again before the timeout.
	Moving, Moved int
	// AllBackSeconds is from the signal until the last moving client was
	// connected and joined again, when AllBack: every one was.
	AllBack        bool
	AllBackSeconds float64
	// SpreadSeconds is from the first reconnect attempt to the last
	// client back: AllBackSeconds less the time clients waited before
	// trying (Herald's clients wait the retryAfterMs they were told).
	SpreadSeconds float64
	// Latency of the connects after the signal: start of the TCP connect
	// → connected and joined (resumed and recovered, for Herald).
	Latency                   loadgen.Summary
	Attempts, Failed, Refused int64
	FirstErr                  string `json:",omitempty"`
	// Resumed counts the reconnects whose session was resumed;
	// Recovered and NotRecovered the joins that asked to recover.
	Resumed, Recovered, NotRecovered int64
	// Receiving nodes: the highest CPU of one over a 500 ms window (%
	// of a core), their CPU time from the signal until every client was
	// back (or the timeout), their CPU while only publishing before the
	// signal (% of a core, summed), the highest RSS of one and its growth
	// over its RSS at the signal.
	PeakCPUPercent, StormCPUSeconds, BaseCPUPercent float64
	PeakRSSMB, RSSGrowthMB                          float64
	// The redis-server's highest CPU over a 500 ms window (% of a core)
	// and its CPU time over the same time as StormCPUSeconds: the store
	// every Herald reconnect waits on (the Socket.IO adapter only
	// publishes through it).
	RedisPeakCPUPercent, RedisCPUSeconds float64
	// Load generator CPU (workers and this process) over the same time.
	LoadCPUSeconds float64
	// Messages: numbers published per room summed, given up, and what the
	// clients got.
	Published, GivenUp                       int64
	Deliveries, Lost, Duplicated, OutOfOrder int64
	// DownAtEnd counts clients not connected when the messages were
	// counted (after waiting up to a minute for them): what they miss
	// counts as lost, although a client with history would recover it
	// once back.
	DownAtEnd  int
	PublishErr string `json:",omitempty"`
}

// storm runs the storm scenario against target with each signal in turn.
func (r *runner) storm(ctx context.Context, target string) error {
	so := r.opts.Storm
	r.report.Params["storm"] = fmt.Sprintf("%d clients over %d nodes, %d rooms, %.0f msgs/s, %d clients per worker, warmup %s, timeout %s",
		so.Clients, so.Nodes, so.Rooms, so.Rate, so.WorkerClients, so.Warmup, so.Timeout)
	for _, s := range stormSignals {
		res, err := r.stormOnce(ctx, target, s.name, s.sig)
		if res != nil {
			r.report.Storm = append(r.report.Storm, *res)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (r *runner) stormWorkers(ctx context.Context, d *deployment, so StormOptions) ([]*storm.Worker, int, int, error) {
	n := max(1, (so.Clients+so.WorkerClients-1)/so.WorkerClients)
	var ws []*storm.Worker
	for i := 0; i < n; i++ {
		spec := storm.Spec{Kind: d.kind, Nodes: d.urls(), Rooms: so.Rooms, JWTSecret: jwtSecret,
			SourceIPs: sourceIPs(r.opts.SourceIPs),
			Offset:    i * so.Clients / n, Clients: (i+1)*so.Clients/n - i*so.Clients/n}
		w, err := storm.StartWorker(ctx, r.opts.HeraldBin, []string{"bench", "storm-worker"}, spec, r.log)
		if err != nil {
			closeWorkers(ws)
			return nil, 0, 0, err
		}
		ws = append(ws, w)
	}
	connected, failed := 0, 0
	for _, w := range ws {
		rep, err := w.Next()
		if err == nil && rep.Ready == nil {
			err = errors.New("storm: worker did not report ready")
		}
		if err != nil {
			closeWorkers(ws)
			return nil, 0, 0, err
		}
		connected += rep.Ready.Connected
		failed += rep.Ready.Failed
		if rep.Ready.FirstErr != "" {
			r.logf("storm worker %d: %d failed: %s", w.PID, rep.Ready.Failed, rep.Ready.FirstErr)
		}
	}
	return ws, connected, failed, nil
}

// closeWorkers stops the workers, all at once.
func closeWorkers(ws []*storm.Worker) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.Close()
		}()
	}
	wg.Wait()
}

// doAll sends c to every worker and returns their replies.
func doAll(ws []*storm.Worker, c storm.Command) ([]storm.Reply, error) {
	var out []storm.Reply
	for _, w := range ws {
		rep, err := w.Do(c)
		if err != nil {
			return nil, err
		}
		out = append(out, rep)
	}
	return out, nil
}

// nodeSampler records the CPU and RSS of some processes every 100 ms.
type nodeSampler struct {
	pids    []int
	stop    chan struct{}
	done    chan struct{}
	peakCPU float64 // % of a core, one process over 500 ms
	peakRSS int64
}

func startSampler(pids []int) *nodeSampler {
	s := &nodeSampler{pids: pids, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		const window = 5 // samples of 100 ms
		hist := make([][]time.Duration, len(pids))
		times := []time.Time{}
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			now := time.Now()
			times = append(times, now)
			for i, p := range pids {
				c, _ := loadgen.ProcCPU(p)
				hist[i] = append(hist[i], c)
				if rss, err := loadgen.ProcRSS(p); err == nil {
					s.peakRSS = max(s.peakRSS, rss)
				}
				if k := len(hist[i]); k > window {
					dt := now.Sub(times[k-1-window]).Seconds()
					s.peakCPU = max(s.peakCPU, 100*(hist[i][k-1]-hist[i][k-1-window]).Seconds()/dt)
				}
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *nodeSampler) finish() {
	close(s.stop)
	<-s.done
}

// stormOnce deploys target, connects the clients, publishes, stops the
// first node with sig and measures until every client is back.
func (r *runner) stormOnce(ctx context.Context, target, signame string, sig syscall.Signal) (*StormResult, error) {
	so := r.opts.Storm
	dep := target
	if target == TargetHerald {
		dep = TargetHeraldHistory // the same herald serve, its rooms keeping history
	}
	d, err := r.deploy(ctx, dep, deployConfig{nodes: so.Nodes, jwt: true, procs: r.opts.stormProcs(runtime.NumCPU())})
	if err != nil {
		return nil, err
	}
	defer d.stop()
	time.Sleep(time.Second)
	res := &StormResult{Target: target, Signal: signame}
	r.logf("storm %s %s: connecting %d clients over %d nodes", target, signame, so.Clients, so.Nodes)
	t0 := time.Now()
	ws, connected, failed, err := r.stormWorkers(ctx, d, so)
	if err != nil {
		return nil, err
	}
	defer closeWorkers(ws)
	res.Clients, res.FailedInitial = connected, failed
	r.logf("storm: %d connected, %d failed in %.1fs", connected, failed, time.Since(t0).Seconds())
	if connected == 0 {
		return res, errors.New("no client connected")
	}
	urls := d.urls()
	pub, err := storm.StartPublisher(ctx, d.kind, urls[len(urls)-1], so.Rooms, so.Rate, jwtSecret)
	if err != nil {
		return res, err
	}
	stopped := false
	defer func() {
		if !stopped {
			pub.Stop()
		}
	}()
	// The receiving nodes' CPU while only publishing is the baseline the
	// storm's CPU is counted above.
	base0, baseAt := loadgen.SumCPU(d.nodePIDs()[1:]), time.Now()
	if !sleepCtx(ctx, so.Warmup) {
		return res, ctx.Err()
	}
	victim := d.nodes[0]
	receivers := d.nodePIDs()[1:]
	var loadPIDs []int
	for _, w := range ws {
		loadPIDs = append(loadPIDs, w.PID)
	}
	loadPIDs = append(loadPIDs, os.Getpid())
	var rss0 int64 // the largest receiving node's at the signal
	for _, p := range receivers {
		if v, err := loadgen.ProcRSS(p); err == nil {
			rss0 = max(rss0, v)
		}
	}
	sampler := startSampler(receivers)
	var redisPIDs []int
	if d.redis != nil {
		redisPIDs = []int{d.redis.pid()}
	}
	redisSampler := startSampler(redisPIDs)
	cpu0, load0, redis0 := loadgen.SumCPU(receivers), loadgen.SumCPU(loadPIDs), loadgen.SumCPU(redisPIDs)
	res.BaseCPUPercent = 100 * (cpu0 - base0).Seconds() / time.Since(baseAt).Seconds()
	marks, err := doAll(ws, storm.Command{Cmd: "mark", Node: 0})
	if err != nil {
		sampler.finish()
		redisSampler.finish()
		return res, err
	}
	mark := time.Now()
	for _, m := range marks {
		res.Moving += m.Status.Moving
	}
	r.logf("storm: %s to node 0 (%d clients on it), %d published so far", signame, res.Moving, sum(pub.Counts()))
	_ = victim.cmd.Process.Signal(sig)

	var last, first int64
	deadline := mark.Add(so.Timeout)
	for {
		sts, err := doAll(ws, storm.Command{Cmd: "status"})
		if err != nil {
			sampler.finish()
			redisSampler.finish()
			return res, err
		}
		moved := 0
		for _, s := range sts {
			moved += s.Status.Moved
			last = max(last, s.Status.LastMoved)
			if fa := s.Status.FirstAttempt; fa != 0 && (first == 0 || fa < first) {
				first = fa
			}
		}
		res.Moved = moved
		if moved >= res.Moving {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.logf("storm: %d of %d clients back after %s", moved, res.Moving, so.Timeout)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.StormCPUSeconds = (loadgen.SumCPU(receivers) - cpu0).Seconds()
	res.LoadCPUSeconds = (loadgen.SumCPU(loadPIDs) - load0).Seconds()
	res.RedisCPUSeconds = (loadgen.SumCPU(redisPIDs) - redis0).Seconds()
	if res.Moved >= res.Moving && last > 0 {
		res.AllBack, res.AllBackSeconds = true, time.Unix(0, last).Sub(mark).Seconds()
		if first > 0 {
			res.SpreadSeconds = time.Unix(0, last).Sub(time.Unix(0, first)).Seconds()
		}
	}
	if res.AllBack {
		r.logf("storm: all %d back, the last %.2fs after the signal", res.Moving, res.AllBackSeconds)
	}
	sleepCtx(ctx, so.Tail)
	sampler.finish()
	redisSampler.finish()
	res.PeakCPUPercent = sampler.peakCPU
	res.RedisPeakCPUPercent = redisSampler.peakCPU
	res.PeakRSSMB = float64(sampler.peakRSS) / (1 << 20)
	res.RSSGrowthMB = float64(sampler.peakRSS-rss0) / (1 << 20)

	published, skip, pubFailed, pubErr := pub.Stop()
	stopped = true
	res.Published, res.PublishErr = sum(published), pubErr
	for _, s := range skip {
		res.GivenUp += int64(len(s))
	}
	if pubFailed > 0 {
		r.logf("storm: %d publishes failed: %s", pubFailed, pubErr)
	}
	// Clients cut meanwhile (a receiving node may terminate its own
	// clients when it misses their pongs) get a minute to come back.
	for wait := time.Now().Add(time.Minute); ; {
		sts, err := doAll(ws, storm.Command{Cmd: "status"})
		if err != nil {
			return res, err
		}
		up := 0
		for _, s := range sts {
			up += s.Status.Connected
		}
		res.DownAtEnd = res.Clients - up
		if res.DownAtEnd <= 0 || time.Now().After(wait) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Wait for what is in flight, until nothing is missing or the count
	// stops moving for 3 s.
	cmd := storm.Command{Cmd: "missing", Published: published, Skip: skip}
	prev, since := int64(-1), time.Now()
	for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); {
		sts, err := doAll(ws, cmd)
		if err != nil {
			return res, err
		}
		var miss int64
		for _, s := range sts {
			miss += s.Status.Missing
		}
		if miss == 0 {
			break
		}
		if miss != prev {
			prev, since = miss, time.Now()
		} else if time.Since(since) > 3*time.Second {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	cmd.Cmd = "report"
	reps, err := doAll(ws, cmd)
	if err != nil {
		return res, err
	}
	var lat loadgen.Histogram
	for _, rp := range reps {
		w := rp.Report
		lat.Merge(w.Latency)
		res.Attempts += w.Attempts
		res.Failed += w.Failed
		res.Refused += w.Refused
		if res.FirstErr == "" {
			res.FirstErr = w.FirstErr
		}
		res.Resumed += w.Resumed
		res.Recovered += w.Recovered
		res.NotRecovered += w.NotRecovered
		res.Deliveries += w.Deliveries
		res.Lost += w.Lost
		res.Duplicated += w.Duplicated
		res.OutOfOrder += w.OutOfOrder
	}
	res.Latency = lat.Summarize()
	r.logf("storm %s %s: %d/%d back (all: %v, in %.2fs); connect p50 %.1f p99 %.1f ms; %d attempts, %d failed, %d refused %s; resumed %d, recovered %d/%d; receiving nodes: peak %.0f%% CPU, %.2fs CPU (publishing alone: %.0f%%), peak RSS %.0f MB (+%.0f); redis-server: peak %.0f%% CPU, %.2fs CPU; published %d, lost %d, duplicated %d, out of order %d, clients down when counted %d",
		target, signame, res.Moved, res.Moving, res.AllBack, res.AllBackSeconds, res.Latency.P50, res.Latency.P99,
		res.Attempts, res.Failed, res.Refused, res.FirstErr, res.Resumed, res.Recovered, res.Recovered+res.NotRecovered,
		res.PeakCPUPercent, res.StormCPUSeconds, res.BaseCPUPercent, res.PeakRSSMB, res.RSSGrowthMB, res.RedisPeakCPUPercent, res.RedisCPUSeconds,
		res.Published, res.Lost, res.Duplicated, res.OutOfOrder, res.DownAtEnd)
	return res, nil
}

func sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// stormProcs is GOMAXPROCS of each Herald node of the storm: as in the
// cluster scenario.
func (o *Options) stormProcs(cpus int) int {
	c := *o
	c.ClusterNodes = o.Storm.Nodes
	return c.clusterProcs(cpus)
}

// stormTables are the storm scenario's tables, one per signal, with a
// column per target.
func (rep *Report) stormTables() []Table {
	var tables []Table
	for _, s := range stormSignals {
		var cols []string
		by := map[string]StormResult{}
		for _, res := range rep.Storm {
			if res.Signal == s.name {
				cols = append(cols, res.Target)
				by[res.Target] = res
			}
		}
		if len(cols) == 0 {
			continue
		}
		first := by[cols[0]]
		how := "SIGTERM: Herald drains (server_shutdown with retryAfterMs, then paced closes); the Node peer exits at once"
		if s.sig == syscall.SIGKILL {
			how = "SIGKILL: the node dies with its connections"
		}
		t := Table{Name: "storm-" + map[bool]string{true: "sigterm", false: "sigkill"}[s.sig == syscall.SIGTERM],
			Title: fmt.Sprintf("Reconnect storm: %s to one of %d nodes on one redis-server, %d clients", s.name, rep.stormNodes, first.Clients+first.FailedInitial),
			Note: how + ". Its clients land on the other nodes (each client's next node in turn). Herald: the Go client with session resume, rooms with history (Redis streams), recovery from the last offset; Socket.IO: the load generator's client, joining again, no history. " +
				"Connect latency: start of the TCP connect → connected and joined again. Herald's clients wait the retryAfterMs they are told (0.5–1.5× of 2 s) before reconnecting; the Socket.IO clients, and every client after a SIGKILL, reconnect after the Go client's first backoff (a random 0–250 ms). Receiving nodes: the other nodes; peak CPU over 500 ms windows; CPU from the signal until the last client was back (or the timeout), and for scale their CPU on the publishing alone during the warmup. Lost: published messages a client never got, after a drain wait.",
			Columns: cols}
		add := func(name, unit string, lower bool, f func(StormResult) float64) {
			row := Row{Metric: name, Unit: unit, LowerBetter: lower, Values: map[string]float64{}}
			for _, c := range cols {
				row.Values[c] = f(by[c])
			}
			t.Rows = append(t.Rows, row)
		}
		add("Clients on the stopped node", "", false, func(x StormResult) float64 { return float64(x.Moving) })
		add("Of them connected again", "", false, func(x StormResult) float64 { return float64(x.Moved) })
		add("Time until every client is back", "s", true, func(x StormResult) float64 {
			if !x.AllBack {
				return math.NaN()
			}
			return x.AllBackSeconds
		})
		add("First reconnect attempt → every client back", "s", true, func(x StormResult) float64 {
			if !x.AllBack {
				return math.NaN()
			}
			return x.SpreadSeconds
		})
		add("Connect latency p50", "ms", true, func(x StormResult) float64 { return x.Latency.P50 })
		add("Connect latency p99", "ms", true, func(x StormResult) float64 { return x.Latency.P99 })
		add("Connection attempts", "", true, func(x StormResult) float64 { return float64(x.Attempts) })
		add("Failed attempts", "", true, func(x StormResult) float64 { return float64(x.Failed) })
		add("TCP connects refused", "", true, func(x StormResult) float64 { return float64(x.Refused) })
		add("Sessions resumed", "", false, func(x StormResult) float64 { return float64(x.Resumed) })
		add("Peak CPU of a receiving node", "% of a core", true, func(x StormResult) float64 { return x.PeakCPUPercent })
		add("CPU of the receiving nodes until all back", "s", true, func(x StormResult) float64 { return x.StormCPUSeconds })
		add("Their CPU while only publishing, before", "% of a core", true, func(x StormResult) float64 { return x.BaseCPUPercent })
		add("Peak RSS of a receiving node", "MB", true, func(x StormResult) float64 { return x.PeakRSSMB })
		add("RSS growth of it", "MB", true, func(x StormResult) float64 { return x.RSSGrowthMB })
		add("Peak CPU of the redis-server", "% of a core", true, func(x StormResult) float64 { return x.RedisPeakCPUPercent })
		add("CPU of the redis-server until all back", "s", true, func(x StormResult) float64 { return x.RedisCPUSeconds })
		add("Messages published", "", false, func(x StormResult) float64 { return float64(x.Published) })
		add("Deliveries", "", false, func(x StormResult) float64 { return float64(x.Deliveries) })
		add("Lost", "deliveries", true, func(x StormResult) float64 { return float64(x.Lost) })
		add("Duplicated", "", true, func(x StormResult) float64 { return float64(x.Duplicated) })
		add("Out of order", "", true, func(x StormResult) float64 { return float64(x.OutOfOrder) })
		add("Clients not connected when counted", "", true, func(x StormResult) float64 { return float64(x.DownAtEnd) })
		add("Load generator CPU until all back", "s", true, func(x StormResult) float64 { return x.LoadCPUSeconds })
		tables = append(tables, t)
	}
	return tables
}
