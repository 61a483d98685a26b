// Package gctune adjusts the garbage collector's GOGC to how much the
// collector costs, for a process whose heap is mostly long-lived state.
//
// A node holding many idle connections has a heap that is almost all
// connection state, and Go's default GOGC=100 lets that heap, and the
// resident memory with it, grow to twice the state before collecting. A
// low GOGC keeps memory near the state but makes every collection more
// frequent; that costs nothing while the node is quiet and a lot during
// a reconnect storm, when each upgrade leaves kilobytes of garbage. The
// Tuner measures the collector's CPU time in each interval and moves
// GOGC between Min and Max: up to Max at once when the collector costs
// more than High of the available CPU, down by half after Quiet
// intervals below Low.
//
// A process whose live heap is small (a node with few connections
// taking a burst of connects) would still collect every 4 MiB or so at
// Max: Go's smallest heap goal is 4 MiB × GOGC/100, and each collection
// costs about the same whatever it frees. While the collector is costly
// the Tuner sets GOGC above Max when the live heap is under MinGoal/2,
// so that the goal is MinGoal (16 MiB) rather than 4 MiB, and sets it
// again after each collection from the new live heap: the goal is
// max(MinGoal, 2 × live) at GOGC=Max, never more.
package gctune

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Defaults of Config's fields.
const (
	DefaultMin      = 10
	DefaultMax      = 100
	DefaultHigh     = 0.01
	DefaultLow      = 0.0025
	DefaultQuiet    = 2
	DefaultInterval = time.Second
	DefaultMinGoal  = 16 << 20
)

// heapMinimum is Go's smallest heap goal at GOGC=100 (the runtime's
// defaultHeapMinimum); it scales with GOGC.
const heapMinimum = 4 << 20

