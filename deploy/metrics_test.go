package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/backend"
	"github.com/heraldrt/herald/client"
	"github.com/heraldrt/herald/internal/metrics"
)

// promQLKeywords are identifiers in PromQL that are not metric names:
// operators, modifiers and aggregations (which may be followed by "by (...)"
// rather than by their parenthesis).
var promQLKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true,
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// metricNames returns the metric names an expression selects. It skips
// strings, label matchers, ranges, numbers and durations, function and
// aggregation names (an identifier followed by "("), and the label lists of
// by/without/on/ignoring/group_left/group_right.
func metricNames(expr string) ([]string, error) {
	var names []string
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipTo := func(i int, closer byte) (int, error) {
		for j := i + 1; j < len(expr); j++ {
			switch expr[j] {
			case closer:
				return j + 1, nil
			case '"', '\'', '`':
				end := strings.IndexByte(expr[j+1:], expr[j])
				if end < 0 {
					return 0, fmt.Errorf("unterminated string at %d", j)
				}
				j += end + 1
			}
		}
		return 0, fmt.Errorf("no %q after offset %d", closer, i)
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '#':
			nl := strings.IndexByte(expr[i:], '\n')
			if nl < 0 {
				return names, nil
			}
			i += nl
		case c == '"' || c == '\'' || c == '`':
			end := strings.IndexByte(expr[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			i += end + 2
		case c == '{':
			j, err := skipTo(i, '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && (expr[k] == ' ' || expr[k] == '\t' || expr[k] == '\n') {
				k++
			}
			switch {
			case word == "by" || word == "without" || word == "on" || word == "ignoring" || word == "group_left" || word == "group_right":
				if k < len(expr) && expr[k] == '(' {
					end, err := skipTo(k, ')')
					if err != nil {
						return nil, err
					}
					j = end
				}
			case promQLKeywords[strings.ToLower(word)]:
			case k < len(expr) && expr[k] == '(':
				// function or aggregation
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names, nil
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"bare", "herald_connections", []string{"herald_connections"}},
		{"matchers and range", `rate(herald_errors_total{code="internal", x=~"a(b)"}[5m])`, []string{"herald_errors_total"}},
		{"aggregation by", "sum by (instance, le) (rate(a_bucket[1m])) / on (instance) group_left (x) b", []string{"a_bucket", "b"}},
		{"by after", "sum(rate(a[5m])) by (reason) > 0.5 * 2e3", []string{"a"}},
		{"offset and bool", "a offset 1h > bool 3 and on () b unless c", []string{"a", "b", "c"}},
		{"quantile", "histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))", []string{"h_bucket"}},
		{"label_values", "label_values(herald_connections, instance)", []string{"herald_connections", "instance"}},
		{"strings", `count_values("herald_not_a_metric", m)`, []string{"m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := metricNames(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}

// exported is the set of metric names a real Herald server exports, from
// its /metrics page: sample names (with _bucket, _sum, _count) and family
// names.
var exported struct {
	once  sync.Once
	names map[string]bool
	err   error
}

const testAPIKey = "0123456789abcdef0123"

// exportedMetrics starts a server in-process, makes every labelled metric
// grow a series (a vector without one is missing from /metrics), and
// scrapes it.
func exportedMetrics(t testing.TB) map[string]bool {
	t.Helper()
	exported.once.Do(func() { exported.names, exported.err = scrapeLiveServer() })
	if exported.err != nil {
		t.Fatal(exported.err)
	}
	return maps.Clone(exported.names) // callers add names of their own
}

func scrapeLiveServer() (map[string]bool, error) {
	// The backend proxy's metrics too: webhooks to a backend that is not
	// there (its calls fail, its events wait).
	reg := metrics.NewRegistry()
	proxy, err := backend.New(backend.Config{URL: "http://127.0.0.1:1", Hooks: []string{backend.HookEvents},
		Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LeaseTTL: 400 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = proxy.Close(ctx)
	}()
	hooks := proxy.Hooks()
	hooks.OnEvent = func(context.Context, *herald.ConnInfo, string, json.RawMessage) (any, error) {
		panic("metrics test: a hook panic, on purpose")
	}
	srv, err := herald.New(herald.Config{
		APIKeys:       []string{testAPIKey},
		MaxConnsPerIP: 1,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry:      reg,
		Hooks:         hooks,
	})
	if err != nil {
		return nil, err
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer func() { _ = srv.Shutdown(ctx) }()
	wsURL := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"

	c, err := client.Dial(ctx, wsURL, client.WithClientID("metrics"))
	if err != nil {
		return nil, err
	}
	if err := c.Join(ctx, "room"); err != nil {
		return nil, err
	}
	if _, err := c.Publish(ctx, "room", "hello", "world"); err != nil {
		return nil, err
	}
	var se *client.ServerError
	if _, err := c.Emit(ctx, "boom", nil); !errors.As(err, &se) { // hook panic → error frame
		return nil, fmt.Errorf("emit to a panicking hook: %v", err)
	}
	if _, err := client.Dial(ctx, wsURL, client.WithClientID("second")); err == nil { // over MaxConnsPerIP
		return nil, errors.New("a second connection from one IP was accepted")
	}
	req, _ := http.NewRequest("POST", ts.URL+"/api/v1/publish", strings.NewReader(`{"room":"room","event":"api","data":1}`))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if err := c.Close(); err != nil {
		return nil, err
	}
	var samples map[string]float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if samples, err = scrape(ts.URL + "/metrics"); err != nil {
			return nil, err
		}
		if samples["herald_connections"] == 0 && samples["# TYPE herald_connections_closed_total"] == 1 &&
			samples["# TYPE herald_backend_errors_total"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the closed connection never showed in herald_connections_closed_total")
		}
	}
	names := map[string]bool{}
	for k := range samples {
		if f, ok := strings.CutPrefix(k, "# TYPE "); ok {
			names[f] = true
			continue
		}
		name, _, _ := strings.Cut(k, "{")
		names[name] = true
	}
	return names, nil
}

// checkExprMetrics reports each metric an expression uses that Herald does
// not export.
func checkExprMetrics(t *testing.T, where, expr string, have map[string]bool) []string {
	t.Helper()
	names, err := metricNames(expr)
	if err != nil {
		t.Errorf("%s: %v in %q", where, err, expr)
		return nil
	}
	if len(names) == 0 {
		t.Errorf("%s: no metric in %q", where, expr)
	}
	for _, n := range names {
		if !have[n] {
			t.Errorf("%s: %s is not a metric Herald exports (expr %q)", where, n, expr)
		}
	}
	return names
}

// headingAnchors returns the GitHub anchors of a Markdown file's headings.
func headingAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		anchors[a] = true
	}
	return anchors
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestPrometheusAlerts(t *testing.T) {
	t.Parallel()
	const file = "deploy/prometheus/alerts.yml"
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(readFile(t, file)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	have := exportedMetrics(t)
	anchors := headingAnchors(readFile(t, "docs/operations.md"))
	seen := map[string]bool{}
	used := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := g.Name + "/" + r.Alert
			if r.Alert == "" {
				t.Errorf("%s: a rule that is not an alert (record %q)", g.Name, r.Record)
				continue
			}
			if seen[r.Alert] {
				t.Errorf("%s: duplicate alert name", where)
			}
			seen[r.Alert] = true
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: no expr", where)
			}
			if _, err := model.ParseDuration(r.For); err != nil {
				t.Errorf("%s: for %q: %v", where, r.For, err)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: labels.severity %q, want critical, warning or info", where, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no annotations.%s", where, a)
				}
			}
			_, anchor, ok := strings.Cut(r.Annotations["runbook_url"], "docs/operations.md#")
			if !ok || !anchors[anchor] {
				t.Errorf("%s: runbook_url %q is not a heading of docs/operations.md", where, r.Annotations["runbook_url"])
			}
			for _, n := range checkExprMetrics(t, where, r.Expr, have) {
				used[n] = true
			}
		}
	}
	for _, want := range []string{"herald_connections_opened_total", "herald_connections", "herald_heartbeat_terminations_total",
		"herald_broker_up", "herald_slow_consumer_disconnects_total"} {
		if !used[want] {
			t.Errorf("no alert uses %s", want)
		}
	}
	if promtool, err := exec.LookPath("promtool"); err == nil {
		out, err := exec.Command(promtool, "check", "rules", filepath.Join(repoRoot, file)).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
	} else {
		t.Log("promtool not on PATH: rule syntax checked by this test's own reader only")
	}
}

// collectExprs walks a Grafana dashboard and returns every "expr" string,
// and the queries of template variables, by where they are.
func collectExprs(v any, where string, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		if title, ok := v["title"].(string); ok {
			where += "/" + title
		} else if name, ok := v["name"].(string); ok {
			where += "/" + name
		}
		for k, x := range v {
			switch s, isString := x.(string); {
			case isString && k == "expr":
				out[where+"."+v["refId"].(string)+k] = s
			case isString && (k == "query" || k == "definition") && strings.Contains(s, "label_values("):
				out[where+"."+k] = s
			default:
				collectExprs(x, where, out)
			}
		}
	case []any:
		for _, x := range v {
			collectExprs(x, where, out)
		}
	}
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	var dash map[string]any
	if err := json.Unmarshal([]byte(readFile(t, "deploy/grafana/herald-dashboard.json")), &dash); err != nil {
		t.Fatalf("herald-dashboard.json: %v", err)
	}
	panels, _ := dash["panels"].([]any)
	if len(panels) == 0 {
		t.Fatal("no panels")
	}
	ids := map[float64]bool{}
	for _, p := range panels {
		p := p.(map[string]any)
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel %q: duplicate id %v", p["title"], id)
		}
		ids[id] = true
		if title, _ := p["title"].(string); title == "" {
			t.Errorf("panel %v has no title", id)
		}
	}
	exprs := map[string]string{}
	for k, v := range dash {
		if k != "annotations" {
			collectExprs(v, "", exprs)
		}
	}
	// Annotations have no refId.
	for _, a := range dash["annotations"].(map[string]any)["list"].([]any) {
		if e, ok := a.(map[string]any)["expr"].(string); ok {
			exprs["annotation/"+a.(map[string]any)["name"].(string)] = e
		}
	}
	have := exportedMetrics(t)
	have["instance"] = true // label_values(herald_connections, instance)
	used := map[string]bool{}
	for where, e := range exprs {
		for _, n := range checkExprMetrics(t, where, e, have) {
			used[n] = true
		}
		if strings.Contains(e, "histogram_quantile") && (!strings.Contains(e, "_bucket") || !regexp.MustCompile(`by \([^)]*\ble\b`).MatchString(e)) {
			t.Errorf("%s: histogram_quantile needs rate(..._bucket) summed by le: %q", where, e)
		}
	}
	for _, want := range []string{"herald_connections", "herald_connections_opened_total", "herald_connections_closed_total",
		"herald_messages_received_total", "herald_messages_sent_total", "herald_received_bytes_total", "herald_sent_bytes_total",
		"herald_fanout_duration_seconds_bucket", "herald_heartbeat_terminations_total", "herald_slow_consumer_disconnects_total",
		"herald_broker_up", "herald_limit_rejections_total", "herald_errors_total"} {
		if !used[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}
