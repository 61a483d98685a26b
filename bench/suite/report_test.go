package suite

import (
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/bench/loadgen"
)

func TestFormatValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   float64
		want string
	}{
		{math.NaN(), "—"}, {0, "0"}, {0.1234, "0.123"}, {0.7972, "0.797"}, {0.96, "0.960"}, {1.234, "1.23"}, {9.999, "10.00"}, {12.34, "12.3"},
		{123.4, "123"}, {1234.5, "1,235"}, {986000, "986,000"}, {-1500, "-1,500"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.in); got != tt.want {
			t.Errorf("formatValue(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func sampleTable() Table {
	return Table{
		Name: "broadcast-100b", Title: "Broadcast <100 B> & more", Columns: []string{TargetHerald, TargetWS, TargetSocketIO},
		Rows: []Row{
			{Metric: "Delivered", Unit: "msgs/s", Values: map[string]float64{TargetHerald: 50000, TargetWS: 25000, TargetSocketIO: math.NaN()}},
			{Metric: "Latency p99", Unit: "ms", LowerBetter: true, Values: map[string]float64{TargetHerald: 2, TargetWS: 8, TargetSocketIO: 4}},
			{Metric: "Nothing", Values: map[string]float64{TargetHerald: math.NaN(), TargetWS: math.NaN(), TargetSocketIO: math.NaN()}},
		},
	}
}

func TestMarkdownTable(t *testing.T) {
	t.Parallel()
	got := MarkdownTable(sampleTable())
	want := "| Metric | Herald | Node ws | Socket.IO | Herald / Node ws | Herald / Socket.IO |\n" +
		"|---|---:|---:|---:|---:|---:|\n" +
		"| Delivered (msgs/s) | 50,000 | 25,000 | — | 2.00× | — |\n" +
		"| Latency p99 (ms) ↓ | 2.00 | 8.00 | 4.00 | 0.25× | 0.50× |\n" +
		"| Nothing | — | — | — | — | — |\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestRenderSVG(t *testing.T) {
	t.Parallel()
	svg := RenderSVG(sampleTable())
	// Well-formed XML, titles escaped, one bar per target per non-empty row.
	dec := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if want := 1 + 2*3; rects != want { // background + 2 rows × 3 targets
		t.Fatalf("%d rects, want %d", rects, want)
	}
	if !strings.Contains(svg, "Broadcast &lt;100 B&gt; &amp; more") {
		t.Fatal("title not escaped")
	}
	if strings.Contains(svg, "Nothing") {
		t.Fatal("a row without values was drawn")
	}
}

func TestReplaceGenerated(t *testing.T) {
	t.Parallel()
	doc := "# Benchmarks\n\nhand written\n\n" + BeginMarker + "\nold\n" + EndMarker + "\n\n## After\n"
	got := ReplaceGenerated(doc, "new body\n")
	if !strings.Contains(got, "hand written") || !strings.Contains(got, "## After") || strings.Contains(got, "old") ||
		!strings.Contains(got, BeginMarker+"\n\nnew body\n\n"+EndMarker) {
		t.Fatalf("got:\n%s", got)
	}
	if again := ReplaceGenerated(got, "new body\n"); again != got {
		t.Fatal("not idempotent")
	}
	fresh := ReplaceGenerated("", "x")
	if !strings.HasPrefix(fresh, BeginMarker) || !strings.Contains(fresh, EndMarker) {
		t.Fatalf("fresh doc: %q", fresh)
	}
}

func TestReportTablesAndMarkdown(t *testing.T) {
	t.Parallel()
	o := QuickDefaults()
	o.Command = "make bench-e2e"
	rep := newReport(o)
	rep.Finished = rep.Started.Add(time.Minute)
	step := func(rate, p99, cpu float64, lost int64) loadgen.StepResult {
		return loadgen.StepResult{OfferedDeliveriesPerSec: rate, DeliveriesPerSec: rate, Received: 100, Lost: lost,
			Latency: loadgen.Summary{P99: p99}, ServerCPUPerDeliveryUs: cpu}
	}
	rep.Idle[TargetHerald] = &IdleFigures{Conns: 1000, RSSBefore: 10 << 20, RSSAfter: 12 << 20, HeapBefore: 1 << 20, HeapAfter: 2 << 20}
	rep.Idle[TargetHerald].compute()
	rep.Broadcast[TargetHerald] = map[string][]loadgen.StepResult{"100 B": {step(5e4, 3, 9, 0), step(5e4, 5, 11, 0), step(5e4, 4, 10, 0)}}
	rep.Broadcast[TargetWS] = map[string][]loadgen.StepResult{"100 B": {step(5e4, 8, 12, 0)}}
	rep.Ramp[TargetHerald] = loadgen.RampResult{Bound: 500, Steps: []loadgen.StepResult{step(1e5, 10, 9, 0), step(2e5, 900, 9, 0)}, MaxOK: step(1e5, 10, 9, 0)}
	rep.ClusterRamp[TargetHerald] = loadgen.RampResult{Bound: 500, MaxOK: step(8e4, 10, 9, 0)}
	rep.ClusterIdle[TargetHerald] = &IdleFigures{Conns: 1000, RSSBefore: 30 << 20, RSSAfter: 33 << 20}
	rep.ClusterIdle[TargetHerald].compute()
	churn := func(us float64) loadgen.ChurnResult {
		return loadgen.ChurnResult{ConnectsPerSec: 1e6 / us, ServerCPUPerConn: us}
	}
	rep.Churn[TargetHerald] = []loadgen.ChurnResult{churn(90), churn(60), churn(75)}
	rep.Churn[TargetFloor] = []loadgen.ChurnResult{churn(50)}
	tables := rep.Tables()
	byName := map[string]Table{}
	for _, tb := range tables {
		byName[tb.Name] = tb
	}
	if got := byName["idle"].Rows[1].Values[TargetHerald]; got != 2048.0/1000 {
		t.Fatalf("RSS per conn = %v KB, want 2.048", got)
	}
	if got := byName["broadcast-100b"].Rows[3].Values[TargetHerald]; got != 4 {
		t.Fatalf("median p99 = %v, want 4", got)
	}
	if got := byName["ramp"].Rows[3].Values[TargetHerald]; got != 2e5 {
		t.Fatalf("first failing rate = %v, want 200000", got)
	}
	if got := byName["cluster"].Rows[2].Values[TargetHerald]; got != 0.8 {
		t.Fatalf("cluster/single = %v, want 0.8", got)
	}
	if one, nodes := byName["cluster"].Rows[3].Values[TargetHerald], byName["cluster"].Rows[4].Values[TargetHerald]; one != 2048.0/1000 || nodes != 3072.0/1000 {
		t.Fatalf("idle RSS per conn: one node %v, cluster nodes %v KB; want 2.048 and 3.072", one, nodes)
	}
	if cols := byName["churn"].Columns; !slices.Contains(cols, TargetFloor) {
		t.Fatalf("churn columns %v lack the handshake floor", cols)
	}
	md := rep.Markdown(tables, "benchmarks/")
	for _, want := range []string{"QUICK run", "`make bench-e2e`", "![Idle connections](benchmarks/idle.svg)", "| Herald | 100,000 |",
		"| Server CPU per connect (µs) ↓ | 75.0 | — | — | 50.0 | — | — | 1.50× |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestMixedLatencyRows(t *testing.T) {
	t.Parallel()
	o := QuickDefaults()
	o.Targets = []string{TargetHerald, TargetHeraldMixed}
	rep := newReport(o)
	mix := func(p99 float64) *loadgen.Summary { return &loadgen.Summary{P99: p99} }
	rep.Broadcast[TargetHerald] = map[string][]loadgen.StepResult{"100 B": {{Received: 10, Latency: loadgen.Summary{P99: 3}}}}
	rep.Broadcast[TargetHeraldMixed] = map[string][]loadgen.StepResult{"100 B": {
		{Received: 10, Latency: loadgen.Summary{P99: 4}, LatencyMix: mix(6)},
		{Received: 10, Latency: loadgen.Summary{P99: 5}, LatencyMix: mix(9)},
		{Received: 10, Latency: loadgen.Summary{P99: 6}, LatencyMix: mix(7)},
	}}
	var found bool
	for _, tb := range rep.Tables() {
		for _, r := range tb.Rows {
			if r.Metric != "Latency p99, Socket.IO subscribers of the same broadcasts" {
				continue
			}
			found = true
			if got := r.Values[TargetHeraldMixed]; got != 7 {
				t.Errorf("Socket.IO p99 of herald-mixed = %v, want the median 7", got)
			}
			if got := r.Values[TargetHerald]; !math.IsNaN(got) {
				t.Errorf("herald has a Socket.IO p99 of %v, want none", got)
			}
		}
	}
	if !found {
		t.Fatal("no Socket.IO latency row for herald-mixed")
	}
}

func TestHistoryTableAndPartialRunKeepsDocs(t *testing.T) {
	t.Parallel()
	o := Defaults()
	o.Targets = []string{TargetHerald, TargetHeraldHistory}
	o.Scenarios = []string{ScenarioBroadcast}
	o.OutDir = t.TempDir()
	o.DocsFile = filepath.Join(t.TempDir(), "benchmarks.md")
	const doc = "# Benchmarks\n\n" + BeginMarker + "\n\nthe full run's standings\n\n" + EndMarker + "\n"
	if err := os.WriteFile(o.DocsFile, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := newReport(o)
	rep.Finished = rep.Started.Add(time.Minute)
	step := func(rate, p99, cpu float64, lost int64) loadgen.StepResult {
		return loadgen.StepResult{OfferedDeliveriesPerSec: rate, DeliveriesPerSec: rate, Received: 100, Lost: lost,
			Latency: loadgen.Summary{P99: p99}, ServerCPUPerDeliveryUs: cpu}
	}
	rep.Broadcast[TargetHerald] = map[string][]loadgen.StepResult{"100 B": {step(5e4, 3, 2, 0)}}
	rep.Broadcast[TargetHeraldHistory] = map[string][]loadgen.StepResult{"100 B": {step(5e4, 4, 2.5, 0)}}
	rep.Ramp[TargetHerald] = loadgen.RampResult{Bound: 500, MaxOK: step(1e6, 300, 1, 0)}
	rep.Ramp[TargetHeraldHistory] = loadgen.RampResult{Bound: 500, MaxOK: step(8.5e5, 400, 1.2, 0)}
	var hist *Table
	for _, tb := range rep.Tables() {
		if tb.Name == "history" {
			hist = &tb
		}
	}
	if hist == nil {
		t.Fatal("no history table with herald and herald-history in the ramp")
	}
	if got := hist.Rows[1].Values[TargetHeraldHistory]; got != 0.85 {
		t.Errorf("history/no-history ceiling = %v, want 0.85", got)
	}
	if got := hist.Rows[5].Values[TargetHeraldHistory]; got != 2.5 {
		t.Errorf("CPU per delivery at the fixed rate = %v, want 2.5", got)
	}
	md := MarkdownTable(*hist)
	if strings.Contains(md, "Herald / Herald + history") {
		t.Errorf("herald-history treated as a peer:\n%s", md)
	}
	if err := rep.write(o); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(o.DocsFile); string(got) != doc {
		t.Errorf("a partial run rewrote the docs:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(o.OutDir, "history.svg")); err != nil {
		t.Errorf("no history chart in the results: %v", err)
	}
}
