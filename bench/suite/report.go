package suite

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/heraldrt/herald/bench/loadgen"
)

// IdleFigures are the idle scenario's measurements of one server.
type IdleFigures struct {
	Conns          int     `json:"conns"`
	Failed         int     `json:"failed"`
	ConnectSeconds float64 `json:"connectSeconds"`
	RSSBefore      int64   `json:"rssBefore"`
	RSSAfter       int64   `json:"rssAfter"`
	HeapBefore     float64 `json:"heapInuseBefore,omitempty"`
	HeapAfter      float64 `json:"heapInuseAfter,omitempty"`
	RSSPerConnKB   float64 `json:"rssPerConnKB"`
	HeapPerConnKB  float64 `json:"heapPerConnKB,omitempty"`
	CPUPercent     float64 `json:"cpuPercent"`
}

func (f *IdleFigures) compute() {
	if f.Conns == 0 {
		return
	}
	f.RSSPerConnKB = float64(f.RSSAfter-f.RSSBefore) / float64(f.Conns) / 1024
	if f.HeapAfter > 0 {
		f.HeapPerConnKB = (f.HeapAfter - f.HeapBefore) / float64(f.Conns) / 1024
	}
}

// Machine describes where the suite ran.
type Machine struct {
	CPUs     int               `json:"cpus"`
	Model    string            `json:"model"`
	Kernel   string            `json:"kernel"`
	Go       string            `json:"go"`
	Node     string            `json:"node"`
	Redis    string            `json:"redis"`
	Packages map[string]string `json:"packages"`
}

// Report is everything a Run measured; results.json is its JSON form.
type Report struct {
	Started   time.Time                                  `json:"started"`
	Finished  time.Time                                  `json:"finished"`
	Command   string                                     `json:"command"`
	Quick     bool                                       `json:"quick"`
	Machine   Machine                                    `json:"machine"`
	Params    map[string]string                          `json:"params"`
	Targets   []string                                   `json:"targets"`
	Idle      map[string]*IdleFigures                    `json:"idle"`
	Broadcast map[string]map[string][]loadgen.StepResult `json:"broadcast"`
	Ramp      map[string]loadgen.RampResult              `json:"ramp"`
	Churn     map[string][]loadgen.ChurnResult           `json:"churn"`
	// Proxy holds the proxy scenario's churn results by column (ProxyJWT,
	// ProxyConnect).
	Proxy        map[string][]loadgen.ChurnResult           `json:"proxy,omitempty"`
	ClusterFixed map[string]map[string][]loadgen.StepResult `json:"clusterFixed"`
	ClusterRamp  map[string]loadgen.RampResult              `json:"clusterRamp"`
	// ClusterIdle is the cluster's nodes' RSS growth (summed; the shared
	// redis-server is not counted) once its subscribers are connected.
	ClusterIdle map[string]*IdleFigures `json:"clusterIdle,omitempty"`
	// Storm holds the storm scenario's results, one per target and signal.
	Storm  []StormResult `json:"storm,omitempty"`
	Errors []string      `json:"errors,omitempty"`

	fixedRate  float64
	nodes      int
	stormNodes int
}

func newReport(o Options) *Report {
	return &Report{
		Started: time.Now(), Command: o.Command, Quick: o.Quick, Machine: describeMachine(o),
		Targets: o.Targets,
		Params: map[string]string{
			"connections":        fmt.Sprint(o.Conns),
			"rooms":              fmt.Sprint(o.Rooms),
			"publishers":         fmt.Sprint(o.Publishers),
			"connections/worker": fmt.Sprint(o.WorkerConns),
			"source addresses":   fmt.Sprintf("127.0.0.2–127.0.0.%d", 1+o.SourceIPs),
			"repetitions":        fmt.Sprint(o.Reps),
			"step":               o.StepDuration.String(),
			"drain timeout":      o.DrainTimeout.String(),
			"idle settle/window": o.IdleSettle.String() + " / " + o.IdleWindow.String(),
			"fixed rate":         fmt.Sprintf("%.0f deliveries/s", o.FixedRate),
			"payloads":           fmt.Sprint(o.Payloads),
			"ramp":               fmt.Sprint(o.RampRates),
			"p99 bound":          o.P99Bound.String(),
			"churn":              fmt.Sprintf("%s, %d concurrent", o.ChurnTime, o.ChurnConc),
			"cluster nodes":      clusterNodesParam(o),
		},
		Idle: map[string]*IdleFigures{}, Broadcast: map[string]map[string][]loadgen.StepResult{},
		Ramp: map[string]loadgen.RampResult{}, Churn: map[string][]loadgen.ChurnResult{}, Proxy: map[string][]loadgen.ChurnResult{},
		ClusterFixed: map[string]map[string][]loadgen.StepResult{}, ClusterRamp: map[string]loadgen.RampResult{},
		ClusterIdle: map[string]*IdleFigures{},
		fixedRate:   o.FixedRate, nodes: o.ClusterNodes, stormNodes: o.Storm.Nodes,
	}
}

