package gctune

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStep(t *testing.T) {
	c := Config{}
	c.setDefaults()
	const mib = 1 << 20
	tests := []struct {
		name        string
		gogc        int
		frac        float64
		live        int64
		quiet       int
		want, wantQ int
	}{
		{"costly: straight to Max", 10, 0.05, 20 * mib, 1, 100, 0},
		{"costly at Max stays", 100, 0.05, 20 * mib, 0, 100, 0},
		{"costly, small heap: goal MinGoal by the minimum", 10, 0.05, 1 * mib, 1, 400, 0},
		{"costly, heap 6 MiB: goal MinGoal by the live heap", 100, 0.05, 6 * mib, 0, 166, 0},
		{"costly, heap half of MinGoal: Max", 400, 0.05, 8 * mib, 0, 100, 0},
		{"in band: kept, quiet run reset", 25, 0.005, 1 * mib, 1, 25, 0},
		{"in band above Max: follows the live heap", 400, 0.005, 12 * mib, 0, 100, 0},
		{"first quiet interval: counted", 100, 0, 1 * mib, 0, 100, 1},
		{"second quiet interval: halved", 100, 0.001, 1 * mib, 1, 50, 0},
		{"second quiet interval above Max: halved from Max", 400, 0.001, 1 * mib, 1, 50, 0},
		{"halving stops at Min", 12, 0, 1 * mib, 1, 10, 0},
		{"at Min stays", 10, 0, 1 * mib, 5, 10, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, q := c.step(tt.gogc, tt.frac, tt.live, tt.quiet)
			if got != tt.want || q != tt.wantQ {
				t.Fatalf("step(%d, %v, %d, %d) = %d, %d; want %d, %d", tt.gogc, tt.frac, tt.live, tt.quiet, got, q, tt.want, tt.wantQ)
			}
		})
	}
}

// TestCostlyGoal: the GOGC set while costly makes Go's heap goal
// max(MinGoal, 2 × live), by Go's formula (the larger of 4 MiB × GOGC/100
// and live × (1 + GOGC/100)), within a percent.
func TestCostlyGoal(t *testing.T) {
	c := Config{}
	c.setDefaults()
	for live := int64(64 << 10); live < 64<<20; live += live / 3 {
		g := int64(c.costly(live))
		goal := max(heapMinimum*g/100, live+live*g/100)
		want := max(c.MinGoal, 2*live)
		if goal < want*99/100 || goal > want*101/100 {
			t.Errorf("live %d: GOGC %d gives a goal of %d, want %d", live, g, goal, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := Config{Min: 50, Max: 20}
	c.setDefaults()
	if c.Min != 50 || c.Max != 50 || c.MinGoal != DefaultMinGoal || c.High != DefaultHigh || c.Low != DefaultLow || c.Quiet != DefaultQuiet || c.Interval != DefaultInterval {
		t.Fatalf("defaults: %+v", c)
	}
}

func currentGOGC() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

func waitGOGC(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for currentGOGC() != want {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d after 10s, want %d (%s)", currentGOGC(), want, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var live [][]*[8]int

// growLive adds 64 × 4096 small pointer objects (about 18 MB with their
// slices) to live: pointers for the collector to scan.
func growLive() {
	for range 64 {
		chunk := make([]*[8]int, 4096)
		for i := range chunk {
			chunk[i] = new([8]int)
		}
		live = append(live, chunk)
	}
}

// TestRunFollowsTheCollectorsCost runs the tuner against the real runtime:
// a quiet process goes down to Min, an allocating one with a large live
// heap sends it back to Max, and the GOGC found at the start comes back
// when the tuner stops.
func TestRunFollowsTheCollectorsCost(t *testing.T) {
	old := debug.SetGCPercent(77)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Min: 10, Max: 100, Interval: 20 * time.Millisecond})
	}()
	defer func() { cancel(); <-done }()

	waitGOGC(t, 10, "a quiet process")

	// Pointers to scan, then garbage to collect while they live: at
	// GOGC=10 the collector runs nearly all the time.
	growLive()
	defer func() { live = nil }()
	stop := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		var sink []byte
		for {
			select {
			case <-stop:
				runtime.KeepAlive(sink)
				return
			default:
			}
			for range 256 {
				sink = make([]byte, 4096)
			}
		}
	}()
	waitGOGC(t, 100, "a process allocating with a 20 MB live heap")
	close(stop)
	<-busy

	cancel()
	<-done
	if got := currentGOGC(); got != 77 {
		t.Fatalf("GOGC %d after the tuner stopped, want the 77 it found", got)
	}
}

// TestRunSmallHeapGoal: a process with a small live heap that allocates
// fast gets a GOGC above Max (the goal MinGoal rather than 4 MiB), which
// goes back to Max once its live heap grows past MinGoal/2.
func TestRunSmallHeapGoal(t *testing.T) {
	old := debug.SetGCPercent(77)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Min: 10, Max: 100, High: 0.001, Interval: 50 * time.Millisecond})
	}()
	defer func() { cancel(); <-done }()

	stop := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		var sink []*[8]int
		for {
			select {
			case <-stop:
				runtime.KeepAlive(sink)
				return
			default:
			}
			sink = make([]*[8]int, 512)
			for i := range sink {
				sink[i] = new([8]int)
			}
		}
	}()
	defer func() { close(stop); <-busy }()
	deadline := time.Now().Add(10 * time.Second)
	for currentGOGC() <= 100 {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC %d after 10s of allocating with a small live heap, want above 100", currentGOGC())
		}
		time.Sleep(5 * time.Millisecond)
	}

	growLive()
	defer func() { live = nil }()
	runtime.GC()
	waitGOGC(t, 100, "a 20 MB live heap")
}
