package protocol_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// errorCodes returns the values of the Code* constants of codes.go: the
// error codes an error frame carries.
func errorCodes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Code") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("codes.go: %s is not a string literal", n.Name)
				}
				v, _ := strconv.Unquote(lit.Value)
				codes = append(codes, v)
			}
		}
	}
	if len(codes) == 0 {
		t.Fatal("codes.go: no Code* constants")
	}
	return codes
}

// TestErrorCodesProtocolDoc: the error-code table of docs/protocol.md
// lists every error code of codes.go, and no other.
func TestErrorCodesProtocolDoc(t *testing.T) {
	doc := readRepoFile(t, "docs/protocol.md")
	_, section, ok := strings.Cut(doc, "\n## Error codes\n")
	if !ok {
		t.Fatal("docs/protocol.md has no Error codes section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
	}
	codes := errorCodes(t)
	for _, c := range codes {
		if !slices.Contains(documented, c) {
			t.Errorf("docs/protocol.md's error codes lack %q (protocol/codes.go)", c)
		}
	}
	for _, c := range documented {
		if !slices.Contains(codes, c) {
			t.Errorf("docs/protocol.md lists the error code %q, which protocol/codes.go does not have", c)
		}
	}
}

// TestErrorCodesJSClient: the JavaScript client's ErrorCode type
// (clients/js/src/herald.d.ts) names every error code of codes.go, so that
// TypeScript users can switch on each.
func TestErrorCodesJSClient(t *testing.T) {
	dts := readRepoFile(t, "clients/js/src/herald.d.ts")
	_, union, ok := strings.Cut(dts, "export type ErrorCode =")
	if !ok {
		t.Fatal("clients/js/src/herald.d.ts has no ErrorCode type")
	}
	union, _, _ = strings.Cut(union, ";")
	var named []string
	for _, m := range regexp.MustCompile(`'([a-z_]+)'`).FindAllStringSubmatch(union, -1) {
		named = append(named, m[1])
	}
	for _, c := range errorCodes(t) {
		if !slices.Contains(named, c) {
			t.Errorf("clients/js/src/herald.d.ts: ErrorCode lacks %q (protocol/codes.go)", c)
		}
	}
}
