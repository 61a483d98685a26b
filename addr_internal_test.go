package herald

import (
	"net"
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

// tcpAddrString writes what net.TCPAddr.String writes, for any IP of 4
// or 16 bytes (IPv4, IPv4-mapped IPv6, IPv6), port and zone.
func TestTCPAddrString(t *testing.T) {
	t.Parallel()
	for _, a := range []*net.TCPAddr{
		{IP: net.IPv4(127, 0, 0, 1), Port: 54321},
		{IP: net.IP{10, 1, 2, 3}, Port: 0},
		{IP: net.IPv6loopback, Port: 65535},
		{IP: net.ParseIP("2001:db8::1:0:0:1"), Port: 80},
		{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 443},
		{IP: net.ParseIP("::192.0.2.1"), Port: 443},
		{IP: net.ParseIP("fe80::1"), Port: 8080, Zone: "eth0"},
		{IP: nil, Port: 1},
		{IP: net.IP{1, 2, 3}, Port: 1},
	} {
		if got, want := tcpAddrString(a), a.String(); got != want {
			t.Errorf("tcpAddrString(%#v) = %q, want %q", a, got, want)
		}
	}
}

func FuzzTCPAddrString(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1}, 80)
	f.Add([]byte(net.IPv6loopback), 65535)
	f.Add([]byte(net.IPv4(192, 0, 2, 1)), 1)
	f.Fuzz(func(t *testing.T, ip []byte, port int) {
		a := &net.TCPAddr{IP: ip, Port: port}
		if got, want := tcpAddrString(a), a.String(); got != want {
			t.Fatalf("tcpAddrString(%#v) = %q, want %q", a, got, want)
		}
	})
}
