package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestServeAddressInUse: `herald serve` on an address another process
// holds (a second `make run`, a dev server on 8080) stops with exit 1 and
// one line that names the setting as the user gave it and how to choose
// another, not Go's bare "bind: address already in use" under a generated
// API key and the log of a drain that never began.
func TestServeAddressInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().(*net.TCPAddr)
	next := net.JoinHostPort("127.0.0.1", strconv.Itoa(addr.Port+1))
	if addr.Port+1 >= 65535 {
		next = "127.0.0.1:8080"
	}
	cfg := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(cfg, []byte("addr: "+addr.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		env  string
		want string // the setting, as given and as suggested
	}{
		{"flag", []string{"--addr", addr.String()}, "", "--addr " + addr.String() + ": the address is already in use"},
		{"variable", nil, addr.String(), "HERALD_ADDR=" + addr.String() + ": the address is already in use"},
		{"config file", []string{"--config", cfg}, "", cfg + ": addr: " + addr.String() + ": the address is already in use"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("HERALD_ADDR", tt.env)
			}
			var out, errb bytes.Buffer
			code := run(append([]string{"serve", "--log-format", "text"}, tt.args...), &out, &errb)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, errb.String())
			}
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("stderr has %d lines, want the one that says why:\n%s", len(lines), errb.String())
			}
			if !strings.HasPrefix(lines[0], "herald serve: "+tt.want) {
				t.Errorf("stderr %q, want it to start with %q", lines[0], "herald serve: "+tt.want)
			}
			suggested := strings.Replace(tt.want, addr.String(), next, 1)
			suggested = suggested[:strings.Index(suggested, next)+len(next)]
			if !strings.Contains(lines[0], "e.g. "+suggested) {
				t.Errorf("stderr %q does not suggest %q", lines[0], suggested)
			}
		})
	}
	// A bad setting is still the error reported (exit 2), taken port or not.
	var out, errb bytes.Buffer
	code := run([]string{"serve", "--addr", addr.String(), "--compression-level", "42"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "--compression-level: must be 1..9") {
		t.Errorf("bad setting on a taken port: exit %d, stderr %q; want 2 naming --compression-level", code, errb.String())
	}
}

// TestServePprofAddressInUse: a taken --pprof-addr stops the server with
// the same explanation, its error the last line and no drain logged for a
// server that never served.
func TestServePprofAddressInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	var out, errb bytes.Buffer
	code := run([]string{"serve", "--addr", "127.0.0.1:0", "--pprof-addr", held.Addr().String()}, &out, &errb)
	lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
	want := "herald serve: --pprof-addr " + held.Addr().String() + ": the address is already in use"
	if code != 1 || !strings.HasPrefix(lines[len(lines)-1], want) || strings.Contains(errb.String(), "draining") {
		t.Fatalf("exit %d, stderr:\n%s\nwant exit 1, no drain, last line starting %q", code, errb.String(), want)
	}
}

// TestServeAddrWithoutPort: an --addr without a port (8080, localhost) is
// refused as not host:port, not as "not a loopback address" asking for
// authentication, which sends a newcomer the wrong way.
func TestServeAddrWithoutPort(t *testing.T) {
	for _, a := range []string{"8080", "127.0.0.1", "localhost", "[::1"} {
		_, err := parseServe([]string{"--addr", a}, &bytes.Buffer{})
		if err == nil {
			t.Fatalf("--addr %s: accepted", a)
		}
		if msg := err.Error(); !strings.Contains(msg, "is not host:port") || strings.Contains(msg, "loopback") {
			t.Errorf("--addr %s: %v", a, err)
		}
	}
	if _, err := parseServe([]string{"--addr", "localhost:0"}, &bytes.Buffer{}); err != nil {
		t.Fatalf("--addr localhost:0: %v", err)
	}
}

func TestOtherPort(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8081",
		":8080":          ":8081",
		"[::1]:9000":     "[::1]:9001",
		"127.0.0.1:80":   "127.0.0.1:8080",
		"0.0.0.0:65535":  "0.0.0.0:8080",
		"127.0.0.1:http": "127.0.0.1:8080",
	} {
		if got := otherPort(in); got != want {
			t.Errorf("otherPort(%q) = %q, want %q", in, got, want)
		}
	}
}
