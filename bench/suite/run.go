package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	jwtauth "github.com/heraldrt/herald/auth/jwt"
	"github.com/heraldrt/herald/bench/loadgen"
)

type runner struct {
	opts   Options
	log    io.Writer
	report *Report
	n      atomic.Int64
	// freePort picks the ports servers are started on (nil: the
	// package's freePort); a test hands out a taken one.
	freePort func() (int, error)
}

func (r *runner) seq() int64 { return r.n.Add(1) }

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Run executes the scenarios of o against every target and writes the
// report into o.OutDir. Progress goes to log.
func Run(ctx context.Context, o Options, log io.Writer) (*Report, error) {
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
		o.OutDir = filepath.Join("bench", "results", time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(filepath.Join(o.OutDir, "logs"), 0o755); err != nil {
		return nil, err
	}
	r := &runner{opts: o, log: log, report: newReport(o)}
	r.logf("results in %s", o.OutDir)
	if o.DocsFile != "" && !o.fullRun() {
		r.logf("not a full run (every default target and scenario, not quick): %s is left as it is", o.DocsFile)
	}
	single := o.has(ScenarioIdle) || o.has(ScenarioBroadcast)
	for _, t := range o.Targets {
		if single {
			r.guard(t, "single node", func() error { return r.singleNode(ctx, t) })
		}
	}
	if o.has(ScenarioChurn) {
		r.churnAll(ctx)
	}
	if o.has(ScenarioProxy) && slices.Contains(o.Targets, TargetHerald) {
		r.guard(TargetHerald, "connect proxy", func() error { return r.proxy(ctx) })
	}
	if o.has(ScenarioCluster) {
		for _, t := range o.Targets {
			if t == TargetWS || t == TargetFloor {
				continue // no cross-node fan-out
			}
			r.guard(t, "cluster", func() error { return r.cluster(ctx, t) })
		}
	}
	if o.has(ScenarioStorm) {
		for _, t := range o.Targets {
			if t != TargetHerald && t != TargetSocketIO {
				continue // the Go client and the cluster peer only
			}
			r.guard(t, "storm", func() error { return r.storm(ctx, t) })
		}
	}
	r.report.Finished = time.Now()
	if err := r.report.write(o); err != nil {
		return r.report, err
	}
	r.logf("report: %s", filepath.Join(o.OutDir, "report.md"))
	return r.report, ctx.Err()
}

// guard runs one part of the suite; a failure is recorded in the report
// and the suite goes on with the next part.
func (r *runner) guard(target, what string, f func() error) {
	r.logf("== %s: %s", target, what)
	if err := f(); err != nil {
		msg := fmt.Sprintf("%s %s: %v", target, what, err)
		r.logf("FAILED: %s", msg)
		r.report.Errors = append(r.report.Errors, msg)
	}
}

func (r *runner) workerStarter() loadgen.WorkerStarter {
	return func(ctx context.Context, spec loadgen.WorkerSpec) (*loadgen.WorkerHandle, error) {
		return loadgen.StartProcessWorker(ctx, r.opts.HeraldBin, []string{"bench", "worker"}, spec, r.log)
	}
}

func (r *runner) subscriberSpecs(d *deployment, mode string) []loadgen.WorkerSpec {
	base := loadgen.WorkerSpec{
		Kind: d.kind, URLs: d.urls(), Mode: mode, Conns: r.opts.Conns, Rooms: r.opts.Rooms,
		SourceIPs: sourceIPs(r.opts.SourceIPs),
	}
	if d.target == TargetHeraldMixed && mode == "subscribe" {
		base.MixKind = loadgen.KindHeraldSocketIO
		for _, b := range d.bases {
			base.MixURLs = append(base.MixURLs, base.MixKind.EndpointURL(b))
		}
	}
	return loadgen.SplitSpecs(base, r.opts.WorkerConns)
}

// singleNode measures idle and broadcast on one node of target, on one set
// of connections: idle first, then the fixed-rate steps, then the ramp.
func (r *runner) singleNode(ctx context.Context, target string) error {
	o := r.opts
	d, err := r.deploy(ctx, target, deployConfig{nodes: 1})
	if err != nil {
		return err
	}
	defer d.stop()
	time.Sleep(time.Second)
	pid := d.nodes[0].pid()
	idle := &IdleFigures{}
	idle.RSSBefore, _ = loadgen.ProcRSS(pid)
	if d.metricsURL != "" {
		idle.HeapBefore, _ = loadgen.ScrapeMetric(ctx, d.metricsURL, "go_memstats_heap_inuse_bytes")
	}
	r.logf("connecting %d subscribers to %s", o.Conns, target)
	fleet, err := loadgen.StartFleet(ctx, r.subscriberSpecs(d, "subscribe"), r.workerStarter())
	if err != nil {
		return err
	}
	defer fleet.Close()
	r.logf("connected %d (failed %d) in %.1fs %s", fleet.Connected, fleet.Failed, fleet.ConnectIn.Seconds(), fleet.FirstErr)
	idle.Conns, idle.Failed, idle.ConnectSeconds = fleet.Connected, fleet.Failed, fleet.ConnectIn.Seconds()
	if fleet.Connected == 0 {
		return fmt.Errorf("no subscriber connected: %s", fleet.FirstErr)
	}
	time.Sleep(o.IdleSettle)
	idle.RSSAfter, _ = loadgen.ProcRSS(pid)
	if d.metricsURL != "" {
		idle.HeapAfter, _ = loadgen.ScrapeMetric(ctx, d.metricsURL, "go_memstats_heap_inuse_bytes")
	}
	cpu0 := loadgen.SumCPU([]int{pid})
	time.Sleep(o.IdleWindow)
	idle.CPUPercent = 100 * (loadgen.SumCPU([]int{pid}) - cpu0).Seconds() / o.IdleWindow.Seconds()
	idle.compute()
	r.report.Idle[target] = idle
	r.logf("idle: %.2f KB/conn RSS, %.2f KB/conn heap, %.2f%% CPU", idle.RSSPerConnKB, idle.HeapPerConnKB, idle.CPUPercent)
	if !o.has(ScenarioBroadcast) {
		return nil
	}
	return r.broadcast(ctx, d, fleet, r.report.Broadcast, r.report.Ramp)
}

// broadcast runs the fixed-rate steps and the ramp on fleet.
func (r *runner) broadcast(ctx context.Context, d *deployment, fleet *loadgen.Fleet, fixed map[string]map[string][]loadgen.StepResult, ramps map[string]loadgen.RampResult) error {
	o := r.opts
	pub, err := loadgen.NewPublisher(ctx, d.kind, d.urls()[0], o.Rooms, o.Publishers, nil, nil)
	if err != nil {
		return err
	}
	defer pub.Close()
	base := loadgen.StepConfig{
		Duration: o.StepDuration, DrainTimeout: o.DrainTimeout,
		ServerPIDs: d.serverPIDs(), LoadPIDs: append(fleet.PIDs(), os.Getpid()),
	}
	step := 0
	if fixed[d.target] == nil {
		fixed[d.target] = map[string][]loadgen.StepResult{}
	}
	for _, size := range o.Payloads {
		label := payloadLabel(size)
		for rep := 0; rep < o.Reps; rep++ {
			c := base
			c.Step, c.DeliveriesPerSec, c.PayloadBytes = step, o.FixedRate, size
			step++
			res, err := loadgen.RunBroadcastStep(ctx, fleet, pub, c)
			if err != nil {
				return err
			}
			fixed[d.target][label] = append(fixed[d.target][label], res)
			r.logf("broadcast %s @%.0f/s rep %d: %.0f deliveries/s, p50 %.2f p99 %.2f p99.9 %.2f ms, lost %d, %.2f µs/delivery server, %.2f µs loadgen; others %.0f%% of a core, load %s",
				label, o.FixedRate, rep+1, res.DeliveriesPerSec, res.Latency.P50, res.Latency.P99, res.Latency.P999,
				res.Lost, res.ServerCPUPerDeliveryUs, res.LoadCPUPerDeliveryUs, res.OthersCPUPercent, res.LoadAvg)
			if m := res.LatencyMix; m != nil {
				r.logf("  of it Socket.IO subscribers: p50 %.2f p99 %.2f p99.9 %.2f ms (v1 subscribers of the same broadcasts: p50 %.2f p99 %.2f p99.9 %.2f ms)",
					m.P50, m.P99, m.P999, res.Latency.P50, res.Latency.P99, res.Latency.P999)
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	c := base
	c.PayloadBytes = 100
	ramp, _, err := loadgen.Ramp(ctx, fleet, pub, c, step, o.RampRates, o.P99Bound, r.logf)
	ramps[d.target] = ramp
	if err != nil {
		return err
	}
	r.logf("ramp: highest sustained %.0f deliveries/s (p99 %.1f ms)", ramp.MaxOK.DeliveriesPerSec, ramp.MaxOK.Latency.P99)
	if off, ok := ramps[TargetHerald]; ok && d.target == TargetHeraldHistory && off.MaxOK.DeliveriesPerSec > 0 {
		r.logf("history on / off: %.3f× of the ceiling", ramp.MaxOK.DeliveriesPerSec/off.MaxOK.DeliveriesPerSec)
	}
	return nil
}

func payloadLabel(size int) string {
	if size >= 1024 && size%1024 == 0 {
		return fmt.Sprintf("%d KB", size/1024)
	}
	return fmt.Sprintf("%d B", size)
}

// churnAll measures connects per second, each verifying a JWT, for
// every target. The targets are started first and their repetitions
// interleaved, the order turned by one each round (herald, base, floor;
// then base, floor, herald; ...), so that each target takes each place
// once in three rounds. Run one target after the other, whichever came
// first read the slowest: this machine takes about half a minute of
// connects to warm up (the same build, alone, twice in a row: 69 then 61
// µs per connect, medians of three), and the first target paid it all.
func (r *runner) churnAll(ctx context.Context) {
	var ts []string
	ds := make(map[string]*deployment)
	for _, t := range r.opts.Targets {
		r.guard(t, "churn: start", func() error {
			d, err := r.deploy(ctx, t, deployConfig{nodes: 1, jwt: true})
			if err != nil {
				return err
			}
			ds[t] = d
			ts = append(ts, t)
			return nil
		})
	}
	defer func() {
		for _, d := range ds {
			d.stop()
		}
	}()
	failed := make(map[string]bool)
	for rep := 0; rep < r.opts.Reps && ctx.Err() == nil; rep++ {
		for i := range ts {
			t := ts[(i+rep)%len(ts)]
			if failed[t] {
				continue
			}
			r.guard(t, fmt.Sprintf("churn rep %d", rep+1), func() error {
				err := r.churnOnce(ctx, ds[t], t, rep, func(res loadgen.ChurnResult) {
					r.report.Churn[t] = append(r.report.Churn[t], res)
				})
				failed[t] = err != nil
				return err
			})
		}
	}
}

// churnReps runs the churn measurement o.Reps times against d, each
// connect carrying a JWT, and hands each result to keep.
func (r *runner) churnReps(ctx context.Context, d *deployment, label string, keep func(loadgen.ChurnResult)) error {
	for rep := 0; rep < r.opts.Reps; rep++ {
		if err := r.churnOnce(ctx, d, label, rep, keep); err != nil {
			return err
		}
	}
	return nil
}

// churnOnce runs one churn measurement (repetition rep) against d and
// hands its result to keep.
func (r *runner) churnOnce(ctx context.Context, d *deployment, label string, rep int, keep func(loadgen.ChurnResult)) error {
	o := r.opts
	workers := max(1, min(4, o.ChurnConc/16))
	var specs []loadgen.WorkerSpec
	for w := 0; w < workers; w++ {
		tok, err := jwtauth.Sign([]byte(jwtSecret), fmt.Sprintf("bench-user-%d", w), nil, nil, time.Hour)
		if err != nil {
			return err
		}
		specs = append(specs, loadgen.WorkerSpec{
			Kind: d.kind, URLs: d.urls(), Mode: "churn", Offset: w * 7919,
			SourceIPs: sourceIPs(o.SourceIPs), Header: map[string]string{"Authorization": "Bearer " + tok},
			ChurnConcurrency: o.ChurnConc / workers, ChurnDuration: o.ChurnTime,
		})
	}
	res, err := loadgen.RunChurn(ctx, specs, r.workerStarter(), d.serverPIDs())
	if err != nil {
		return err
	}
	keep(res)
	r.logf("%s churn rep %d: %.0f connects/s, p99 %.1f ms, %.0f µs server CPU/connect, %d failed %s",
		label, rep+1, res.ConnectsPerSec, res.Latency.P99, res.ServerCPUPerConn, res.Failures, res.FirstErr)
	time.Sleep(time.Second)
	return nil
}

// cluster runs the broadcast scenario over o.ClusterNodes nodes sharing a
// redis-server, subscribers spread over the nodes, the publisher on the
// first.
func (r *runner) cluster(ctx context.Context, target string) error {
	o := r.opts
	d, err := r.deploy(ctx, target, deployConfig{nodes: o.ClusterNodes, procs: o.clusterProcs(runtime.NumCPU())})
	if err != nil {
		return err
	}
	defer d.stop()
	time.Sleep(time.Second)
	idle := &IdleFigures{RSSBefore: loadgen.SumRSS(d.nodePIDs())}
	r.logf("connecting %d subscribers over %d nodes", o.Conns, len(d.nodes))
	fleet, err := loadgen.StartFleet(ctx, r.subscriberSpecs(d, "subscribe"), r.workerStarter())
	if err != nil {
		return err
	}
	defer fleet.Close()
	r.logf("connected %d (failed %d) in %.1fs %s", fleet.Connected, fleet.Failed, fleet.ConnectIn.Seconds(), fleet.FirstErr)
	if fleet.Connected == 0 {
		return fmt.Errorf("no subscriber connected: %s", fleet.FirstErr)
	}
	time.Sleep(o.IdleSettle)
	idle.RSSAfter = loadgen.SumRSS(d.nodePIDs())
	idle.Conns, idle.Failed, idle.ConnectSeconds = fleet.Connected, fleet.Failed, fleet.ConnectIn.Seconds()
	idle.compute()
	r.report.ClusterIdle[target] = idle
	r.logf("cluster idle: %.2f KB/conn RSS over the nodes", idle.RSSPerConnKB)
	saved := r.opts.Payloads
	r.opts.Payloads = []int{100}
	defer func() { r.opts.Payloads = saved }()
	return r.broadcast(ctx, d, fleet, r.report.ClusterFixed, r.report.ClusterRamp)
}

// writeJSON writes v to path, indented.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// toolVersion runs bin with args and returns the first line of output.
func toolVersion(ctx context.Context, bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := execOutput(ctx, bin, args...)
	if err != nil {
		return "unavailable"
	}
	return out
}
