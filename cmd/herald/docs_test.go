package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readRepoDoc returns a file of the repository, relative to its root.
func readRepoDoc(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

var (
	backticked  = regexp.MustCompile("`([^`]*)`")
	flagInCell  = regexp.MustCompile("`(--[a-z0-9-]+)`")
	flagMention = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])--([a-z][a-z0-9-]*)`)
	envMention  = regexp.MustCompile(`\bHERALD_[A-Z0-9_]+\b`)
)

// readmeFlagRow is one row of the README's configuration table.
type readmeFlagRow struct {
	line     int
	flags    []string // without the dashes
	envs     []string
	defaults map[int]string // flag index → the default column's value for it, where it gives one
}

// readmeFlagTable parses the table of README.md's "Configuration"
// section: the rows whose first cell names flags.
func readmeFlagTable(tb testing.TB) []readmeFlagRow {
	tb.Helper()
	readme := readRepoDoc(tb, "README.md")
	start := strings.Index(readme, "\n## Configuration\n")
	if start < 0 {
		tb.Fatal("README.md has no Configuration section")
	}
	firstLine := strings.Count(readme[:start], "\n") + 2
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var rows []readmeFlagRow
	for i, l := range strings.Split(section, "\n") {
		if !strings.HasPrefix(l, "| `--") {
			continue
		}
		cells := strings.Split(l, " | ")
		if len(cells) < 4 {
			tb.Fatalf("README.md:%d: a row of the configuration table with %d cells: %q", firstLine+i, len(cells), l)
		}
		row := readmeFlagRow{line: firstLine + i}
		for _, m := range flagInCell.FindAllStringSubmatch(cells[0], -1) {
			row.flags = append(row.flags, strings.TrimPrefix(m[1], "--"))
		}
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			row.envs = append(row.envs, m[1])
		}
		// "`100`, 2× rate": one part per flag; a part that starts with a
		// backticked value gives that flag's default ("— (required with
		// `--backend-url`)" gives none).
		row.defaults = map[int]string{}
		for j, part := range strings.Split(cells[2], ", ") {
			if m := backticked.FindStringSubmatchIndex(part); m != nil && m[0] == 0 {
				row.defaults[j] = part[m[2]:m[3]]
			}
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		tb.Fatal("README.md: no rows in the configuration table")
	}
	return rows
}

// sameDefault reports whether a default written in the README (24h, 2m,
// 65536) is the flag's default as --help shows it (24h0m0s, 2m0s, 65536).
func sameDefault(doc, def string) bool {
	if doc == def {
		return true
	}
	d1, err1 := time.ParseDuration(doc)
	d2, err2 := time.ParseDuration(def)
	return err1 == nil && err2 == nil && d1 == d2
}

// TestReadmeConfigTableMatchesServeFlags: every flag of herald serve has
// a row in README.md's configuration table, with its variable and, where
// the row gives one as a value, its default; every flag the table names
// exists. A config file's keys are the flag names, so this covers them too.
func TestReadmeConfigTableMatchesServeFlags(t *testing.T) {
	fs := serveFlagSet()
	documented := map[string]int{} // flag → README line
	for _, row := range readmeFlagTable(t) {
		if len(row.envs) != len(row.flags) {
			t.Errorf("README.md:%d: %d flags but %d variables (%v, %v)", row.line, len(row.flags), len(row.envs), row.flags, row.envs)
		}
		for i, name := range row.flags {
			if prev, ok := documented[name]; ok {
				t.Errorf("README.md:%d: --%s already has a row at line %d", row.line, name, prev)
			}
			documented[name] = row.line
			fl := fs.Lookup(name)
			if fl == nil {
				msg := "README.md:%d: --%s is not a flag of herald serve"
				if s := suggestFlag(fs, name); s != "" {
					msg += " (" + s + "?)"
				}
				t.Errorf(msg, row.line, name)
				continue
			}
			if i < len(row.envs) && row.envs[i] != envName(name) {
				t.Errorf("README.md:%d: --%s's variable is %s, not %s", row.line, name, envName(name), row.envs[i])
			}
			if def, ok := row.defaults[i]; ok && !sameDefault(def, fl.DefValue) {
				t.Errorf("README.md:%d: --%s defaults to %q, not %q", row.line, name, fl.DefValue, def)
			}
		}
	}
	fs.VisitAll(func(fl *flag.Flag) {
		if _, ok := documented[fl.Name]; !ok {
			t.Errorf("--%s (herald serve --help) has no row in README.md's configuration table", fl.Name)
		}
	})
}

// otherTools are the flags of programs other than herald that the docs
// show (docker, git, redis-server, node), so that a mention of one of
// them is not taken for a herald flag that does not exist.
var otherTools = []string{
	"always", "appendonly", "build-arg", "network", "rm", "save", "tags", "test", "ulimit",
}

// herald's flags by command, read from each command's --help.
func heraldFlagNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"help": true}
	fs := serveFlagSet()
	fs.VisitAll(func(fl *flag.Flag) { names[fl.Name] = true })
	helpFlag := regexp.MustCompile(`(?m)^\s+--?([a-z][a-z0-9-]*)`)
	for _, cmd := range [][]string{
		{"connect"}, {"publish"}, {"token"},
		{"bench"}, {"bench", "rolling"}, {"bench", "scale"}, {"bench", "floor"},
	} {
		var out, errb bytes.Buffer
		run(append(cmd, "--help"), &out, &errb)
		found := helpFlag.FindAllStringSubmatch(out.String()+errb.String(), -1)
		if len(found) == 0 {
			t.Fatalf("herald %s --help lists no flags:\n%s%s", strings.Join(cmd, " "), out.String(), errb.String())
		}
		for _, m := range found {
			names[m[1]] = true
		}
	}
	names["render"] = true // herald bench scale --render FILE, an argument form of its own
	return names
}