// clusterNodesParam describes the cluster's nodes and their GOMAXPROCS.
func clusterNodesParam(o Options) string {
	if p := o.clusterProcs(runtime.NumCPU()); p > 0 {
		return fmt.Sprintf("%d (Herald nodes with GOMAXPROCS=%d each)", o.ClusterNodes, p)
	}
	return fmt.Sprintf("%d (Herald nodes with Go's default GOMAXPROCS)", o.ClusterNodes)
}

func execOutput(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(out))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s, nil
}

func describeMachine(o Options) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Packages: map[string]string{}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	ctx := context.Background()
	m.Node = toolVersion(ctx, o.NodeBin, "--version")
	m.Redis = toolVersion(ctx, o.RedisBin, "--version")
	for _, p := range []string{"ws", "socket.io", "@socket.io/redis-adapter", "redis"} {
		b, err := os.ReadFile(filepath.Join(o.PeersDir, "node_modules", p, "package.json"))
		if err != nil {
			continue
		}
		var v struct{ Version string }
		if json.Unmarshal(b, &v) == nil {
			m.Packages[p] = v.Version
		}
	}
	return m
}

// Row is one metric of a table: a value per column (NaN: not measured).
type Row struct {
	Metric      string
	Unit        string
	LowerBetter bool
	Values      map[string]float64
}

// Table is one scenario's side-by-side comparison.
type Table struct {
	Name    string // file name of its chart, without .svg
	Title   string
	Note    string
	Columns []string // targets
	Rows    []Row
}

var targetLabels = map[string]string{
	TargetHerald: "Herald", TargetHeraldHistory: "Herald + history", TargetHeraldBase: "Herald (base)", TargetHeraldSocketIO: "Herald (Socket.IO)", TargetHeraldMixed: "Herald (v1 + Socket.IO)", TargetWS: "Node ws", TargetSocketIO: "Socket.IO", TargetFloor: "Floor",
}

func label(t string) string {
	if l, ok := targetLabels[t]; ok {
		return l
	}
	return t
}

// medianOf returns the median of f over results (NaN for none).
func medianOf[T any](xs []T, f func(T) float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var v []float64
	for _, x := range xs {
		v = append(v, f(x))
	}
	return loadgen.Median(v)
}

