package herald

import (
	"net/netip"
	"testing"
)

// addrOfRef is addrOf as it was: ParseAddr, then ParseAddrPort.
func addrOfRef(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// checkAddr fails unless addrOf(s) is what it was and addrString gives
// the address's String.
func checkAddr(t *testing.T, s string) {
	t.Helper()
	a, ok := addrOf(s)
	ra, rok := addrOfRef(s)
	if a != ra || ok != rok {
		t.Fatalf("addrOf(%q) = %v, %v; was %v, %v", s, a, ok, ra, rok)
	}
	if ok {
		if got, want := addrString(a, s), a.String(); got != want {
			t.Fatalf("addrString(%v, %q) = %q, want %q", a, s, got, want)
		}
	}
}

// TestAddrOf: addrOf parses as before (ParseAddr, then ParseAddrPort),
// and addrString is the parsed address's String.
func TestAddrOf(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"127.0.0.1:80", "10.1.2.3:65535", "1.2.3.4", "0.0.0.0:0", "255.255.255.255:1",
		"[::1]:80", "::1", "[::ffff:1.2.3.4]:80", "::ffff:1.2.3.4", "[fe80::1%eth0]:80", "fe80::1%eth0",
		"01.2.3.4:80", "1.2.3:80", "1.2.3.4.5:80", "[1.2.3.4]:80", "1.2.3.4%z:80", "1.2.3.4:", ":80", "",
		"[::1]", "[::1]:", "a:b", "1.2.3.4:80:90", " 1.2.3.4:80", "1.2.3.4:080",
	} {
		checkAddr(t, s)
	}
}

// FuzzAddrOf: addrOf and addrString agree with netip on any string.
func FuzzAddrOf(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:80", "::ffff:1.2.3.4", "1.2.3.4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkAddr(t, s) })
}
