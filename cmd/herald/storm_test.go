package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/bench/suite"
)

// TestStormScenario runs the storm scenario of `herald bench` end to end
// at a small size: three nodes on one redis-server, 60 clients, the first
// node SIGTERMed and then (on a fresh deployment) SIGKILLed. Herald's
// clients must all be back, resumed and recovered, with no message lost,
// duplicated or out of order; with node and npm installed, the Socket.IO
// cluster peer runs too and its clients must all be back (it has no
// history: its losses are what they are). The figures are the
// benchmark's business, not this test's.
func TestStormScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("storm: a minute of real processes")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not found (Debian: apt-get install -y redis-server)")
		}
		t.Skip("redis-server not found (Debian: apt-get install -y redis-server)")
	}
	bin := buildBinary(t)
	targets := []string{suite.TargetHerald}
	peers := installPeers(t)
	if peers != "" {
		targets = append(targets, suite.TargetSocketIO)
	}
	o := suite.Defaults()
	o.Targets, o.Scenarios = targets, []string{suite.ScenarioStorm}
	o.HeraldBin, o.OutDir, o.PeersDir = bin, t.TempDir(), peers
	o.Storm.Clients, o.Storm.Rooms, o.Storm.Rate = 60, 10, 50
	o.Storm.Warmup, o.Storm.Timeout = 2*time.Second, 30*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var log strings.Builder
	rep, err := suite.Run(ctx, o, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("%v\n%s", rep.Errors, log.String())
	}
	if want := 2 * len(targets); len(rep.Storm) != want {
		t.Fatalf("%d storm results, want %d\n%s", len(rep.Storm), want, log.String())
	}
	for _, r := range rep.Storm {
		t.Logf("%s %s: %d/%d back in %.2fs, p99 %.1f ms, published %d, lost %d", r.Target, r.Signal, r.Moved, r.Moving,
			r.AllBackSeconds, r.Latency.P99, r.Published, r.Lost)
		if r.Clients != 60 || r.Moving == 0 || r.Moved != r.Moving || !r.AllBack || r.Published == 0 || r.Deliveries == 0 {
			t.Errorf("%s %s: %d clients, %d of %d back (all: %v), published %d, deliveries %d", r.Target, r.Signal,
				r.Clients, r.Moved, r.Moving, r.AllBack, r.Published, r.Deliveries)
		}
		if r.Target != suite.TargetHerald {
			continue
		}
		if r.Lost != 0 || r.Duplicated != 0 || r.OutOfOrder != 0 || r.GivenUp != 0 || r.DownAtEnd != 0 {
			t.Errorf("herald %s: lost %d, duplicated %d, out of order %d, given up %d, clients down when counted %d",
				r.Signal, r.Lost, r.Duplicated, r.OutOfOrder, r.GivenUp, r.DownAtEnd)
		}
		if r.Resumed != int64(r.Moving) || r.Recovered < int64(r.Moving) || r.NotRecovered != 0 {
			t.Errorf("herald %s: %d of %d resumed, %d recovered, %d not", r.Signal, r.Resumed, r.Moving, r.Recovered, r.NotRecovered)
		}
	}
	if t.Failed() {
		t.Logf("progress:\n%s", log.String())
	}
}

// installPeers copies bench/peers into a temporary directory and runs
// npm ci there; it returns that directory, or "" when node or npm is
// missing (a failure when CI is set).
func installPeers(t *testing.T) string {
	t.Helper()
	for _, b := range []string{"node", "npm"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: the Socket.IO peer needs Node.js and npm", b)
			}
			t.Logf("%s not found: the storm runs against Herald only", b)
			return ""
		}
	}
	src := filepath.Join("..", "..", "bench", "peers")
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue // node_modules
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runNode(ctx, t, dir, nil, "npm", "ci", "--no-audit", "--no-fund")
	return dir
}
