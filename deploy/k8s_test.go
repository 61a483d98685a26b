package deploy

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/heraldrt/herald"
)

// The parts of the Kubernetes API the checks read.
type (
	objectMeta struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	}
	labelSelector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	httpGetAction struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port name
	}
	lifecycleHandler struct {
		Exec *struct {
			Command []string `yaml:"command"`
		} `yaml:"exec"`
		Sleep *struct {
			Seconds int64 `yaml:"seconds"`
		} `yaml:"sleep"`
		HTTPGet *httpGetAction `yaml:"httpGet"`
	}
	probe struct {
		HTTPGet *httpGetAction `yaml:"httpGet"`
	}
	keyRef struct {
		Name string `yaml:"name"`
		Key  string `yaml:"key"`
	}
	envVar struct {
		Name      string  `yaml:"name"`
		Value     *string `yaml:"value"`
		ValueFrom *struct {
			ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
			SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
			FieldRef        *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	}
	securityContext struct {
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
	}
	container struct {
		Name  string `yaml:"name"`
		Image string `yaml:"image"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		Env     []envVar `yaml:"env"`
		EnvFrom []struct {
			ConfigMapRef *keyRef `yaml:"configMapRef"`
			SecretRef    *keyRef `yaml:"secretRef"`
		} `yaml:"envFrom"`
		Lifecycle struct {
			PreStop *lifecycleHandler `yaml:"preStop"`
		} `yaml:"lifecycle"`
		ReadinessProbe  *probe                                       `yaml:"readinessProbe"`
		LivenessProbe   *probe                                       `yaml:"livenessProbe"`
		StartupProbe    *probe                                       `yaml:"startupProbe"`
		Resources       struct{ Requests, Limits map[string]string } `yaml:"resources"`
		SecurityContext securityContext                              `yaml:"securityContext"`
	}
	deployment struct {
		Metadata objectMeta `yaml:"metadata"`
		Spec     struct {
			Selector labelSelector `yaml:"selector"`
			Strategy struct {
				RollingUpdate struct {
					MaxUnavailable string `yaml:"maxUnavailable"`
				} `yaml:"rollingUpdate"`
			} `yaml:"strategy"`
			Template struct {
				Metadata objectMeta `yaml:"metadata"`
				Spec     struct {
					TerminationGracePeriodSeconds *int64          `yaml:"terminationGracePeriodSeconds"`
					SecurityContext               securityContext `yaml:"securityContext"`
					Containers                    []container     `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	service struct {
		Metadata objectMeta `yaml:"metadata"`
		Spec     struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Port       int    `yaml:"port"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	pdb struct {
		Metadata objectMeta `yaml:"metadata"`
		Spec     struct {
			MinAvailable   *string       `yaml:"minAvailable"`
			MaxUnavailable *string       `yaml:"maxUnavailable"`
			Selector       labelSelector `yaml:"selector"`
		} `yaml:"spec"`
	}
	dataObject struct { // ConfigMap or Secret
		Metadata   objectMeta        `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
	}
)

// manifests is every object in deploy/k8s, by kind and name.
type manifests struct {
	files       map[string]string // kind/name → file
	deployments map[string]deployment
	services    map[string]service
	pdbs        map[string]pdb
	configMaps  map[string]dataObject
	secrets     map[string]dataObject
}

// heraldDeployment is the Deployment that runs Herald; heraldContainer its container.
const heraldDeployment, heraldContainer = "herald", "herald"

func (m *manifests) herald() *container {
	d := m.deployments[heraldDeployment]
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == heraldContainer {
			return c
		}
	}
	return nil
}

// parseManifests decodes every document of every file; files maps a file
// name to its text.
func parseManifests(files map[string]string) (*manifests, error) {
	m := &manifests{files: map[string]string{}, deployments: map[string]deployment{}, services: map[string]service{},
		pdbs: map[string]pdb{}, configMaps: map[string]dataObject{}, secrets: map[string]dataObject{}}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, file := range names {
		dec := yaml.NewDecoder(strings.NewReader(files[file]))
		for {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			var head struct {
				APIVersion string     `yaml:"apiVersion"`
				Kind       string     `yaml:"kind"`
				Metadata   objectMeta `yaml:"metadata"`
			}
			if err := doc.Decode(&head); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if head.APIVersion == "" || head.Kind == "" || head.Metadata.Name == "" {
				return nil, fmt.Errorf("%s: a document lacks apiVersion, kind or metadata.name", file)
			}
			key := head.Kind + "/" + head.Metadata.Name
			if prev, dup := m.files[key]; dup {
				return nil, fmt.Errorf("%s: %s already defined in %s", file, key, prev)
			}
			m.files[key] = file
			switch head.Kind {
			case "Deployment":
				err = decodeInto(&doc, m.deployments, head.Metadata.Name)
			case "Service":
				err = decodeInto(&doc, m.services, head.Metadata.Name)
			case "PodDisruptionBudget":
				err = decodeInto(&doc, m.pdbs, head.Metadata.Name)
			case "ConfigMap":
				err = decodeInto(&doc, m.configMaps, head.Metadata.Name)
			case "Secret":
				err = decodeInto(&doc, m.secrets, head.Metadata.Name)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", file, key, err)
			}
		}
	}
	return m, nil
}

