package main

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"
)

func TestParseBench(t *testing.T) {
	t.Setenv("QUICK", "")
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, conns int, quick bool, scenarios, targets []string, step time.Duration, payloads []int)
	}{
		{"defaults", nil, func(t *testing.T, conns int, quick bool, scenarios, targets []string, _ time.Duration, payloads []int) {
			if conns != 10000 || quick || len(scenarios) != 4 || len(targets) != 4 || len(payloads) != 2 {
				t.Fatalf("conns %d quick %v scenarios %v targets %v payloads %v", conns, quick, scenarios, targets, payloads)
			}
		}},
		{"quick", []string{"--quick"}, func(t *testing.T, conns int, quick bool, _, _ []string, step time.Duration, _ []int) {
			if !quick || conns >= 10000 || step > 5*time.Second {
				t.Fatalf("quick %v conns %d step %v", quick, conns, step)
			}
		}},
		{"flags and scenarios", []string{"--conns", "500", "--targets", "herald", "--payloads", "64", "--step", "1s", "broadcast"},
			func(t *testing.T, conns int, _ bool, scenarios, targets []string, step time.Duration, payloads []int) {
				if conns != 500 || len(scenarios) != 1 || scenarios[0] != "broadcast" || len(targets) != 1 || step != time.Second || payloads[0] != 64 {
					t.Fatalf("conns %d scenarios %v targets %v step %v payloads %v", conns, scenarios, targets, step, payloads)
				}
			}},
		{"flags after scenarios", []string{"idle", "--conns", "500", "churn", "--", "--step"},
			func(t *testing.T, conns int, _ bool, scenarios, _ []string, _ time.Duration, _ []int) {
				if conns != 500 || len(scenarios) != 3 || scenarios[0] != "idle" || scenarios[1] != "churn" || scenarios[2] != "--step" {
					t.Fatalf("conns %d scenarios %q", conns, scenarios)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseBench(tt.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, o.Conns, o.Quick, o.Scenarios, o.Targets, o.StepDuration, o.Payloads)
		})
	}
	if _, err := parseBench([]string{"storm", "--help"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("storm --help: %v, want the usage (flag.ErrHelp)", err)
	}
	if _, err := parseBench([]string{"--ramp", "0"}, io.Discard); err == nil {
		t.Fatal("a zero ramp rate was accepted")
	}
	if code := run([]string{"bench", "--targets", "nope"}, io.Discard, io.Discard); code == 0 {
		t.Fatal("an unknown target did not fail")
	}
}