func stepRows(results map[string][]loadgen.StepResult, targets []string) []Row {
	type metric struct {
		name, unit string
		lower      bool
		f          func(loadgen.StepResult) float64
	}
	metrics := []metric{
		{"Delivered", "msgs/s", false, func(s loadgen.StepResult) float64 { return s.DeliveriesPerSec }},
		{"Latency p50", "ms", true, func(s loadgen.StepResult) float64 { return s.Latency.P50 }},
		{"Latency p95", "ms", true, func(s loadgen.StepResult) float64 { return s.Latency.P95 }},
		{"Latency p99", "ms", true, func(s loadgen.StepResult) float64 { return s.Latency.P99 }},
		{"Latency p99.9", "ms", true, func(s loadgen.StepResult) float64 { return s.Latency.P999 }},
		{"Lost", "msgs", true, func(s loadgen.StepResult) float64 { return float64(s.Lost) }},
		{"Server CPU per delivery", "µs", true, func(s loadgen.StepResult) float64 { return s.ServerCPUPerDeliveryUs }},
		{"Load generator CPU per delivery", "µs", true, func(s loadgen.StepResult) float64 { return s.LoadCPUPerDeliveryUs }},
		// Not a property of the target: what else the machine ran during
		// its steps. Latencies of targets whose figures here differ much
		// were measured on different machines, in effect.
		{"Other processes' CPU during the steps", "% of a core", true, func(s loadgen.StepResult) float64 { return s.OthersCPUPercent }},
	}
	mixed := false
	for _, t := range targets {
		for _, r := range results[t] {
			mixed = mixed || r.LatencyMix != nil
		}
	}
	if mixed {
		// herald-mixed: Latency is its v1 subscribers', these its
		// Socket.IO subscribers' of the same broadcasts.
		mix := func(f func(loadgen.Summary) float64) func(loadgen.StepResult) float64 {
			return func(s loadgen.StepResult) float64 {
				if s.LatencyMix == nil {
					return math.NaN()
				}
				return f(*s.LatencyMix)
			}
		}
		metrics = append(metrics,
			metric{"Latency p50, Socket.IO subscribers of the same broadcasts", "ms", true, mix(func(s loadgen.Summary) float64 { return s.P50 })},
			metric{"Latency p99, Socket.IO subscribers of the same broadcasts", "ms", true, mix(func(s loadgen.Summary) float64 { return s.P99 })},
			metric{"Latency p99.9, Socket.IO subscribers of the same broadcasts", "ms", true, mix(func(s loadgen.Summary) float64 { return s.P999 })})
	}
	var rows []Row
	for _, m := range metrics {
		row := Row{Metric: m.name, Unit: m.unit, LowerBetter: m.lower, Values: map[string]float64{}}
		for _, t := range targets {
			row.Values[t] = medianOf(results[t], m.f)
		}
		rows = append(rows, row)
	}
	return rows
}

