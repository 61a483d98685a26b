package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// runCmd runs the herald command line in-process and returns its exit
// code and outputs.
func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestBadFlagIsOneShortError: a mistyped flag or value gets one line
// naming it as typed, what it expects or the flag meant, and where to read
// more: not the whole --help scrolling it away.
func TestBadFlagIsOneShortError(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--port", "9000"}, "unknown flag --port; did you mean --addr?"},
		{[]string{"serve", "-port=9000"}, "unknown flag --port; did you mean --addr?"},
		{[]string{"serve", "--heartbeat-intervl", "5s"}, "unknown flag --heartbeat-intervl; did you mean --heartbeat-interval?"},
		{[]string{"serve", "--debug"}, "did you mean --log-level debug?"},
		{[]string{"serve", "--heartbeat-interval", "5"}, `--heartbeat-interval: "5" is not a duration: it needs a unit, e.g. 5s`},
		{[]string{"serve", "--drain-timeout", "soon"}, `--drain-timeout: "soon" is not a duration: write a number and a unit (ms, s, m, h), e.g. 30s`},
		{[]string{"serve", "--no-compression=maybe"}, `--no-compression: "maybe" is not a boolean: use true or false`},
		{[]string{"serve", "--read-limit", "64k"}, `--read-limit: "64k" is not a whole number, e.g. 65536`},
		{[]string{"serve", "--addr"}, "--addr needs a value, e.g. --addr 127.0.0.1:8080"},
		{[]string{"serve", "--log-level", "loud"}, `--log-level: "loud" is not one of debug, info, warn, error`},
		{[]string{"serve", "--jwt-secret", "short"}, "--jwt-secret: the secret has 5 bytes; HS256 needs at least 32"},
		{[]string{"publish", "--rom", "chat"}, "unknown flag --rom; did you mean --room?"},
		{[]string{"connect", "--clientid", "ada", "ws://127.0.0.1:1/ws"}, "unknown flag --clientid; did you mean --client-id?"},
		{[]string{"token", "--sub", "a", "--ttl", "2"}, `--ttl: "2" is not a duration: it needs a unit, e.g. 2s`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := runCmd(tt.args...)
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			if code != 2 || out != "" || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant exit 2 and a first line with %q", code, out, errs, tt.want)
			}
			if len(lines) != 2 || !strings.Contains(lines[1], "herald "+tt.args[0]+" --help") {
				t.Fatalf("stderr is %d lines, want the error and where to read more:\n%s", len(lines), errs)
			}
		})
	}
	if code, _, errs := runCmd("sevre"); code != 2 || !strings.Contains(errs, `unknown command "sevre"; did you mean serve?`) {
		t.Fatalf("unknown command: %d %s", code, errs)
	}
}

