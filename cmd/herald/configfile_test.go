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
		{"unknown field", "adress: 127.0.0.1:1\n", `unknown field "adress"`},
		{"bad duration", "drain-timeout: soon\n", `field "drain-timeout"`},
		{"bad int", "read-limit: lots\n", `field "read-limit"`},
		{"rejected by validation", "compression-level: 42\n", "CompressionLevel"},
		{"not YAML", "addr: [unclosed\n", "not valid YAML"},
		{"nested map", "addr: {host: x}\n", `field "addr"`},
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
