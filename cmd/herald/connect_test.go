package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/heraldrt/herald"
)

func TestConnectCommand(t *testing.T) {
	t.Parallel()
	base := startHerald(t, herald.Hooks{
		OnEvent: func(_ context.Context, ci *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
			return map[string]any{"user": ci.UserID, "event": event, "data": data}, nil
		},
	})
	stdin, typed := io.Pipe()
	t.Cleanup(func() { typed.Close() })
	var stdout, stderr lockedBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- runConnect([]string{wsURL(base), "--client-id", "zoe"}, stdin, &stdout, &stderr)
	}()
	expect := func(what string, buf *lockedBuffer, subs ...string) {
		t.Helper()
		eventually(t, what, func() bool {
			for _, s := range subs {
				if !strings.Contains(buf.String(), s) {
					return false
				}
			}
			return true
		})
	}
	typeLine := func(line string) {
		t.Helper()
		if _, err := fmt.Fprintln(typed, line); err != nil {
			t.Fatal(err)
		}
	}

	expect("welcome", &stdout, `"type":"welcome"`, `"userId":"zoe"`)
	expect("connected state", &stderr, "# connected")
	typeLine("join lobby")
	expect("join reply", &stdout, `"type":"reply"`, `"data":{"room":"lobby"}`)
	typeLine(`publish lobby chat {"text": "hi there"}`)
	expect("own event", &stdout, `"type":"event","room":"lobby","event":"chat","data":{"text":"hi there"}`)
	typeLine(`emit ping {"n":1}`)
	expect("hook reply", &stdout, `"data":{"data":{"n":1},"event":"ping","user":"zoe"}`)
	typeLine(`{"type":"leave","id":"raw-1","room":"lobby"}`)
	expect("raw frame's reply", &stdout, `"id":"raw-1"`)
	typeLine("publish lobby chat")
	expect("server error", &stderr, "not_joined")
	typeLine("publish lobby chat {not json")
	expect("bad JSON refused", &stderr, "not valid JSON")
	typeLine("dance")
	expect("unknown command", &stderr, `unknown command "dance"`)
	typeLine("quit")
	if code := <-exit; code != 0 {
		t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("stdout line is not JSON: %q", line)
		}
	}
}

func TestConnectEndOfInput(t *testing.T) {
	t.Parallel()
	base := startHerald(t, herald.Hooks{})
	var stdout, stderr lockedBuffer
	code := runConnect([]string{"--client-id", "yan", wsURL(base)}, strings.NewReader("join a\n"), &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), `"type":"welcome"`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

func TestConnectFailures(t *testing.T) {
	t.Parallel()
	base := startHerald(t, herald.Hooks{})
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no URL", nil, 2, "give one URL, the WebSocket endpoint (e.g. ws://127.0.0.1:8080/ws)"},
		{"two URLs", []string{"ws://a", "ws://b"}, 2, "give one URL"},
		{"refused upgrade", []string{wsURL(base), "--client-id", "bad id!"}, 1, "HTTP 400 bad_client_id"},
		{"nobody listening", []string{"ws://127.0.0.1:1/ws"}, 1, "herald connect: nothing listens at 127.0.0.1:1: start herald serve"},
		{"not the WebSocket path", []string{wsURL(base) + "x"}, 1,
			"answered HTTP 404, not a WebSocket upgrade: is \"/wsx\" the server's WebSocket path? Herald's is /ws unless its --path says otherwise"},
		{"no scheme", []string{"127.0.0.1:8080/ws"}, 2, "\"127.0.0.1:8080/ws\" is not a WebSocket URL: give it with its scheme and host"},
		{"host taken for a scheme", []string{"localhost:8080/ws"}, 2, "is not a WebSocket URL"},
		{"help", []string{"--help"}, 0, ""}, // on stdout: below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr lockedBuffer
			code := run(append([]string{"connect"}, tt.args...), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", code, stderr.String(), tt.code, tt.stderr)
			}
			if tt.name == "help" && !strings.Contains(stdout.String(), "publish ROOM EVENT [JSON]") {
				t.Errorf("--help on stdout lacks the commands: %q", stdout.String())
			}
		})
	}
}

func TestSplitArgs(t *testing.T) {
	t.Parallel()
	f := newEnvFlags("connect", io.Discard)
	f.fs.String("token", "", "")
	f.fs.Bool("verbose", false, "")
	tests := []struct {
		name       string
		args       []string
		flags, pos string
	}{
		{"url first", []string{"ws://x", "--token", "t"}, "--token t", "ws://x"},
		{"url last", []string{"--token=t", "ws://x"}, "--token=t", "ws://x"},
		{"bool flag takes no value", []string{"--verbose", "ws://x"}, "--verbose", "ws://x"},
		{"after --", []string{"--", "-weird"}, "", "-weird"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags, pos := splitArgs(tt.args, f.fs)
			if strings.Join(flags, " ") != tt.flags || strings.Join(pos, " ") != tt.pos {
				t.Errorf("splitArgs(%q) = %q, %q", tt.args, flags, pos)
			}
		})
	}
}