func decodeInto[T any](doc *yaml.Node, into map[string]T, name string) error {
	var v T
	if err := doc.Decode(&v); err != nil {
		return err
	}
	into[name] = v
	return nil
}

func readManifestFiles(t testing.TB) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "k8s", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	files := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = string(b)
	}
	return files
}

func loadManifests(t testing.TB) *manifests {
	t.Helper()
	m, err := parseManifests(readManifestFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.herald() == nil {
		t.Fatalf("no Deployment %q with a container %q", heraldDeployment, heraldContainer)
	}
	return m
}

// env resolves the Herald container's environment as the kubelet would:
// envFrom first, env entries over it. Secret values come from the example
// Secret; field references resolve to "<fieldPath>".
func (m *manifests) env(c *container) (map[string]string, []string) {
	var problems []string
	out := map[string]string{}
	lookup := func(kind string, objs map[string]dataObject, ref *keyRef) (string, bool) {
		o, ok := objs[ref.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s %q is not defined in deploy/k8s", kind, ref.Name))
			return "", false
		}
		v, ok := o.Data[ref.Key]
		if !ok {
			v, ok = o.StringData[ref.Key]
		}
		if !ok && ref.Key != "" {
			problems = append(problems, fmt.Sprintf("%s %q has no key %q", kind, ref.Name, ref.Key))
		}
		return v, ok
	}
	for _, ef := range c.EnvFrom {
		var o dataObject
		var ok bool
		switch {
		case ef.ConfigMapRef != nil:
			if o, ok = m.configMaps[ef.ConfigMapRef.Name]; !ok {
				problems = append(problems, fmt.Sprintf("ConfigMap %q is not defined in deploy/k8s", ef.ConfigMapRef.Name))
			}
		case ef.SecretRef != nil:
			if o, ok = m.secrets[ef.SecretRef.Name]; !ok {
				problems = append(problems, fmt.Sprintf("Secret %q is not defined in deploy/k8s", ef.SecretRef.Name))
			}
		}
		for k, v := range o.Data {
			out[k] = v
		}
		for k, v := range o.StringData {
			out[k] = v
		}
	}
	fromEnvFrom := maps.Clone(out)
	for _, e := range c.Env {
		var v string
		switch {
		case e.Value != nil:
			v = *e.Value
		case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
			v, _ = lookup("ConfigMap", m.configMaps, e.ValueFrom.ConfigMapKeyRef)
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			v, _ = lookup("Secret", m.secrets, e.ValueFrom.SecretKeyRef)
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			v = "<" + e.ValueFrom.FieldRef.FieldPath + ">"
		}
		if prev, ok := fromEnvFrom[e.Name]; ok && prev != v {
			problems = append(problems, fmt.Sprintf("%s is %q in a ConfigMap/Secret but %q in env: keep one", e.Name, prev, v))
		}
		out[e.Name] = v
	}
	return out, problems
}

// resolvePort turns a probe or targetPort value (number or name) into the
// container's port number, or 0.
func resolvePort(c *container, port string) int {
	if n, err := strconv.Atoi(port); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == port {
			return p.ContainerPort
		}
	}
	return 0
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// check returns every way the manifests disagree with the server or with
// each other; dockerAddr is the image's HERALD_ADDR, used when the
// manifests leave it unset, and envNames the variables herald serve knows.
func (m *manifests) check(dockerAddr string, envNames map[string]bool) []string {
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	d := m.deployments[heraldDeployment]
	c := m.herald()
	if c == nil {
		return []string{"no herald container"}
	}
	env, envProblems := m.env(c)
	problems = append(problems, envProblems...)

	// Ports: the container listens where HERALD_ADDR says.
	if len(c.Ports) != 1 {
		fail("herald container declares %d ports, want 1", len(c.Ports))
		return problems
	}
	containerPort := c.Ports[0].ContainerPort
	addr := env["HERALD_ADDR"]
	if addr == "" {
		addr = dockerAddr
	}
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil:
		fail("HERALD_ADDR %q: %v", addr, err)
	case port != strconv.Itoa(containerPort):
		fail("HERALD_ADDR %q listens on port %s but containerPort is %d", addr, port, containerPort)
	case host != "0.0.0.0" && host != "" && host != "::":
		fail("HERALD_ADDR %q is not reachable from outside the pod", addr)
	}

	// Probes.
	for _, p := range []struct {
		name, path string
		probe      *probe
	}{{"readinessProbe", "/readyz", c.ReadinessProbe}, {"livenessProbe", "/healthz", c.LivenessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			fail("%s must be an httpGet on %s", p.name, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			fail("%s path %q, the server answers on %s", p.name, p.probe.HTTPGet.Path, p.path)
		}
		if got := resolvePort(c, p.probe.HTTPGet.Port); got != containerPort {
			fail("%s port %q is %d, the server listens on %d", p.name, p.probe.HTTPGet.Port, got, containerPort)
		}
	}
	if c.StartupProbe != nil && c.StartupProbe.HTTPGet != nil && resolvePort(c, c.StartupProbe.HTTPGet.Port) != containerPort {
		fail("startupProbe port %q is not the server's", c.StartupProbe.HTTPGet.Port)
	}

	// Grace period ≥ drain + preStop + 10 s.
	drain := herald.DefaultDrainTimeout
	if v, ok := env["HERALD_DRAIN_TIMEOUT"]; ok {
		if drain, err = time.ParseDuration(v); err != nil {
			fail("HERALD_DRAIN_TIMEOUT %q: %v", v, err)
		}
	}
	var preStop time.Duration
	switch h := c.Lifecycle.PreStop; {
	case h == nil:
		fail("no preStop hook: the drain would start before endpoints are updated")
	case h.Sleep != nil:
		preStop = time.Duration(h.Sleep.Seconds) * time.Second
	case h.Exec != nil:
		fail("preStop exec %v: the distroless image has no shell or sleep binary; use lifecycle.preStop.sleep", h.Exec.Command)
	default:
		fail("preStop must be a sleep")
	}
	if preStop < 2*time.Second || preStop > 30*time.Second {
		fail("preStop sleep %s: want a few seconds (about 5 s)", preStop)
	}
	grace := 30 * time.Second // Kubernetes' default
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if need := drain + preStop + 10*time.Second; grace < need {
		fail("terminationGracePeriodSeconds %s < drain %s + preStop %s + 10s = %s: pods would be killed mid-drain",
			grace, drain, preStop, need)
	}

	// Labels and selectors.
	podLabels := d.Spec.Template.Metadata.Labels
	if !matches(d.Spec.Selector.MatchLabels, podLabels) {
		fail("Deployment selector %v does not match its pod labels %v", d.Spec.Selector.MatchLabels, podLabels)
	}
	svc, ok := m.services[heraldDeployment]
	if !ok {
		fail("no Service %q", heraldDeployment)
	}
	if !matches(svc.Spec.Selector, podLabels) {
		fail("Service selector %v does not match the pod labels %v", svc.Spec.Selector, podLabels)
	}
	for _, p := range svc.Spec.Ports {
		if got := resolvePort(c, p.TargetPort); got != containerPort {
			fail("Service targetPort %q is %d, containerPort is %d", p.TargetPort, got, containerPort)
		}
	}
	if len(m.pdbs) == 0 {
		fail("no PodDisruptionBudget")
	}
	for name, p := range m.pdbs {
		if !matches(p.Spec.Selector.MatchLabels, podLabels) {
			fail("PodDisruptionBudget %s selector %v does not match the pod labels %v", name, p.Spec.Selector.MatchLabels, podLabels)
		}
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			fail("PodDisruptionBudget %s needs exactly one of minAvailable and maxUnavailable", name)
		}
	}
	if mu := d.Spec.Strategy.RollingUpdate.MaxUnavailable; mu != "0" && mu != "0%" {
		fail("rollingUpdate.maxUnavailable %q: want 0, so drained clients always find a ready pod", mu)
	}

	// Security.
	isTrue := func(b *bool) bool { return b != nil && *b }
	if !isTrue(c.SecurityContext.RunAsNonRoot) && !isTrue(d.Spec.Template.Spec.SecurityContext.RunAsNonRoot) {
		fail("runAsNonRoot is not set")
	}
	if !isTrue(c.SecurityContext.ReadOnlyRootFilesystem) {
		fail("readOnlyRootFilesystem is not set")
	}
	if c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		fail("allowPrivilegeEscalation must be false")
	}
	for _, kind := range []string{"requests", "limits"} {
		r := c.Resources.Requests
		if kind == "limits" {
			r = c.Resources.Limits
		}
		if r["memory"] == "" {
			fail("resources.%s.memory is not set", kind)
		}
	}

	// Configuration the server accepts.
	for k := range env {
		if strings.HasPrefix(k, "HERALD_") && envNames != nil && !envNames[k] {
			fail("%s is not a herald serve setting (typo?)", k)
		}
	}
	if env["HERALD_JWT_SECRET"] == "" && env["HERALD_JWT_PUBLIC_KEY_FILE"] == "" && env["HERALD_JWKS_URL"] == "" &&
		env["HERALD_INSECURE_NO_AUTH"] != "true" {
		fail("no authentication configured: herald serve refuses to listen on %s without it", addr)
	}
	for _, e := range c.Env {
		if (e.Name == "HERALD_JWT_SECRET" || e.Name == "HERALD_API_KEY") && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			fail("%s must come from a Secret", e.Name)
		}
	}
	if ru := env["HERALD_REDIS_URL"]; ru == "" {
		fail("HERALD_REDIS_URL is not set: each pod would be an island with its own in-memory engine")
	} else if u, err := url.Parse(ru); err != nil || u.Scheme != "redis" && u.Scheme != "rediss" {
		fail("HERALD_REDIS_URL %q is not a redis:// URL", ru)
	} else if rs, ok := m.services[u.Hostname()]; ok {
		found := false
		for _, p := range rs.Spec.Ports {
			found = found || strconv.Itoa(p.Port) == u.Port()
		}
		if !found {
			fail("HERALD_REDIS_URL %q: Service %s has no port %s", ru, u.Hostname(), u.Port())
		}
	}
	return problems
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)
	df, err := parseDockerfile(readFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.check(df.final().env("HERALD_ADDR"), heraldEnvNames(t)) {
		t.Error(p)
	}
	for _, want := range []string{"Deployment/herald", "Service/herald", "ConfigMap/herald-config", "Secret/herald-secrets",
		"Deployment/herald-redis", "Service/herald-redis"} {
		if m.files[want] == "" {
			t.Errorf("deploy/k8s defines no %s", want)
		}
	}
	if !strings.Contains(readFile(t, "deploy/k8s/redis.yaml"), "EXAMPLE") || !strings.Contains(readFile(t, "deploy/k8s/secret.example.yaml"), "EXAMPLE") {
		t.Error("redis.yaml and secret.example.yaml must say they are examples")
	}
	if !strings.Contains(readFile(t, "deploy/k8s/deployment.yaml"), "LimitNOFILE") {
		t.Error("deployment.yaml lost its file descriptor guidance (LimitNOFILE)")
	}
}

