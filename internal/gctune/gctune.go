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
)

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
}

// step returns the GOGC to use after an interval in which the collector
// took frac of the available CPU, and the new count of quiet intervals.
func (c *Config) step(gogc int, frac float64, quiet int) (int, int) {
	switch {
	case frac > c.High:
		return c.Max, 0
	case frac >= c.Low:
		return gogc, 0
	}
	if quiet++; quiet < c.Quiet || gogc <= c.Min {
		return gogc, quiet
	}
	return max(gogc/2, c.Min), 0
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
	samples := make([]metrics.Sample, len(gcCPU))
	for i, name := range gcCPU {
		samples[i].Name = name
	}
	read := func() float64 {
		metrics.Read(samples)
		total := 0.0
		for _, s := range samples {
			if s.Value.Kind() == metrics.KindFloat64 {
				total += s.Value.Float64()
			}
		}
		return total
	}

	gogc := cfg.Max
	found := debug.SetGCPercent(gogc)
	defer debug.SetGCPercent(found)
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	prevCPU, prevAt, quiet := read(), time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cpu := read()
			avail := now.Sub(prevAt).Seconds() * float64(runtime.GOMAXPROCS(0))
			frac := 0.0
			if avail > 0 {
				frac = (cpu - prevCPU) / avail
			}
			next, q := cfg.step(gogc, frac, quiet)
			quiet = q
			if next != gogc {
				debug.SetGCPercent(next)
				if cfg.Log != nil {
					cfg.Log.Debug("GOGC changed", "from", gogc, "to", next, "gc_cpu_fraction", frac)
				}
				if next < gogc {
					// Collect now: a quiet process may allocate too
					// little to reach the lower goal on its own, and
					// the memory above it goes back to the system only
					// after a collection.
					runtime.GC()
				}
				gogc = next
			}
			// The forced collection is the tuner's own doing: start
			// the next interval after it.
			prevCPU, prevAt = read(), time.Now()
		}
	}
}
