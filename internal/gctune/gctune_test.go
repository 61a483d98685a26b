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
	tests := []struct {
		name        string
		gogc        int
		frac        float64
		quiet       int
		want, wantQ int
	}{
		{"costly: straight to Max", 10, 0.05, 1, 100, 0},
		{"costly at Max stays", 100, 0.05, 0, 100, 0},
		{"in band: kept, quiet run reset", 25, 0.005, 1, 25, 0},
		{"first quiet interval: counted", 100, 0, 0, 100, 1},
		{"second quiet interval: halved", 100, 0.001, 1, 50, 0},
		{"halving stops at Min", 12, 0, 1, 10, 0},
		{"at Min stays", 10, 0, 5, 10, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, q := c.step(tt.gogc, tt.frac, tt.quiet)
			if got != tt.want || q != tt.wantQ {
				t.Fatalf("step(%d, %v, %d) = %d, %d; want %d, %d", tt.gogc, tt.frac, tt.quiet, got, q, tt.want, tt.wantQ)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Config{Min: 50, Max: 20}
	c.setDefaults()
	if c.Min != 50 || c.Max != 50 || c.High != DefaultHigh || c.Low != DefaultLow || c.Quiet != DefaultQuiet || c.Interval != DefaultInterval {
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
	for range 64 {
		chunk := make([]*[8]int, 4096)
		for i := range chunk {
			chunk[i] = new([8]int)
		}
		live = append(live, chunk)
	}
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
