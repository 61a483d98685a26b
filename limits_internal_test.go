package herald

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every label of herald_limit_rejections_total is a limitName, and the
// docs list the same ones: operations.md's metrics table names them all
// in herald_limit_rejections_total's row, and security.md's table of
// bounds gives each its row ({limit="x"}).
func TestLimitNamesDocumented(t *testing.T) {
	t.Parallel()
	ops, err := os.ReadFile("docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := os.ReadFile("docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for _, line := range strings.Split(string(ops), "\n") {
		if strings.HasPrefix(line, "| `herald_limit_rejections_total{limit}`") {
			row = line
		}
	}
	if row == "" {
		t.Fatal("operations.md has no row for herald_limit_rejections_total{limit}")
	}
	var documented []string
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(row, -1) {
		documented = append(documented, m[1])
	}
	var names []string
	for _, l := range limitNames {
		names = append(names, string(l))
		if !strings.Contains(string(sec), `{limit="`+string(l)+`"}`) {
			t.Errorf("security.md's table of bounds has no row with {limit=%q}", l)
		}
	}
	slices.Sort(documented)
	slices.Sort(names)
	if !slices.Equal(documented, names) {
		t.Errorf("operations.md lists limits %v; the code counts %v", documented, names)
	}
}
