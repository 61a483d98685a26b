package main

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitLogged waits for the log to contain want (the listening line may
// follow the first answer to /healthz).
func waitLogged(t *testing.T, logs *syncWriter, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log does not contain %s:\n%s", want, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var gogcMetric = regexp.MustCompile(`(?m)^go_gc_gogc_percent (\d+)$`)

func scrapeGOGC(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := gogcMetric.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no go_gc_gogc_percent in /metrics")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestGCTuningInTheBinary: by default a quiet node lowers GOGC below
// Go's 100 (go_gc_gogc_percent shows it); GOGC in the environment turns
// the tuning off and is kept.
func TestGCTuningInTheBinary(t *testing.T) {
	t.Parallel()
	t.Run("adaptive by default", func(t *testing.T) {
		t.Parallel()
		srv := startBinary(t, nil, "--api-key", "gc-tuning-test-key-0123456789")
		base, logs := srv.base, srv.logs
		waitLogged(t, logs, `"gc_tuning":"adaptive"`)
		deadline := time.Now().Add(15 * time.Second)
		for scrapeGOGC(t, base) >= 100 {
			if time.Now().After(deadline) {
				t.Fatal("GOGC still 100 after 15 s of a quiet node")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("GOGC set in the environment", func(t *testing.T) {
		t.Parallel()
		srv := startBinary(t, []string{"GOGC=60"}, "--api-key", "gc-tuning-test-key-0123456789")
		base, logs := srv.base, srv.logs
		waitLogged(t, logs, `"gc_tuning":"off (GOGC=60)"`)
		time.Sleep(3 * time.Second) // past the first steps the tuner would take
		if got := scrapeGOGC(t, base); got != 60 {
			t.Fatalf("go_gc_gogc_percent = %d, want the environment's 60", got)
		}
	})
}