// Config sets the Tuner's bounds and thresholds; zero fields take the
// defaults above.
type Config struct {
	// Min and Max bound GOGC (10 and 100).
	Min, Max int
	// High and Low are fractions of the available CPU (GOMAXPROCS times
	// the interval) spent by the collector: over High GOGC goes to Max,
	// under Low for Quiet intervals in a row it halves (1 % and 0.25 %).
	High, Low float64
	// Quiet is how many intervals under Low precede each step down (2).
	Quiet int
	// Interval is how often the collector's cost is measured (1 s).
	Interval time.Duration
	// MinGoal is the smallest heap goal while the collector is costly
	// (16 MiB; see the package comment). Below Go's 4 MiB × Max/100 it
	// changes nothing.
	MinGoal int64
	// Log, if set, gets a debug line for each change.
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Min <= 0 {
		c.Min = DefaultMin
	}
	if c.Max <= 0 {
		c.Max = DefaultMax
	}
	if c.Max < c.Min {
		c.Max = c.Min
	}
	if c.High <= 0 {
		c.High = DefaultHigh
	}
	if c.Low <= 0 {
		c.Low = DefaultLow
	}
	if c.Quiet <= 0 {
		c.Quiet = DefaultQuiet
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.MinGoal <= 0 {
		c.MinGoal = DefaultMinGoal
	}
}

// costly returns the GOGC for a collector over High with a live heap
// of live bytes: Max, or more while live is under MinGoal/2, as much as
// makes the heap goal MinGoal (Go's goal is the larger of heapMinimum ×
// GOGC/100 and live × (1 + GOGC/100)).
func (c *Config) costly(live int64) int {
	if live <= 0 || 2*live >= c.MinGoal {
		return c.Max
	}
	g := min(100*c.MinGoal/heapMinimum, 100*(c.MinGoal-live)/live)
	return max(c.Max, int(g))
}

// step returns the GOGC to use after an interval in which the collector
// took frac of the available CPU with a live heap of live bytes, and the
// new count of quiet intervals. A GOGC above Max (set while costly)
// follows the live heap while the collector is in the band, and halves
// from Max when it is quiet.
func (c *Config) step(gogc int, frac float64, live int64, quiet int) (int, int) {
	switch {
	case frac > c.High:
		return c.costly(live), 0
	case frac >= c.Low:
		if gogc > c.Max {
			return c.costly(live), 0
		}
		return gogc, 0
	}
	if quiet++; quiet < c.Quiet || gogc <= c.Min {
		return gogc, quiet
	}
	return max(min(gogc, c.Max)/2, c.Min), 0
}

// gcCPU is the collector's CPU time that displaced the program: assists,
// dedicated and fractional mark workers, pauses. Marking on otherwise
// idle processors is left out; it costs nothing.
var gcCPU = []string{
	"/cpu/classes/gc/mark/assist:cpu-seconds",
	"/cpu/classes/gc/mark/dedicated:cpu-seconds",
	"/cpu/classes/gc/pause:cpu-seconds",
}

// Run tunes GOGC every Interval until ctx ends, starting at Max, then
// restores the GOGC it found. It blocks; run it on a goroutine.
func Run(ctx context.Context, cfg Config) {
	cfg.setDefaults()
	samples := make([]metrics.Sample, len(gcCPU)+1)
	for i, name := range gcCPU {
		samples[i].Name = name
	}
	samples[len(gcCPU)].Name = liveHeap
	read := func() (cpu float64, live int64) {
		metrics.Read(samples)
		for _, s := range samples[:len(gcCPU)] {
			if s.Value.Kind() == metrics.KindFloat64 {
				cpu += s.Value.Float64()
			}
		}
		if s := samples[len(gcCPU)]; s.Value.Kind() == metrics.KindUint64 {
			live = int64(s.Value.Uint64())
		}
		return cpu, live
	}

	gogc := cfg.Max
	found := debug.SetGCPercent(gogc)
	defer debug.SetGCPercent(found)
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	// While GOGC is above Max, the next collection tells the loop
	// (collected, from a finalizer), which sets GOGC again from the live
	// heap just marked: a heap that grows fast between two ticks gets no
	// larger goal than Max gives it.
	collected := make(chan struct{}, 1)
	watching := false
	watch := func() {
		if watching {
			return
		}
		watching = true
		runtime.SetFinalizer(&sentinel{}, func(*sentinel) {
			select {
			case collected <- struct{}{}:
			default:
			}
		})
	}
	prevCPU, _ := read()
	prevAt, quiet := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-collected:
			watching = false
			if gogc <= cfg.Max {
				continue
			}
			_, live := read()
			if next := cfg.costly(live); next != gogc {
				debug.SetGCPercent(next)
				gogc = next
			}
			if gogc > cfg.Max {
				watch()
			}
		case now := <-t.C:
			cpu, live := read()
			avail := now.Sub(prevAt).Seconds() * float64(runtime.GOMAXPROCS(0))
			frac := 0.0
			if avail > 0 {
				frac = (cpu - prevCPU) / avail
			}
			next, q := cfg.step(gogc, frac, live, quiet)
			quiet = q
			if next != gogc {
				debug.SetGCPercent(next)
				if cfg.Log != nil {
					cfg.Log.Debug("GOGC changed", "from", gogc, "to", next, "gc_cpu_fraction", frac)
				}
				if next < gogc && frac < cfg.Low {
					// Collect now: a quiet process may allocate too
					// little to reach the lower goal on its own, and
					// the memory above it goes back to the system only
					// after a collection.
					runtime.GC()
				}
				gogc = next
			}
			if gogc > cfg.Max {
				watch()
			}
			// The forced collection is the tuner's own doing: start
			// the next interval after it.
			prevCPU, _ = read()
			prevAt = time.Now()
		}
	}
}

// liveHeap is the runtime metric of the heap the last collection marked.
const liveHeap = "/gc/heap/live:bytes"

// sentinel is an object whose finalizer tells the tuner a collection
// has run (it is unreachable from the start; it holds a pointer so that
// it is not one of the tiny allocator's blocks, whose finalizers may
// never run).
type sentinel struct{ _ *byte }