// Tables builds the side-by-side tables of every scenario that ran.
func (rep *Report) Tables() []Table {
	var tables []Table
	ts := rep.Targets
	nan := math.NaN()
	if len(rep.Idle) > 0 {
		t := Table{Name: "idle", Title: "Idle connections", Columns: ts,
			Note: "RSS growth of the server process from before connecting to after the settle time, divided by the connections; CPU over the idle window. Heartbeats at each server's default (Herald: ping every 30 s; ws peer: none; Socket.IO: ping every 25 s)."}
		rows := []Row{
			{Metric: "Connections held", Unit: "conns"},
			{Metric: "RSS per connection", Unit: "KB", LowerBetter: true},
			{Metric: "Go heap in use per connection", Unit: "KB", LowerBetter: true},
			{Metric: "Idle server CPU", Unit: "% of a core", LowerBetter: true},
			{Metric: "Time to connect all", Unit: "s", LowerBetter: true},
		}
		for i := range rows {
			rows[i].Values = map[string]float64{}
		}
		for _, tg := range ts {
			f := rep.Idle[tg]
			if f == nil {
				for i := range rows {
					rows[i].Values[tg] = nan
				}
				continue
			}
			rows[0].Values[tg] = float64(f.Conns)
			rows[1].Values[tg] = f.RSSPerConnKB
			rows[2].Values[tg] = nan
			if f.HeapAfter > 0 {
				rows[2].Values[tg] = f.HeapPerConnKB
			}
			rows[3].Values[tg] = f.CPUPercent
			rows[4].Values[tg] = f.ConnectSeconds
		}
		t.Rows = rows
		tables = append(tables, t)
	}
	labels := map[string]bool{}
	for _, m := range rep.Broadcast {
		for l := range m {
			labels[l] = true
		}
	}
	for _, l := range sortedLabels(labels) {
		res := map[string][]loadgen.StepResult{}
		for _, tg := range ts {
			res[tg] = rep.Broadcast[tg][l]
		}
		tables = append(tables, Table{
			Name:    "broadcast-" + strings.ToLower(strings.ReplaceAll(l, " ", "")),
			Title:   fmt.Sprintf("Broadcast, %s payload, %.0f deliveries/s offered", l, rep.fixedRate),
			Note:    "Median of the repetitions. Latency is publish→deliver (send timestamp in the payload). Server CPU is utime+stime of the server process over the step divided by the deliveries.",
			Columns: ts, Rows: stepRows(res, ts),
		})
	}
	if len(rep.Ramp) > 0 {
		tables = append(tables, rampTable("ramp", "Highest sustained broadcast rate (100 B, 0 lost, p99 under the bound)", rep.Ramp, ts))
	}
	if t, ok := rep.historyTable(); ok {
		tables = append(tables, t)
	}
	if len(rep.Churn) > 0 {
		chs := ts
		t := Table{Name: "churn", Title: "Connection churn with JWT verification", Columns: chs,
			Note: "Connect, upgrade with an Authorization: Bearer HS256 token, wait for the welcome (Socket.IO: the CONNECT reply), close; concurrent loops over all source addresses. Median of the repetitions. Floor: the handshake floor (bench/floor with the same secret: one epoll loop verifies the token and writes the 101 and the welcome in one write), the least a server does for such a connect."}
		for _, m := range churnMetrics() {
			row := Row{Metric: m.name, Unit: m.unit, LowerBetter: m.lower, Values: map[string]float64{}}
			for _, tg := range chs {
				row.Values[tg] = medianOf(rep.Churn[tg], m.f)
			}
			t.Rows = append(t.Rows, row)
		}
		tables = append(tables, t)
	}
	if len(rep.Proxy) > 0 {
		cols := []string{ProxyJWT, ProxyConnect}
		t := Table{Name: "proxy", Title: "Connects with the connect hook sent to the application's backend, vs JWT only", Columns: cols,
			Note: "One Herald node. JWT only: the churn scenario (HS256 verified on the node). Connect proxy: no JWT on the node; each upgrade is one signed POST /connect to a local Go backend that verifies the HMAC and allows it (keep-alive HTTP/1.1; the backend's CPU is not in the server CPU). Median of the repetitions."}
		for _, m := range churnMetrics() {
			row := Row{Metric: m.name, Unit: m.unit, LowerBetter: m.lower, Values: map[string]float64{}}
			for _, c := range cols {
				row.Values[c] = medianOf(rep.Proxy[c], m.f)
			}
			t.Rows = append(t.Rows, row)
		}
		tables = append(tables, t)
	}
	if len(rep.ClusterRamp) > 0 || len(rep.ClusterFixed) > 0 {
		var cts []string
		for _, tg := range ts {
			if tg != TargetWS && tg != TargetFloor {
				cts = append(cts, tg)
			}
		}
		t := Table{Name: "cluster", Title: fmt.Sprintf("Cluster: %d nodes sharing one redis-server vs one node", rep.nodes), Columns: cts,
			Note: "Subscribers spread evenly over the nodes, the publisher on the first node. Single-node figures are from the idle and broadcast scenarios of the same run. Cluster CPU sums every node and redis-server; cluster RSS sums the nodes' growth from before connecting to after the idle settle time (redis-server not counted)."}
		row := func(name, unit string, lower bool, f func(tg string) float64) {
			r := Row{Metric: name, Unit: unit, LowerBetter: lower, Values: map[string]float64{}}
			for _, tg := range cts {
				r.Values[tg] = f(tg)
			}
			t.Rows = append(t.Rows, r)
		}
		maxOK := func(m map[string]loadgen.RampResult, tg string) float64 {
			r, ok := m[tg]
			if !ok {
				return nan
			}
			return r.MaxOK.DeliveriesPerSec
		}
		row("Highest sustained, one node", "msgs/s", false, func(tg string) float64 { return maxOK(rep.Ramp, tg) })
		row("Highest sustained, cluster", "msgs/s", false, func(tg string) float64 { return maxOK(rep.ClusterRamp, tg) })
		row("Cluster / one node", "×", false, func(tg string) float64 {
			a, b := maxOK(rep.ClusterRamp, tg), maxOK(rep.Ramp, tg)
			if b == 0 || math.IsNaN(b) {
				return nan
			}
			return a / b
		})
		idleKB := func(m map[string]*IdleFigures, tg string) float64 {
			if f := m[tg]; f != nil && f.Conns > 0 {
				return f.RSSPerConnKB
			}
			return nan
		}
		row("Idle RSS per connection, one node", "KB", true, func(tg string) float64 { return idleKB(rep.Idle, tg) })
		row("Idle RSS per connection, cluster nodes", "KB", true, func(tg string) float64 { return idleKB(rep.ClusterIdle, tg) })
		fixed := func(tg string, f func(loadgen.StepResult) float64) float64 {
			return medianOf(rep.ClusterFixed[tg]["100 B"], f)
		}
		row(fmt.Sprintf("Cluster p99 at %.0f/s", rep.fixedRate), "ms", true, func(tg string) float64 {
			return fixed(tg, func(s loadgen.StepResult) float64 { return s.Latency.P99 })
		})
		row(fmt.Sprintf("Cluster lost at %.0f/s", rep.fixedRate), "msgs", true, func(tg string) float64 {
			return fixed(tg, func(s loadgen.StepResult) float64 { return float64(s.Lost) })
		})
		row(fmt.Sprintf("Cluster CPU per delivery at %.0f/s", rep.fixedRate), "µs", true, func(tg string) float64 {
			return fixed(tg, func(s loadgen.StepResult) float64 { return s.ServerCPUPerDeliveryUs })
		})
		row(fmt.Sprintf("One-node CPU per delivery at %.0f/s", rep.fixedRate), "µs", true, func(tg string) float64 {
			return medianOf(rep.Broadcast[tg]["100 B"], func(s loadgen.StepResult) float64 { return s.ServerCPUPerDeliveryUs })
		})
		tables = append(tables, t)
	}
	return append(tables, rep.stormTables()...)
}

