package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigFilePrecedence(t *testing.T) {
	p := writeConfig(t, `
addr: 127.0.0.1:7000
drain-timeout: 45s
compression-level: 5
allowed-origins: [https://a.example, "*.b.example"]
heartbeat-interval: 20s
`)
	t.Setenv("HERALD_DRAIN_TIMEOUT", "40s") // env beats the file
	sc, err := parseServe([]string{"--config", p, "--compression-level", "7"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sc.server
	switch {
	case sc.addr != "127.0.0.1:7000":
		t.Errorf("addr %q: the file should set it", sc.addr)
	case cfg.DrainTimeout != 40*time.Second:
		t.Errorf("drain %s: the environment should beat the file", cfg.DrainTimeout)
	case cfg.CompressionLevel != 7:
		t.Errorf("level %d: the flag should beat the file", cfg.CompressionLevel)
	case cfg.HeartbeatInterval != 20*time.Second:
		t.Errorf("heartbeat %s", cfg.HeartbeatInterval)
	case strings.Join(cfg.AllowedOrigins, " ") != "https://a.example *.b.example":
		t.Errorf("origins %v", cfg.AllowedOrigins)
	}
	// The variable HERALD_CONFIG works like --config.
	t.Setenv("HERALD_CONFIG", p)
	if sc, err := parseServe(nil, &bytes.Buffer{}); err != nil || sc.addr != "127.0.0.1:7000" {
		t.Fatalf("HERALD_CONFIG: %v %v", sc, err)
	}
}

func TestInvalidConfigFileExits2NamingTheField(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown field", "adress: 127.0.0.1:1\n", `herald.yaml: unknown key "adress"; did you mean addr?`},
		{"bad duration", "drain-timeout: soon\n", `herald.yaml: drain-timeout: "soon" is not a duration`},
		{"duration without a unit", "heartbeat-interval: 5\n", `herald.yaml: heartbeat-interval: "5" is not a duration: it needs a unit, e.g. 5s`},
		{"bad bool", "no-compression: maybe\n", `herald.yaml: no-compression: "maybe" is not a boolean: use true or false`},
		{"bad int", "read-limit: lots\n", `herald.yaml: read-limit: "lots" is not a whole number, e.g. 65536`},
		{"rejected by validation", "compression-level: 42\n", "herald.yaml: compression-level: must be 1..9 (got 42)"},
		{"not YAML", "addr: [unclosed\n", "not valid YAML"},
		{"nested map", "addr: {host: x}\n", `herald.yaml: addr: expected a value or a list, not a mapping`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeConfig(t, tt.text)
			var out, errb bytes.Buffer
			code := run([]string{"serve", "--config", p}, &out, &errb)
			if code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 mentioning %s", code, errb.String(), tt.want)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--config", "/nonexistent/herald.yaml"}, &out, &errb); code != 2 {
		t.Fatalf("missing file: exit %d", code)
	}
}
