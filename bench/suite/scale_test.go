package suite

import (
	"math"
	"testing"
)

func TestParseMachineCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		line        string
		busy, total int64
	}{
		{"every field", "cpu  100 5 50 800 20 3 7 2 9 0", 167, 987},
		{"no steal", "cpu 10 0 10 80", 20, 100},
		{"not the cpu line", "cpu0 10 0 10 80 0", 0, 0},
		{"short", "cpu 1 2", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := parseMachineCPU(tt.line)
			if m.busy != tt.busy || m.total != tt.total {
				t.Fatalf("parseMachineCPU(%q) = busy %d total %d, want %d %d", tt.line, m.busy, m.total, tt.busy, tt.total)
			}
		})
	}
	m0 := machineCPU{busy: 100, total: 1000, cpus: 2}
	m1 := machineCPU{busy: 250, total: 1200, cpus: 2}
	if got := m1.busySince(m0); got != 150 {
		t.Fatalf("busySince = %g, want 150 (%% of one core: 150 of 200 ticks on two cores)", got)
	}
	if got := m0.busySince(m0); got != 0 {
		t.Fatalf("busySince over no time = %g, want 0", got)
	}
}

func TestRoundSig2(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want float64 }{
		{math.Sqrt(0.2 * 0.4), 0.28}, {math.Sqrt(1.6 * 3.2), 2.3}, {0.1, 0.1}, {12.34, 12}, {0, 0},
	} {
		if got := roundSig2(tt.in); got != tt.want {
			t.Errorf("roundSig2(%g) = %g, want %g", tt.in, got, tt.want)
		}
	}
}

func TestScaleCommonRounds(t *testing.T) {
	t.Parallel()
	stage := func(steps ...ScaleStep) ScaleStage { return ScaleStage{Steps: steps} }
	step := func(rounds float64, ok bool) ScaleStep { return ScaleStep{Rounds: rounds, OK: ok} }
	tests := []struct {
		name   string
		stages []ScaleStage
		want   float64
	}{
		{"highest passed everywhere", []ScaleStage{
			stage(step(0.1, true), step(0.2, true), step(0.4, true), step(0.8, false)),
			stage(step(0.2, true), step(0.4, false), step(0.28, true)),
			stage(step(0.1, true), step(0.2, true), step(0.4, false)),
		}, 0.2},
		{"none passed everywhere: highest run everywhere", []ScaleStage{
			stage(step(0.1, true), step(0.2, true)),
			stage(step(0.1, false)),
		}, 0.1},
		{"nothing in common", []ScaleStage{stage(step(0.1, true)), stage(step(0.2, true))}, 0},
		{"no stages", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := scaleCommonRounds(tt.stages); got != tt.want {
				t.Fatalf("scaleCommonRounds = %g, want %g", got, tt.want)
			}
		})
	}
}
