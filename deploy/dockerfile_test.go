package deploy

import (
	"errors"
	"fmt"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// stage is one FROM and the instructions up to the next.
type stage struct {
	image, name string
	insts       []instruction
}

type dockerfile struct {
	args   map[string]string // global ARGs (before the first FROM) with defaults
	stages []stage
}

// parseDockerfile reads the subset of Dockerfile syntax the tests need:
// comments, line continuations, instructions, stages and global ARGs.
func parseDockerfile(text string) (*dockerfile, error) {
	df := &dockerfile{args: map[string]string{}}
	var insts []instruction
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		insts = append(insts, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	for _, in := range insts {
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			var s stage
			for j := 0; j < len(f); j++ {
				switch {
				case strings.HasPrefix(f[j], "--"):
				case strings.EqualFold(f[j], "AS") && j+1 < len(f):
					s.name = f[j+1]
					j++
				case s.image == "":
					s.image = df.expand(f[j])
				}
			}
			df.stages = append(df.stages, s)
		case len(df.stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			df.args[k] = v
		case len(df.stages) == 0:
			return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		default:
			s := &df.stages[len(df.stages)-1]
			s.insts = append(s.insts, in)
		}
	}
	if len(df.stages) == 0 {
		return nil, errors.New("no FROM")
	}
	return df, nil
}

// expand substitutes global ARGs in a FROM image reference.
func (df *dockerfile) expand(s string) string {
	for k, v := range df.args {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "${"+k+"}", v), "$"+k, v)
	}
	return s
}

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.insts {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// env returns the value of an ENV key in the stage ("" when unset).
func (s *stage) env(key string) string {
	val := ""
	for _, in := range s.all("ENV") {
		for _, kv := range strings.Fields(in.args) {
			if k, v, ok := strings.Cut(kv, "="); ok && k == key {
				val = strings.Trim(v, `"`)
			}
		}
	}
	return val
}

// goBuild returns the stage's RUN instruction that builds cmd/herald.
func (s *stage) goBuild() (instruction, bool) {
	for _, in := range s.all("RUN") {
		if strings.Contains(in.args, "go build") && strings.Contains(in.args, "./cmd/herald") {
			return in, true
		}
	}
	return instruction{}, false
}

func (df *dockerfile) final() *stage { return &df.stages[len(df.stages)-1] }

// buildStage is the stage that runs `go build ./cmd/herald`.
func (df *dockerfile) buildStage() (*stage, error) {
	for i := range df.stages {
		if _, ok := df.stages[i].goBuild(); ok {
			return &df.stages[i], nil
		}
	}
	return nil, errors.New("no stage runs go build ./cmd/herald")
}

// goBuildFlags returns the -trimpath and -ldflags arguments of the build
// stage's go build, as arguments for exec.
func (df *dockerfile) goBuildFlags() ([]string, error) {
	bs, err := df.buildStage()
	if err != nil {
		return nil, err
	}
	run, _ := bs.goBuild()
	var flags []string
	if strings.Contains(run.args, "-trimpath") {
		flags = append(flags, "-trimpath")
	}
	m := regexp.MustCompile(`-ldflags[= ]"([^"]*)"`).FindStringSubmatch(run.args)
	if m == nil {
		return nil, fmt.Errorf("line %d: go build has no -ldflags \"...\"", run.line)
	}
	return append(flags, "-ldflags", m[1]), nil
}

// exposedPort is the final stage's single EXPOSE port.
func (df *dockerfile) exposedPort() (int, error) {
	ex := df.final().all("EXPOSE")
	if len(ex) != 1 {
		return 0, fmt.Errorf("final stage has %d EXPOSE instructions, want 1", len(ex))
	}
	p, _, _ := strings.Cut(ex[0].args, "/")
	return strconv.Atoi(p)
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	df, err := parseDockerfile(readFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	final := df.final()
	if len(df.stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(df.stages))
	}
	bs, err := df.buildStage()
	if err != nil {
		t.Fatal(err)
	}
	run, _ := bs.goBuild()

	t.Run("build stage", func(t *testing.T) {
		goMod := readFile(t, "go.mod")
		m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(goMod)
		if m == nil {
			t.Fatal("no go directive in go.mod")
		}
		if want := "golang:" + m[1]; bs.image != want && !strings.HasPrefix(bs.image, want+"-") && !strings.HasPrefix(bs.image, want+".") {
			t.Errorf("build stage FROM %s, want %s (go.mod says go %s)", bs.image, want, m[1])
		}
		if bs.env("CGO_ENABLED") != "0" && !strings.Contains(run.args, "CGO_ENABLED=0") {
			t.Error("the build stage must set CGO_ENABLED=0: the final image has no C library")
		}
		for _, want := range []string{"-trimpath", "-s -w", "-X main.version="} {
			if !strings.Contains(run.args, want) {
				t.Errorf("go build (line %d) lacks %q", run.line, want)
			}
		}
		if !strings.Contains(readFile(t, "cmd/herald/main.go"), "var version = ") {
			t.Error("cmd/herald has no `var version`: -X main.version would set nothing")
		}
	})

	t.Run("final stage", func(t *testing.T) {
		nonrootBase := strings.Contains(final.image, "distroless") && strings.HasSuffix(final.image, ":nonroot")
		users := final.all("USER")
		if !nonrootBase && len(users) == 0 {
			t.Errorf("final stage (%s) runs as root: use a :nonroot distroless base or USER 65532", final.image)
		}
		for _, u := range users {
			name, _, _ := strings.Cut(u.args, ":")
			if name == "root" || name == "0" {
				t.Errorf("line %d: USER %s", u.line, u.args)
			}
		}
		if !strings.Contains(final.image, "distroless/static") && final.image != "scratch" {
			t.Errorf("final stage FROM %s: want distroless/static or scratch", final.image)
		}
		ep := final.all("ENTRYPOINT")
		if len(ep) != 1 || ep[0].args != `["/herald", "serve"]` && ep[0].args != `["/herald","serve"]` {
			t.Fatalf(`want ENTRYPOINT ["/herald", "serve"], got %v`, ep)
		}
		var copied bool
		for _, c := range final.all("COPY") {
			f := strings.Fields(c.args)
			if len(f) == 3 && f[0] == "--from="+bs.name && f[2] == "/herald" {
				copied = true
			}
		}
		if !copied {
			t.Errorf("final stage does not COPY --from=%s ... /herald", bs.name)
		}
	})

	t.Run("ports", func(t *testing.T) {
		port, err := df.exposedPort()
		if err != nil {
			t.Fatal(err)
		}
		addr := final.env("HERALD_ADDR")
		host, p, ok := strings.Cut(addr, ":")
		if !ok || host != "0.0.0.0" || p != strconv.Itoa(port) {
			t.Errorf("ENV HERALD_ADDR=%q, want 0.0.0.0:%d (EXPOSE)", addr, port)
		}
		m := loadManifests(t)
		if cp := m.herald().Ports[0].ContainerPort; cp != port {
			t.Errorf("EXPOSE %d but deploy/k8s/deployment.yaml uses containerPort %d", port, cp)
		}
	})

	t.Run("built binary", func(t *testing.T) {
		bin, version := buildHerald(t)
		out, err := exec.Command(bin, "version").CombinedOutput()
		// The version the build passed wins; the commit and Go version
		// from the build info follow it in parentheses.
		if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), "herald "+version+" (") {
			t.Errorf("herald version = %q, %v; want %q and the build details", out, err, "herald "+version)
		}
		static, err := isStatic(bin)
		if err != nil {
			t.Fatal(err)
		}
		if !static {
			t.Error("binary is dynamically linked: it would not start on distroless/static")
		}
	})
}

