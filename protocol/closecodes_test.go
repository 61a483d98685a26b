package protocol_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
)

// The close-code table has copies for readers of the docs and for the
// JavaScript client; these tests fail when one of them drifts from
// protocol.CloseCodes.

func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("../" + path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCloseCodesSorted(t *testing.T) {
	if !slices.IsSortedFunc(protocol.CloseCodes, func(a, b protocol.CloseCode) int { return a.Code - b.Code }) {
		t.Fatal("CloseCodes is not sorted by code")
	}
	for _, c := range protocol.CloseCodes {
		got, ok := protocol.LookupCloseCode(c.Code)
		if !ok || got.Name != c.Name {
			t.Errorf("LookupCloseCode(%d) = %+v, %v", c.Code, got, ok)
		}
		if protocol.CloseReconnects(c.Code) != c.Reconnect {
			t.Errorf("CloseReconnects(%d) = %v", c.Code, !c.Reconnect)
		}
		if strings.HasPrefix(c.Advice, "yes") != c.Reconnect || strings.HasPrefix(c.Advice, "no") == c.Reconnect {
			t.Errorf("%d: advice %q does not match Reconnect=%v", c.Code, c.Advice, c.Reconnect)
		}
	}
	if !protocol.CloseReconnects(4999) {
		t.Error("an unknown code must reconnect with backoff")
	}
}

// TestCloseCodesProtocolDoc compares the table of docs/protocol.md: the
// same codes, the same advice, and "never sent" exactly where Herald
// never sends the code.
func TestCloseCodesProtocolDoc(t *testing.T) {
	doc := readRepoFile(t, "docs/protocol.md")
	i := strings.Index(doc, "## Close codes\n")
	if i < 0 {
		t.Fatal("docs/protocol.md has no Close codes section")
	}
	section := doc[i:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	row := regexp.MustCompile(`(?m)^\| (\d{4}) \| (.*) \| (.*) \|$`)
	var codes []int
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		code, _ := strconv.Atoi(m[1])
		codes = append(codes, code)
		c, ok := protocol.LookupCloseCode(code)
		if !ok {
			t.Errorf("docs/protocol.md lists %d, which protocol.CloseCodes does not", code)
			continue
		}
		if advice := strings.ReplaceAll(m[3], "`", ""); advice != c.Advice {
			t.Errorf("docs/protocol.md: %d: reconnect %q, protocol.CloseCodes %q", code, advice, c.Advice)
		}
		if never := strings.HasPrefix(m[2], "never sent"); never == c.Sent {
			t.Errorf("docs/protocol.md: %d: %q, but protocol.CloseCodes says Sent=%v", code, m[2], c.Sent)
		}
	}
	if want := allCodes(); !slices.Equal(codes, want) {
		t.Errorf("docs/protocol.md lists %v; protocol.CloseCodes has %v", codes, want)
	}
}

// TestCloseCodesClientDoc compares the table in package client's docs,
// which is protocol.CloseCodes' meaning and advice column for column.
func TestCloseCodesClientDoc(t *testing.T) {
	doc := readRepoFile(t, "client/doc.go")
	var want strings.Builder
	want.WriteString("//\tcode  meaning                          reconnect\n")
	for _, c := range protocol.CloseCodes {
		fmt.Fprintf(&want, "//\t%d  %-31s  %s\n", c.Code, c.Meaning, c.Advice)
	}
	if !strings.Contains(doc, want.String()) {
		t.Errorf("client/doc.go's close-code table differs from protocol.CloseCodes; it should read:\n%s", want.String())
	}
}

// TestCloseCodesTransport checks that the transport's constants and the
// table in its docs name each code as protocol does.
func TestCloseCodesTransport(t *testing.T) {
	same := map[int]int{
		transport.CloseNormal:          protocol.CloseNormal,
		transport.CloseGoingAway:       protocol.CloseGoingAway,
		transport.CloseProtocolError:   protocol.CloseProtocolError,
		transport.CloseUnsupportedData: protocol.CloseUnsupportedData,
		transport.CloseAbnormal:        protocol.CloseAbnormal,
		transport.CloseInvalidPayload:  protocol.CloseInvalidPayload,
		transport.ClosePolicyViolation: protocol.ClosePolicyViolation,
		transport.CloseMessageTooBig:   protocol.CloseMessageTooBig,
		transport.CloseInternalError:   protocol.CloseInternalError,
		transport.CloseTryAgainLater:   protocol.CloseTryAgainLater,
		transport.CloseSlowConsumer:    protocol.CloseSlowConsumer,
	}
	for tc, pc := range same {
		if tc != pc {
			t.Errorf("transport has %d where protocol has %d", tc, pc)
		}
	}
	doc := readRepoFile(t, "transport/doc.go")
	row := regexp.MustCompile(`(?m)^//\t(\d{4})  (Close\w+) `)
	n := 0
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		code, _ := strconv.Atoi(m[1])
		n++
		if c, ok := protocol.LookupCloseCode(code); ok && c.Name != m[2] {
			t.Errorf("transport/doc.go calls %d %s; protocol calls it %s", code, m[2], c.Name)
		}
	}
	if n == 0 {
		t.Error("no close-code table found in transport/doc.go")
	}
}

// TestCloseCodesJSClient compares the JavaScript client's
// NO_RECONNECT_CODES, and the list in its type declarations, with the
// codes protocol.CloseCodes says not to reconnect after.
func TestCloseCodesJSClient(t *testing.T) {
	var want []int
	for _, c := range protocol.CloseCodes {
		if !c.Reconnect {
			want = append(want, c.Code)
		}
	}
	for path, pattern := range map[string]string{
		"clients/js/src/herald.js":   `NO_RECONNECT_CODES = Object\.freeze\(\[([^\]]*)\]\)`,
		"clients/js/src/herald.d.ts": `does not reconnect: ([\d, ]+)\.`,
	} {
		m := regexp.MustCompile(pattern).FindStringSubmatch(readRepoFile(t, path))
		if m == nil {
			t.Errorf("%s: no list of codes that stop the client", path)
			continue
		}
		var got []int
		for _, f := range strings.Split(m[1], ",") {
			code, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				t.Fatalf("%s: %q: %v", path, m[1], err)
			}
			got = append(got, code)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s stops on %v; protocol.CloseCodes on %v", path, got, want)
		}
	}
}

func allCodes() []int {
	var codes []int
	for _, c := range protocol.CloseCodes {
		codes = append(codes, c.Code)
	}
	return codes
}