// docFiles are the pages a newcomer reads.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "deploy/README.md", "deploy/nginx/README.md", "clients/js/README.md"}
	more, err := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	if err != nil || len(more) == 0 {
		t.Fatalf("docs/*.md: %v", err)
	}
	for _, m := range more {
		files = append(files, strings.TrimPrefix(filepath.ToSlash(m), "../../"))
	}
	return files
}

// TestDocsNameOnlyRealFlags: every --flag and HERALD_* variable the docs
// mention is one of herald's (a flag of one of its commands, a serve
// flag's variable, or one of the few other variables it reads), so a
// renamed or removed flag cannot live on in the docs.
func TestDocsNameOnlyRealFlags(t *testing.T) {
	names := heraldFlagNames(t)
	envs := map[string]bool{
		"HERALD_URL":      true, // herald publish --url
		"HERALD_IO_URING": true, // also read by package transport itself
	}
	serveFlagSet().VisitAll(func(fl *flag.Flag) { envs[envName(fl.Name)] = true })
	for _, file := range docFiles(t) {
		for i, line := range strings.Split(readRepoDoc(t, file), "\n") {
			for _, m := range flagMention.FindAllStringSubmatch(line, -1) {
				if !names[m[1]] && !slices.Contains(otherTools, m[1]) {
					t.Errorf("%s:%d: --%s is no flag of herald (if it is another program's, add it to otherTools)", file, i+1, m[1])
				}
			}
			for _, env := range envMention.FindAllString(line, -1) {
				if !envs[env] {
					t.Errorf("%s:%d: %s is no variable herald reads", file, i+1, env)
				}
			}
		}
	}
}

// markdownAnchors returns the anchors GitHub gives the headings of md:
// lower case, punctuation dropped, spaces as hyphens, "-1", "-2" after
// repeats. Headings inside fenced code are not headings.
func markdownAnchors(md string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	link := regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	fenced := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		h = link.ReplaceAllString(h, "$1")
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		if n, ok := seen[a]; ok {
			seen[a] = n + 1
			anchors[a+"-"+strconv.Itoa(n+1)] = true
			continue
		}
		seen[a] = 0
		anchors[a] = true
	}
	return anchors
}

// TestDocsLinksResolve: every relative link of the repository's Markdown
// pages names a file that exists and, for a Markdown page, a heading it
// has.
func TestDocsLinksResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	var pages []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		if d.IsDir() {
			if d.Name() == "node_modules" || (strings.HasPrefix(d.Name(), ".") && p != root) || rel == "bench/results" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".md") {
			pages = append(pages, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) < 5 {
		t.Fatalf("found only %v", pages)
	}
	fence := regexp.MustCompile("(?s)```.*?```")
	mdLink := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	scheme := regexp.MustCompile(`^[a-z][a-z0-9+.-]*:`)
	for _, page := range pages {
		text := fence.ReplaceAllString(readRepoDoc(t, page), "")
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if scheme.MatchString(target) {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := page
			if file != "" {
				path = filepath.ToSlash(filepath.Join(filepath.Dir(page), file))
			}
			st, err := os.Stat(filepath.Join(root, path))
			if err != nil {
				t.Errorf("%s: link %s: no file %s", page, target, path)
				continue
			}
			if anchor == "" || st.IsDir() || !strings.HasSuffix(path, ".md") {
				continue
			}
			if !markdownAnchors(readRepoDoc(t, path))[anchor] {
				t.Errorf("%s: link %s: %s has no heading #%s", page, target, path, anchor)
			}
		}
	}
}

// TestMakeFuzzRunsEveryTarget: `make fuzz` runs every fuzz target of the
// repository, each in its own package.
func TestMakeFuzzRunsEveryTarget(t *testing.T) {
	makefile := readRepoDoc(t, "Makefile")
	inMake := map[string]string{} // target → package directory
	line := regexp.MustCompile(`-fuzz '\^(Fuzz[A-Za-z0-9_]+)\$\$'.*\s(\./[A-Za-z0-9_/.-]*|\.)\s*$`)
	for _, l := range strings.Split(makefile, "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			inMake[m[1]] = strings.TrimSuffix(strings.TrimPrefix(m[2], "./"), "/")
		}
	}
	root := filepath.Join("..", "..")
	decl := regexp.MustCompile(`(?m)^func (Fuzz[A-Za-z0-9_]+)\(`)
	found := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == "node_modules" || d.Name() == "testdata" || (strings.HasPrefix(d.Name(), ".") && p != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(strings.TrimPrefix(p, root+string(filepath.Separator))))
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			found++
			switch got, ok := inMake[m[1]]; {
			case !ok:
				t.Errorf("make fuzz does not run %s (%s)", m[1], dir)
			case got != dir:
				t.Errorf("make fuzz runs %s in ./%s, but it is in ./%s", m[1], got, dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found < 10 {
		t.Fatalf("found only %d fuzz targets", found)
	}
}