// historyTable compares herald with herald-history when both ran the
// broadcast scenario: the ramp ceilings, their ratio, and the fixed-rate
// step's latency, losses and CPU per delivery.
func (rep *Report) historyTable() (Table, bool) {
	off, okOff := rep.Ramp[TargetHerald]
	on, okOn := rep.Ramp[TargetHeraldHistory]
	if !okOff || !okOn {
		return Table{}, false
	}
	cols := []string{TargetHerald, TargetHeraldHistory}
	t := Table{Name: "history", Title: "Room history on vs off, one node (100 B)", Columns: cols,
		Note: fmt.Sprintf("The same herald serve, without and with --history '%s' (every bench room keeps its last 1,000 messages; one node: the memory engine). Ceilings from the ramp; the other rows at the fixed rate of %.0f deliveries/s (median of the repetitions).", HistoryRule, rep.fixedRate)}
	add := func(name, unit string, lower bool, v func(tg string) float64) {
		r := Row{Metric: name, Unit: unit, LowerBetter: lower, Values: map[string]float64{}}
		for _, tg := range cols {
			r.Values[tg] = v(tg)
		}
		t.Rows = append(t.Rows, r)
	}
	ceiling := map[string]float64{TargetHerald: off.MaxOK.DeliveriesPerSec, TargetHeraldHistory: on.MaxOK.DeliveriesPerSec}
	add("Highest sustained", "deliveries/s", false, func(tg string) float64 { return ceiling[tg] })
	add("Ceiling / ceiling without history", "×", false, func(tg string) float64 {
		if ceiling[TargetHerald] == 0 {
			return math.NaN()
		}
		return ceiling[tg] / ceiling[TargetHerald]
	})
	add("p99 at the ceiling", "ms", true, func(tg string) float64 { return rep.Ramp[tg].MaxOK.Latency.P99 })
	fixed := func(f func(loadgen.StepResult) float64) func(tg string) float64 {
		return func(tg string) float64 { return medianOf(rep.Broadcast[tg]["100 B"], f) }
	}
	add(fmt.Sprintf("p99 at %.0f/s", rep.fixedRate), "ms", true, fixed(func(s loadgen.StepResult) float64 { return s.Latency.P99 }))
	add(fmt.Sprintf("Lost at %.0f/s", rep.fixedRate), "msgs", true, fixed(func(s loadgen.StepResult) float64 { return float64(s.Lost) }))
	add(fmt.Sprintf("Server CPU per delivery at %.0f/s", rep.fixedRate), "µs", true, fixed(func(s loadgen.StepResult) float64 { return s.ServerCPUPerDeliveryUs }))
	return t, true
}

