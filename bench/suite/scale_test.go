package suite

import (
	"math"
	"testing"
)

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
