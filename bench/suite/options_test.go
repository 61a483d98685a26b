package suite

import (
	"slices"
	"strings"
	"testing"

	"github.com/heraldrt/herald/bench/loadgen"
)

func TestClusterProcs(t *testing.T) {
	for _, tc := range []struct {
		procs, nodes, cpus, want int
	}{
		{0, 3, 2, 1},  // two cores over three nodes: one each
		{0, 2, 8, 4},  // each node its share
		{0, 3, 16, 5}, // rounded down
		{0, 0, 4, 4},  // no nodes configured: not a division by zero
		{-1, 3, 2, 0}, // Go's default
		{3, 3, 2, 3},  // as asked
	} {
		o := Options{ClusterProcs: tc.procs, ClusterNodes: tc.nodes}
		if got := o.clusterProcs(tc.cpus); got != tc.want {
			t.Errorf("ClusterProcs %d, %d nodes, %d CPUs: got %d, want %d", tc.procs, tc.nodes, tc.cpus, got, tc.want)
		}
	}
	o := Defaults()
	o.ClusterProcs = -2
	if err := o.validate(); err == nil {
		t.Error("ClusterProcs -2 was accepted")
	}
}

func TestHeraldHistoryTarget(t *testing.T) {
	o := Defaults()
	if slices.Contains(o.Targets, TargetHeraldHistory) {
		t.Error("herald-history is in the default targets; it is meant to be run by name")
	}
	o.Targets = []string{TargetHerald, TargetHeraldHistory}
	if err := o.validate(); err != nil {
		t.Fatalf("herald-history rejected: %v", err)
	}
	if !isHerald(TargetHeraldHistory) || !isHerald(TargetHerald) || isHerald(TargetWS) || isHerald(TargetFloor) {
		t.Error("isHerald does not tell Herald's targets from the peers")
	}
	// The variant's servers get the history flag for the rooms the load
	// generator uses; plain herald does not.
	hist := heraldArgs(TargetHeraldHistory, "127.0.0.1:1", 0)
	i := slices.Index(hist, "--history")
	if i < 0 || i+1 >= len(hist) || hist[i+1] != HistoryRule {
		t.Fatalf("herald-history args %q lack --history %s", hist, HistoryRule)
	}
	pattern, _, _ := strings.Cut(HistoryRule, "=")
	prefix := strings.TrimSuffix(pattern, "*")
	for r := 0; r < 100; r++ {
		if !strings.HasPrefix(loadgen.RoomName(r), prefix) {
			t.Fatalf("room %q is not covered by %s", loadgen.RoomName(r), HistoryRule)
		}
	}
	plain := heraldArgs(TargetHerald, "127.0.0.1:1", 0)
	if slices.Contains(plain, "--history") {
		t.Errorf("herald args %q have --history", plain)
	}
	if len(hist) != len(plain)+2 || !slices.Equal(hist[:len(plain)], plain) {
		t.Errorf("herald-history differs from herald by more than --history: %q vs %q", hist, plain)
	}
}

func TestFullRunOnlyUpdatesDocs(t *testing.T) {
	o := Defaults()
	if !o.fullRun() {
		t.Error("the default run is not a full run")
	}
	o.Targets = append(o.Targets, TargetHeraldHistory)
	if !o.fullRun() {
		t.Error("defaults plus herald-history is not a full run")
	}
	for name, mod := range map[string]func(*Options){
		"targets subset":   func(o *Options) { o.Targets = []string{TargetHerald, TargetHeraldHistory} },
		"scenarios subset": func(o *Options) { o.Scenarios = []string{ScenarioBroadcast} },
		"quick":            func(o *Options) { *o = QuickDefaults() },
	} {
		o := Defaults()
		mod(&o)
		if o.fullRun() {
			t.Errorf("%s counts as a full run", name)
		}
	}
}

func TestHeraldSocketIOTarget(t *testing.T) {
	o := Defaults()
	if slices.Contains(o.Targets, TargetHeraldSocketIO) {
		t.Error("herald-socketio is in the default targets; it is meant to be run by name")
	}
	o.Targets = []string{TargetHerald, TargetHeraldSocketIO}
	if err := o.validate(); err != nil {
		t.Fatalf("herald-socketio rejected: %v", err)
	}
	if !isHerald(TargetHeraldSocketIO) {
		t.Error("herald-socketio runs herald serve")
	}
	// The same server as herald: only the clients differ.
	if a, b := heraldArgs(TargetHeraldSocketIO, "127.0.0.1:1", 0), heraldArgs(TargetHerald, "127.0.0.1:1", 0); !slices.Equal(a, b) {
		t.Errorf("herald-socketio args %q differ from herald's %q", a, b)
	}
}

func TestHeraldMixedTarget(t *testing.T) {
	o := Defaults()
	if slices.Contains(o.Targets, TargetHeraldMixed) {
		t.Error("herald-mixed is in the default targets; it is meant to be run by name")
	}
	o.Targets = []string{TargetHerald, TargetHeraldMixed}
	if err := o.validate(); err != nil {
		t.Fatalf("herald-mixed rejected: %v", err)
	}
	r := &runner{opts: o}
	d := &deployment{target: TargetHeraldMixed, kind: loadgen.KindHerald, bases: []string{"ws://127.0.0.1:1"}}
	for _, spec := range r.subscriberSpecs(d, "subscribe") {
		if spec.Kind != loadgen.KindHerald || spec.MixKind != loadgen.KindHeraldSocketIO ||
			!slices.Equal(spec.MixURLs, []string{"ws://127.0.0.1:1/socket.io/?EIO=4&transport=websocket"}) {
			t.Fatalf("herald-mixed subscribers %+v: want v1 with Socket.IO mixed in at /socket.io/", spec)
		}
	}
	d.target = TargetHerald
	for _, spec := range r.subscriberSpecs(d, "subscribe") {
		if spec.MixKind != "" {
			t.Fatalf("herald subscribers mixed: %+v", spec)
		}
	}
}