func rampTable(name, title string, ramps map[string]loadgen.RampResult, ts []string) Table {
	t := Table{Name: name, Title: title, Columns: ts,
		Note: "The offered rate rises step by step until a step loses a message or its p99 exceeds the bound; the highest delivered rate of a passing step is reported."}
	rows := []Row{
		{Metric: "Highest sustained", Unit: "deliveries/s"},
		{Metric: "p99 at that rate", Unit: "ms", LowerBetter: true},
		{Metric: "Server CPU per delivery at that rate", Unit: "µs", LowerBetter: true},
		{Metric: "First failing offered rate", Unit: "deliveries/s"},
	}
	for i := range rows {
		rows[i].Values = map[string]float64{}
	}
	for _, tg := range ts {
		r, ok := ramps[tg]
		if !ok {
			for i := range rows {
				rows[i].Values[tg] = math.NaN()
			}
			continue
		}
		rows[0].Values[tg] = r.MaxOK.DeliveriesPerSec
		rows[1].Values[tg] = r.MaxOK.Latency.P99
		rows[2].Values[tg] = r.MaxOK.ServerCPUPerDeliveryUs
		rows[3].Values[tg] = math.NaN()
		if n := len(r.Steps); n > 0 && !r.Steps[n-1].OK(time.Duration(r.Bound*float64(time.Millisecond))) {
			rows[3].Values[tg] = r.Steps[n-1].OfferedDeliveriesPerSec
		}
	}
	t.Rows = rows
	return t
}

func sortedLabels(m map[string]bool) []string {
	var out []string
	for _, l := range []string{"100 B", "4 KB"} {
		if m[l] {
			out = append(out, l)
			delete(m, l)
		}
	}
	for l := range m {
		out = append(out, l)
	}
	return out
}

// write stores results.json, report.md and the charts in o.OutDir, and
// updates o.DocsFile when set.
func (rep *Report) write(o Options) error {
	if err := writeJSON(filepath.Join(o.OutDir, "results.json"), rep); err != nil {
		return err
	}
	tables := rep.Tables()
	for _, t := range tables {
		if err := os.WriteFile(filepath.Join(o.OutDir, t.Name+".svg"), []byte(RenderSVG(t)), 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(o.OutDir, "report.md"), []byte(rep.Markdown(tables, "")), 0o644); err != nil {
		return err
	}
	if o.DocsFile == "" {
		return nil
	}
	if !o.fullRun() {
		// A subset (some targets or scenarios, or --quick) keeps the
		// full run's standings: its report is in OutDir only.
		return nil
	}
	if o.DocsSVG != "" {
		if err := os.MkdirAll(o.DocsSVG, 0o755); err != nil {
			return err
		}
		for _, t := range tables {
			if err := os.WriteFile(filepath.Join(o.DocsSVG, t.Name+".svg"), []byte(RenderSVG(t)), 0o644); err != nil {
				return err
			}
		}
	}
	prefix := ""
	if o.DocsSVG != "" {
		rel, err := filepath.Rel(filepath.Dir(o.DocsFile), o.DocsSVG)
		if err == nil {
			prefix = filepath.ToSlash(rel) + "/"
		}
	}
	return UpdateDocs(o.DocsFile, rep.Markdown(tables, prefix))
}

// churnMetric is one row of a churn table.
type churnMetric struct {
	name, unit string
	lower      bool
	f          func(loadgen.ChurnResult) float64
}

func churnMetrics() []churnMetric {
	return []churnMetric{
		{"Connects", "per s", false, func(c loadgen.ChurnResult) float64 { return c.ConnectsPerSec }},
		{"Connect latency p50", "ms", true, func(c loadgen.ChurnResult) float64 { return c.Latency.P50 }},
		{"Connect latency p99", "ms", true, func(c loadgen.ChurnResult) float64 { return c.Latency.P99 }},
		{"Server CPU per connect", "µs", true, func(c loadgen.ChurnResult) float64 { return c.ServerCPUPerConn }},
		{"Failed connects", "", true, func(c loadgen.ChurnResult) float64 { return float64(c.Failures) }},
	}
}
