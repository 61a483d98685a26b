package herald

import (
	"net/url"
	"reflect"
	"testing"
)

// checkTarget fails unless parseTarget gives what url.ParseRequestURI
// gives for target, and fails where it fails.
func checkTarget(t *testing.T, target string) {
	t.Helper()
	var u url.URL
	ok := parseTarget(&u, target)
	want, err := url.ParseRequestURI(target)
	if ok != (err == nil) {
		t.Fatalf("parseTarget(%q) = %v; ParseRequestURI's error: %v", target, ok, err)
	}
	if ok && !reflect.DeepEqual(&u, want) {
		t.Fatalf("parseTarget(%q) = %#v, want %#v", target, u, *want)
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	for _, target := range []string{
		"/", "/ws", "/ws?", "/ws?token=a.b-c_d", "/ws?a=b?", "/ws??", "//ws", "///ws", "/a:b/c;d=e@f$g&h+i,j~",
		"/w%20s", "/w%zz", "/ws#frag", "/ws?q#f", "/ws!", "/ws*", "/(x)", "/é", "/ws\x7f", "/ws?\x01",
		"*", "ws", "", "http://h/ws", "?", "/?",
	} {
		checkTarget(t, target)
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/ws?token=x", "/ws?", "/a%2Fb?c", "//x", "/x?y?"} {
		f.Add(s)
	}
	f.Fuzz(checkTarget)
}