// dockerignore is a parsed .dockerignore: patterns in order, later ones win.
type dockerignore []struct {
	re     *regexp.Regexp
	negate bool
}

func parseDockerignore(text string) dockerignore {
	var d dockerignore
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		line = path.Clean(strings.TrimPrefix(strings.TrimPrefix(line, "!"), "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		// A pattern that matches a directory excludes everything under it.
		re.WriteString("(/.*)?$")
		d = append(d, struct {
			re     *regexp.Regexp
			negate bool
		}{regexp.MustCompile(re.String()), neg})
	}
	return d
}

func (d dockerignore) excludes(p string) bool {
	out := false
	for _, pat := range d {
		if pat.re.MatchString(p) {
			out = !pat.negate
		}
	}
	return out
}

// TestDockerignoreKeepsBuildInputs fails when .dockerignore hides a file
// that `go build ./cmd/herald` reads (a source or embedded file of one of
// its packages, go.mod, go.sum): docker build is not run here, so this is
// what stands between a pattern and a broken image.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	t.Parallel()
	ig := parseDockerignore(readFile(t, ".dockerignore"))
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}|{{join .GoFiles ","}}|{{join .EmbedFiles ","}}{{end}}{{end}}`, "./cmd/herald")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	rootDir := strings.TrimSpace(string(root))
	inputs := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 3 {
			continue
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(f[0], rootDir), "/")
		for _, files := range f[1:] {
			for _, name := range strings.Split(files, ",") {
				if name != "" {
					inputs = append(inputs, path.Join(rel, name))
				}
			}
		}
	}
	if len(inputs) < 20 {
		t.Fatalf("go list found only %d build inputs", len(inputs))
	}
	for _, p := range inputs {
		if ig.excludes(p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
	for _, p := range []string{".git/config", "deploy/k8s/deployment.yaml", "transport/conn_test.go"} {
		if !ig.excludes(p) {
			t.Errorf(".dockerignore should exclude %s", p)
		}
	}
}
