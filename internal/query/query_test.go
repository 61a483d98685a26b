package query

import (
	"net/url"
	"testing"
)

// Get agrees with url.ParseQuery and Values.Get.
func TestGetAgreesWithParseQuery(t *testing.T) {
	for _, tt := range []struct {
		name, raw string
	}{
		{"handshake", "EIO=4&transport=websocket"},
		{"with sid", "EIO=4&transport=polling&t=Nx1&sid=abcdefghijABCDEFGHIJ"},
		{"empty", ""},
		{"repeated key", "transport=polling&transport=websocket"},
		{"escaped value", "sid=a%2Bb&transport=web%20socket"},
		{"plus is a space", "transport=web+socket"},
		{"escaped key", "tr%61nsport=websocket&EIO=4"},
		{"bad escape skipped", "transport=%zz&transport=polling"},
		{"bad key escape skipped", "%zz=1&EIO=4"},
		{"semicolon skipped", "transport=a;b&transport=polling"},
		{"no value", "EIO&transport="},
		{"empty pairs", "&&EIO=4&&"},
		{"equals in value", "sid=a=b"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, tt.raw)
		})
	}
}

func check(t *testing.T, raw string) {
	t.Helper()
	want, _ := url.ParseQuery(raw)
	for _, key := range []string{"EIO", "transport", "sid", "t", "%zz", "", "a;b"} {
		if got := Get(raw, key); got != want.Get(key) {
			t.Errorf("Get(%q, %q) = %q, url.ParseQuery gives %q", raw, key, got, want.Get(key))
		}
	}
	for key := range want {
		if got := Get(raw, key); got != want.Get(key) {
			t.Errorf("Get(%q, %q) = %q, url.ParseQuery gives %q", raw, key, got, want.Get(key))
		}
	}
}

// Reading unescaped parameters allocates nothing.
func TestGetAllocatesNothing(t *testing.T) {
	raw := "EIO=4&transport=websocket&sid=abcdefghijABCDEFGHIJ"
	if n := testing.AllocsPerRun(100, func() { _ = Get(raw, "sid") }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}

func FuzzGet(f *testing.F) {
	for _, s := range []string{"EIO=4&transport=websocket", "a=%41&a=b", "k%3D=v;x", "+=+&%2B=%2b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) { check(t, raw) })
}
