package deploy

import (
	"regexp"
	"strings"
	"testing"
)

// TestDocsListEveryMetric: every metric family a running Herald exports
// (with the backend proxy's) is named in README.md's Metrics section and
// explained in docs/operations.md or docs/backend.md; every herald_ name
// the README's section gives is a metric: exported, or registered by code
// this scrape does not run (the binary's herald_http_conns_refused_total,
// the admin console's, a vector with no series yet).
func TestDocsListEveryMetric(t *testing.T) {
	t.Parallel()
	have := exportedMetrics(t)
	readme := readFile(t, "README.md")
	_, section, ok := strings.Cut(readme, "\n## Metrics\n")
	if !ok {
		t.Fatal("README.md has no Metrics section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	explained := readFile(t, "docs/operations.md") + readFile(t, "docs/backend.md")
	name := regexp.MustCompile(`herald_[a-z0-9_]+`)
	listed := map[string]bool{}
	for _, n := range name.FindAllString(section, -1) {
		listed[n] = true
	}
	mentioned := map[string]bool{}
	for _, n := range name.FindAllString(explained, -1) {
		mentioned[n] = true
	}
	families := 0
	for n := range have {
		if !strings.HasPrefix(n, "herald_") || strings.Contains(n, "{") {
			continue
		}
		// A histogram's samples are named after its family.
		if base, ok := strings.CutSuffix(n, "_bucket"); ok && have[base] {
			continue
		}
		if base, ok := strings.CutSuffix(n, "_sum"); ok && have[base] {
			continue
		}
		if base, ok := strings.CutSuffix(n, "_count"); ok && have[base] {
			continue
		}
		families++
		if !listed[n] {
			t.Errorf("README.md's Metrics section does not name %s", n)
		}
		if !mentioned[n] {
			t.Errorf("neither docs/operations.md nor docs/backend.md explains %s", n)
		}
	}
	if families < 30 {
		t.Fatalf("only %d herald_ metric families exported: %v", families, have)
	}
	registered := map[string]bool{}
	for _, file := range []string{"internal/metrics/metrics.go", "backend/proxy.go", "admin/console.go"} {
		for _, m := range regexp.MustCompile(`Name: *"(herald_[a-z0-9_]+)"`).FindAllStringSubmatch(readFile(t, file), -1) {
			registered[m[1]] = true
		}
	}
	for n := range listed {
		if !have[n] && !registered[n] {
			t.Errorf("README.md's Metrics section names %s, which Herald does not export", n)
		}
	}
}
