package suite

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Markdown renders the report: per engine, one table with a column per
// stage and the ratio of the last stage to the first, then every
// broadcast step.
func (rep *ScaleReport) Markdown() string {
	var b strings.Builder
	o := rep.Options
	fmt.Fprintf(&b, "## Scale: %d herald serve nodes on one box (%s)\n\n", o.Nodes, rep.Started.UTC().Format("2006-01-02 15:04 UTC"))
	if o.Command != "" {
		fmt.Fprintf(&b, "Command: `%s` (took %s).\n\n", o.Command, rep.Finished.Sub(rep.Started).Round(1e9))
	}
	fmt.Fprintf(&b, "Machine: %s. Load average at the start of each engine's run: %s.\n\n", rep.Machine, strings.Join(scaleTrimAll(rep.LoadAvg), "; "))
	fmt.Fprintf(&b, "Parameters: nodes %d (GOMAXPROCS=%d each); rooms %d; publishers %d (on the first node); connections/worker %d; "+
		"source addresses 127.0.0.2–127.0.0.%d; idle settle/window %s / %s; ramp rates %v broadcasts to every connection per second (refine %t), %s steps, drain %s, p99 bound %s; payload %d B; node flags %q.\n\n",
		o.Nodes, o.Procs, o.Rooms, o.Publishers, o.WorkerConns, 1+o.SourceIPs, o.IdleSettle, o.IdleWindow, o.Rounds, o.Refine, o.Step, o.Drain, o.P99Bound, o.Payload, strings.Join(o.NodeFlags, " "))
	for _, e := range rep.Errors {
		fmt.Fprintf(&b, "**Error:** %s\n\n", e)
	}
	for _, se := range rep.Engines {
		if len(se.Stages) == 0 {
			continue
		}
		fmt.Fprintf(&b, "### %s\n\n", engineTitle(se.Engine, o.Nodes))
		b.WriteString("| Metric |")
		for _, st := range se.Stages {
			fmt.Fprintf(&b, " %s conns |", scaleThousands(float64(st.Conns)))
		}
		b.WriteString(" last / first |\n|---|")
		for range se.Stages {
			b.WriteString("---:|")
		}
		b.WriteString("---:|\n")
		for _, row := range scaleRows(se.Stages) {
			fmt.Fprintf(&b, "| %s |", row.name)
			for _, v := range row.vals {
				fmt.Fprintf(&b, " %s |", row.format(v))
			}
			first, last := row.vals[0], row.vals[len(row.vals)-1]
			if first > 0 && !math.IsNaN(first) && !math.IsNaN(last) && len(row.vals) > 1 {
				fmt.Fprintf(&b, " %.2f× |\n", last/first)
			} else {
				b.WriteString(" — |\n")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("### Broadcast steps\n\n" +
		"A step publishes one message to each room in turn at the rate for the step's time; then every subscriber is checked against what its room was published. " +
		"Lost: deliveries missing after the drain (and publications the node refused, which count as lost). Short: subscribers that lacked a message (of those checked). Min/client: the fewest messages a subscriber's room got in the step. " +
		"Machine: the whole machine's busy CPU over the step, % of one core (all cores busy: 100 × cores); others: what of it neither the nodes, Redis nor the load generator used.\n\n" +
		"| Engine | Connections | Rounds/s | Published msgs/s | Offered (deliveries/s) | Delivered/s | p50 (ms) | p99 (ms) | Lost | Short (of checked) | Min/client | Disconnects | Nodes µs/delivery | Redis % of a core | Redis µs/delivery | Loadgen µs/delivery | Machine % (others) | Load avg | Pass |\n")
	b.WriteString("|---|" + strings.Repeat("---:|", 16) + "---|---|\n")
	for _, se := range rep.Engines {
		for _, st := range se.Stages {
			for _, s := range st.Steps {
				pass := "no"
				if s.OK {
					pass = "yes"
				}
				fmt.Fprintf(&b, "| %s | %s | %g | %s | %s | %s | %s | %s | %s | %s (%s) | %d | %d | %s | %s | %s | %s | %s (%s) | %s | %s |\n", se.Engine, scaleThousands(float64(st.Conns)), s.Rounds,
					scaleThousands(s.PublishedPerSec), scaleThousands(s.OfferedDeliveriesPerSec), scaleThousands(s.DeliveriesPerSec), scaleSig3(s.Latency.P50), scaleSig3(s.Latency.P99),
					scaleLost(s), scaleThousands(float64(s.ClientsShort)), scaleThousands(float64(s.Clients)), s.MinPerClient, s.Disconnects,
					scaleSig3(s.NodesCPUPerDeliveryUs), scaleSig3(s.RedisCPUPercent), scaleSig3(s.RedisCPUPerDeliveryUs), scaleSig3(s.LoadCPUPerDeliveryUs),
					scaleThousands(s.MachineCPUPercent), scaleThousands(s.OthersCPUPercent), s.LoadAvg, pass)
			}
		}
	}
	return b.String()
}

func engineTitle(engine string, nodes int) string {
	if engine == EngineRedisCluster {
		return fmt.Sprintf("%d nodes on a three-master Redis Cluster", nodes)
	}
	if engine == EngineRedisShared {
		return fmt.Sprintf("%d nodes on one redis-server, rooms on each node's one subscriber connection (--redis-shared-rooms)", nodes)
	}
	return fmt.Sprintf("%d nodes on one redis-server, a subscriber connection per room (the default)", nodes)
}

type scaleRow struct {
	name   string
	vals   []float64
	format func(float64) string
}

func scaleRows(stages []ScaleStage) []scaleRow {
	col := func(f func(ScaleStage) float64) []float64 {
		var out []float64
		for _, st := range stages {
			out = append(out, f(st))
		}
		return out
	}
	best := func(f func(*ScaleStep) float64) []float64 {
		return col(func(st ScaleStage) float64 {
			if st.Best == nil {
				return math.NaN()
			}
			return f(st.Best)
		})
	}
	// at returns f of each stage's step at the common rate: the same
	// message rate at every size.
	common := scaleCommonRounds(stages)
	at := func(f func(*ScaleStep) float64) []float64 {
		return col(func(st ScaleStage) float64 {
			// The passing attempt if one passed (a step failing only its
			// p99 bound is run twice).
			at := -1
			for i := range st.Steps {
				if st.Steps[i].Rounds == common && (at < 0 || st.Steps[i].OK && !st.Steps[at].OK) {
					at = i
				}
			}
			if at < 0 {
				return math.NaN()
			}
			return f(&st.Steps[at])
		})
	}
	first := fmt.Sprintf("%g round(s)/s", common)
	num, f3 := scaleThousands, scaleSig3
	return []scaleRow{
		{"Connections opened by the load generator", col(func(st ScaleStage) float64 { return float64(st.Conns) }), num},
		{"Failed connects", col(func(st ScaleStage) float64 { return float64(st.Failed) }), num},
		{"Connections the nodes hold after the settle time (publishers included)", col(func(st ScaleStage) float64 { return float64(scaleHeld(st)) }), num},
		{"Connections closed by the nodes so far (after the idle window)", col(func(st ScaleStage) float64 { return float64(st.LostIdle) }), num},
		{"Connections per node, fewest", col(func(st ScaleStage) float64 { return scaleMinOr(st.NodeConns) }), num},
		{"Connects/s of the stage's new connections", col(func(st ScaleStage) float64 { return scaleNewConns(stages, st) / st.ConnectSeconds }), num},
		{"Node RSS per connection, KB (median of nodes)", col(func(st ScaleStage) float64 { return scaleMedian(st.NodeRSSPerConn) }), f3},
		{"Node RSS per connection, KB (highest node)", col(func(st ScaleStage) float64 { return scaleMaxOr(st.NodeRSSPerConn) }), f3},
		{"Marginal node RSS per connection since the previous stage, KB (all nodes)", scaleMarginal(stages, func(st ScaleStage) float64 { return scaleSum(st.NodeRSSMB) * 1024 }), f3},
		{"Node Go heap in use per connection, KB (median)", col(func(st ScaleStage) float64 { return scaleMedian(st.NodeHeapPerConn) }), f3},
		{"Largest node RSS, MB", col(func(st ScaleStage) float64 { return scaleMaxOr(st.NodeRSSMB) }), f3},
		{"Kernel socket buffers (sockstat TCP mem) per held connection, KB, both ends", col(func(st ScaleStage) float64 { return st.SockstatPerConnKB }), f3},
		{"Kernel socket slabs (TCP, inode, file, dentry, epoll) per held connection, KB, both ends", col(func(st ScaleStage) float64 { return st.SlabPerConnKB }), f3},
		{"Idle CPU of all nodes, % of a core", col(func(st ScaleStage) float64 { return st.NodesIdleCPU }), f3},
		{"Marginal idle CPU per 10k connections since the previous stage, % of a core", scaleMarginal(stages, func(st ScaleStage) float64 { return st.NodesIdleCPU * 1e4 }), f3},
		{"Idle CPU per 10k connections, % of a core", col(func(st ScaleStage) float64 { return st.NodesIdleCPU * 1e4 / float64(max(1, scaleHeld(st))) }), f3},
		{"Redis idle CPU, % of a core", col(func(st ScaleStage) float64 { return st.RedisIdleCPU }), f3},
		{"Machine busy in the idle window, % of a core", col(func(st ScaleStage) float64 { return st.MachineIdleCPU }), num},
		{"Load average (1 min) at the idle window", col(func(st ScaleStage) float64 { return scaleLoad1(st.LoadAvg) }), f3},
		{"Marginal Redis RSS per connection since the previous stage, KB", scaleMarginal(stages, func(st ScaleStage) float64 { return st.RedisRSSMB * 1024 }), f3},
		{"Redis RSS, MB", col(func(st ScaleStage) float64 { return st.RedisRSSMB }), f3},
		{"Highest sustained broadcast to all, 0 lost, p99 under the bound (rounds/s)", best(func(s *ScaleStep) float64 { return s.Rounds }), f3},
		{"… in deliveries/s", best(func(s *ScaleStep) float64 { return s.DeliveriesPerSec }), num},
		{"… in messages/s published", best(func(s *ScaleStep) float64 { return s.PublishedPerSec }), num},
		{"p50 at that rate, ms", best(func(s *ScaleStep) float64 { return s.Latency.P50 }), f3},
		{"p99 at that rate, ms", best(func(s *ScaleStep) float64 { return s.Latency.P99 }), f3},
		{"Subscribers checked one by one at that rate (every one got every message)", best(func(s *ScaleStep) float64 { return float64(s.Clients) }), num},
		{"Nodes' CPU per delivery at that rate, µs", best(func(s *ScaleStep) float64 { return s.NodesCPUPerDeliveryUs }), f3},
		{"Redis CPU at that rate, % of a core", best(func(s *ScaleStep) float64 { return s.RedisCPUPercent }), f3},
		{"Machine busy at that rate, % of a core", best(func(s *ScaleStep) float64 { return s.MachineCPUPercent }), num},
		{"… of it not the nodes, Redis or the load generator, % of a core", best(func(s *ScaleStep) float64 { return s.OthersCPUPercent }), num},
		{"p99 at " + first + ", ms", at(func(s *ScaleStep) float64 { return s.Latency.P99 }), f3},
		{"Nodes' CPU per delivery at " + first + ", µs", at(func(s *ScaleStep) float64 { return s.NodesCPUPerDeliveryUs }), f3},
		{"Redis CPU at " + first + ", % of a core", at(func(s *ScaleStep) float64 { return s.RedisCPUPercent }), f3},
	}
}

// scaleLost is a step's lost deliveries, with the publications the node
// refused if any.
func scaleLost(s ScaleStep) string {
	if s.PublishErrors > 0 {
		return fmt.Sprintf("%d (%d refused)", s.Lost, s.PublishErrors)
	}
	return strconv.FormatInt(s.Lost, 10)
}

// scaleCommonRounds is the highest rate that passed at every stage, or
// else the highest run at every stage (0 if none).
func scaleCommonRounds(stages []ScaleStage) float64 {
	best := func(passed bool) float64 {
		var out float64
		if len(stages) == 0 {
			return 0
		}
		for _, s := range stages[0].Steps {
			if passed && !s.OK {
				continue
			}
			everywhere := true
			for _, st := range stages[1:] {
				found := false
				for _, t := range st.Steps {
					found = found || (t.Rounds == s.Rounds && (t.OK || !passed))
				}
				everywhere = everywhere && found
			}
			if everywhere && s.Rounds > out {
				out = s.Rounds
			}
		}
		return out
	}
	if r := best(true); r > 0 {
		return r
	}
	return best(false)
}

// scaleLoad1 is the 1-minute load average of a /proc/loadavg line (NaN if
// none).
func scaleLoad1(la string) float64 {
	fs := strings.Fields(la)
	if len(fs) == 0 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(fs[0], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

func scaleNewConns(stages []ScaleStage, st ScaleStage) float64 {
	prev := 0
	for _, s := range stages {
		if s.Conns == st.Conns {
			break
		}
		prev = s.Conns + s.Failed
	}
	return float64(st.Conns + st.Failed - prev)
}

func scaleMedian(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func scaleMaxOr[T int | float64](xs []T) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return float64(slices.Max(xs))
}

func scaleMinOr[T int | float64](xs []T) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return float64(slices.Min(xs))
}

func scaleTrimAll(xs []string) []string {
	var out []string
	for _, x := range xs {
		f := strings.Fields(x)
		if len(f) > 3 {
			f = f[:3]
		}
		out = append(out, strings.Join(f, " "))
	}
	return out
}

func scaleThousands(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var parts []string
	for len(s) > 3 {
		parts = append([]string{s[len(s)-3:]}, parts...)
		s = s[:len(s)-3]
	}
	parts = append([]string{s}, parts...)
	out := strings.Join(parts, ",")
	if neg {
		return "-" + out
	}
	return out
}

func scaleSig3(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "—"
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return scaleThousands(v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// scaleMarginal is, per stage, the growth of f since the previous stage
// divided by the growth of the connections the nodes hold (NaN for the
// first stage).
func scaleMarginal(stages []ScaleStage, f func(ScaleStage) float64) []float64 {
	out := make([]float64, len(stages))
	for i, st := range stages {
		out[i] = math.NaN()
		if i > 0 && scaleHeld(st) > scaleHeld(stages[i-1]) {
			out[i] = (f(st) - f(stages[i-1])) / float64(scaleHeld(st)-scaleHeld(stages[i-1]))
		}
	}
	return out
}

func scaleSum(xs []float64) float64 {
	var n float64
	for _, x := range xs {
		n += x
	}
	return n
}

// scaleHeld is the connections the nodes hold at st (NodesHold, or the
// sum of NodeConns in reports written before it).
func scaleHeld(st ScaleStage) int {
	if st.NodesHold > 0 {
		return st.NodesHold
	}
	n := 0
	for _, c := range st.NodeConns {
		n += c
	}
	return n
}