// TestKubernetesChecksCatchMistakes breaks the manifests in the ways the
// checks exist for and expects each to be reported: a check that cannot
// fail protects nothing.
func TestKubernetesChecksCatchMistakes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, old, new, want string
	}{
		{"grace period too short", "deployment.yaml", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 40", "terminationGracePeriodSeconds"},
		{"longer drain, same grace", "deployment.yaml", `value: "30s"`, `value: "60s"`, "drain 1m0s"},
		{"no drain setting: server default", "deployment.yaml", "            - name: HERALD_DRAIN_TIMEOUT\n              value: \"30s\"\n", "", ""},
		{"exec preStop", "deployment.yaml", "sleep:\n                seconds: 5", "exec:\n                command: [sleep, \"5\"]", "distroless"},
		{"readiness on healthz", "deployment.yaml", "path: /readyz", "path: /healthz", "readinessProbe path"},
		{"liveness on another port", "deployment.yaml", "path: /healthz\n              port: http\n            initialDelaySeconds", "path: /healthz\n              port: 9090\n            initialDelaySeconds", "livenessProbe port"},
		{"addr on another port", "deployment.yaml", `value: "0.0.0.0:8080"`, `value: "0.0.0.0:9000"`, "HERALD_ADDR"},
		{"service targets another port", "service.yaml", "targetPort: http", "targetPort: 9000", "targetPort"},
		{"pdb selects nothing", "pdb.yaml", "matchLabels:\n      app.kubernetes.io/name: herald", "matchLabels:\n      app.kubernetes.io/name: herald-redis", "PodDisruptionBudget"},
		{"env typo", "configmap.yaml", "HERALD_LOG_LEVEL:", "HERALD_LOGLEVEL:", "HERALD_LOGLEVEL"},
		{"secret key missing", "secret.example.yaml", "  api-key:", "  apikey:", `no key "api-key"`},
		{"writable root", "deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
	}
	names := heraldEnvNames(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := readManifestFiles(t)
			if !strings.Contains(files[tt.file], tt.old) {
				t.Fatalf("%s no longer contains %q: update this test", tt.file, tt.old)
			}
			files[tt.file] = strings.Replace(files[tt.file], tt.old, tt.new, 1)
			m, err := parseManifests(files)
			if err != nil {
				t.Fatal(err)
			}
			problems := m.check("0.0.0.0:8080", names)
			if tt.want == "" {
				if len(problems) > 0 {
					t.Fatalf("want no problem, got %q", problems)
				}
				return
			}
			for _, p := range problems {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Fatalf("want a problem mentioning %q, got %q", tt.want, problems)
		})
	}
}