// TestBooleansReadAsPeopleWriteThem: a flag, its variable and the config
// file accept the same words for a boolean (yes/no as YAML 1.1 and most
// tools read them), so `no-compression: yes` means what it says.
func TestBooleansReadAsPeopleWriteThem(t *testing.T) {
	p := writeConfig(t, "no-compression: yes\npresence-events: off\n")
	sc, err := parseServe([]string{"--config", p, "--demo=on"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !sc.server.DisableCompression || sc.server.PresenceEvents || !sc.demo {
		t.Fatalf("no-compression %v presence-events %v demo %v", sc.server.DisableCompression, sc.server.PresenceEvents, sc.demo)
	}
	t.Setenv("HERALD_TRUST_FORWARDED_FOR", "Yes")
	if sc, err := parseServe(nil, &bytes.Buffer{}); err != nil || !sc.server.TrustForwardedFor {
		t.Fatalf("HERALD_TRUST_FORWARDED_FOR=Yes: %v", err)
	}
}

// TestConfigErrorsNameWhatTheUserTyped: an error of herald.New about a
// Config field is reported as the flag, the variable or the config file
// key the value came from, never as the Go field, and no warning comes
// before it.
func TestConfigErrorsNameWhatTheUserTyped(t *testing.T) {
	for _, tt := range []struct {
		flag, value, field, problem string
	}{
		{"compression-level", "12", "CompressionLevel", "must be 1..9 (got 12)"},
		{"send-queue", "-1", "SendQueueSize", "must be positive (got -1)"},
		{"read-limit", "100", "ReadLimit", "must be at least 256 bytes (got 100)"},
		{"api-key", "0123456789abcdef,short", "APIKeys", "key 2 of 2 has 5 characters; each needs at least 16"},
		{"max-rooms", "-3", "MaxRoomsPerConn", "must be positive (got -3)"},
		{"max-conns-per-ip", "-1", "MaxConnsPerIP", "must not be negative (got -1)"},
		{"upgrade-rate", "-2", "UpgradeRatePerIP", "must not be negative (got -2)"},
		{"ack-retries", "-1", "AckRetries", "must not be negative (got -1)"},
		{"node-id", "a/b", "NodeID", `may not contain "/"`},
		{"session-ttl", "-1s", "SessionTTL", "must be positive (got -1s)"},
	} {
		t.Run(tt.flag, func(t *testing.T) {
			check := func(how, want string, code int, errs string) {
				t.Helper()
				first := strings.SplitN(errs, "\n", 2)[0]
				if code != 2 || !strings.Contains(first, want+": "+tt.problem) {
					t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %q", how, code, errs, want+": "+tt.problem)
				}
				if strings.Contains(errs, tt.field) || strings.Contains(errs, "no authentication") {
					t.Errorf("%s: stderr names the Go field %s or carries a warning:\n%s", how, tt.field, errs)
				}
			}
			code, _, errs := runCmd("serve", "--addr", "127.0.0.1:0", "--"+tt.flag, tt.value)
			check("flag", "--"+tt.flag, code, errs)

			t.Setenv(envName(tt.flag), tt.value)
			code, _, errs = runCmd("serve", "--addr", "127.0.0.1:0")
			check("variable", envName(tt.flag), code, errs)
			os.Unsetenv(envName(tt.flag)) // t.Setenv restores it at the end

			p := writeConfig(t, tt.flag+": \""+tt.value+"\"\n")
			code, _, errs = runCmd("serve", "--addr", "127.0.0.1:0", "--config", p)
			check("config file", p+": "+tt.flag, code, errs)
		})
	}
}

// TestConfigFieldFlagsNameRealFlags: every entry of the field→flag table
// names a flag of herald serve, and a field named like its flag needs none.
func TestConfigFieldFlagsNameRealFlags(t *testing.T) {
	sc, err := parseServe(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for field, name := range configFieldFlags {
		if sc.flags.fs.Lookup(name) == nil {
			t.Errorf("configFieldFlags[%s] = %s: no such flag", field, name)
		}
	}
	for field, want := range map[string]string{
		"CompressionLevel": "compression-level", "MaxConnsPerIP": "max-conns-per-ip", "NodeID": "node-id",
		"LeaseTTL": "lease-ttl", "APIKeys": "api-key", "History[0].Size": "history", "DisableCompression": "no-compression",
		"Logger": "",
	} {
		if got := flagForField(sc.flags.fs, field); got != want {
			t.Errorf("flagForField(%s) = %q, want %q", field, got, want)
		}
	}
}

// TestHelpShowsDefaultsOnce: --help goes to stdout (it was asked for),
// shows each default once and leaves out zero ones, as Go's flag package
// does: no `(default: random) (default "")`, no `(default "false")`.
func TestHelpShowsDefaultsOnce(t *testing.T) {
	for _, cmd := range []string{"serve", "publish", "connect", "token"} {
		code, out, errs := runCmd(cmd, "--help")
		if code != 0 || errs != "" || !strings.Contains(out, "Usage: herald "+cmd) {
			t.Fatalf("%s --help: exit %d, stderr %q", cmd, code, errs)
		}
		for _, bad := range []string{`(default "")`, `(default "false")`, "(default false)", `(default "`} {
			if strings.Contains(out, bad) {
				t.Errorf("%s --help shows %s", cmd, bad)
			}
		}
	}
	_, out, _ := runCmd("serve", "--help")
	if !strings.Contains(out, "--node-id (HERALD_NODE_ID)\n      name of this node in logs and sessions (default: random)\n") {
		t.Errorf("--node-id help:\n%s", out)
	}
}
