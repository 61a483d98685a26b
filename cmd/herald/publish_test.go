package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/client"
)

const cliAPIKey = "cli-test-api-key-0123456"

// startHerald runs a Herald server on a random port for the test and
// returns its base http:// URL.
func startHerald(t testing.TB, hooks herald.Hooks) string {
	t.Helper()
	srv, err := herald.New(herald.Config{
		APIKeys:      []string{cliAPIKey},
		Hooks:        hooks,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		DrainTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
	})
	return hs.URL
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/ws" }

// lockedBuffer is an io.Writer a test can read while another goroutine
// writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventually polls cond until it holds or fails the test after 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPublishCommand(t *testing.T) {
	base := startHerald(t, herald.Hooks{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listener, err := client.Dial(ctx, wsURL(base), client.WithClientID("alice"))
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	got := make(chan client.Event, 10)
	listener.OnAny(func(ev client.Event) { got <- ev })
	if err := listener.Join(ctx, "news"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		env      string // HERALD_API_KEY
		code     int
		stdout   string
		stderr   string
		room     string // where the message must arrive
		wantData string
	}{
		{
			name: "to a room",
			args: []string{"--url", base, "--api-key", cliAPIKey, "--room", "news", "--event", "headline", "--data", `{"title": "hi"}`},
			code: 0, stdout: `"room":"news"`, room: "news", wantData: `{"title":"hi"}`,
		},
		{
			name: "to a user, key from the environment",
			args: []string{"--url", base + "/", "--user", "alice", "--event", "dm"},
			env:  cliAPIKey,
			code: 0, stdout: `"room":"user:alice"`, room: "user:alice",
		},
		{
			name: "wrong key",
			args: []string{"--url", base, "--api-key", "wrong-key-wrong-key", "--room", "news", "--event", "x"},
			code: 1, stderr: `401 Unauthorized: {"error":"unauthorized","message":"missing or wrong API key (Authorization: Bearer <key>)"}
herald publish: the server's API key is its --api-key (HERALD_API_KEY) or, without one, the key it generated and logged once at start (api_key=hk_…)`,
		},
		{
			name: "rejected by the server",
			args: []string{"--url", base, "--api-key", cliAPIKey, "--room", "bad\x01room", "--event", "x"},
			code: 1, stderr: `400 Bad Request: {"error":"bad_request"`,
		},
		{
			name: "server down",
			args: []string{"--url", "http://127.0.0.1:1", "--api-key", cliAPIKey, "--room", "news", "--event", "x"},
			code: 1, stderr: "connection refused\nherald publish: nothing listens at http://127.0.0.1:1: start herald serve, or give its address with --url or HERALD_URL",
		},
		{name: "no key", args: []string{"--url", base, "--room", "news", "--event", "x"}, code: 2, stderr: "HERALD_API_KEY"},
		{name: "room and user", args: []string{"--api-key", cliAPIKey, "--room", "a", "--user", "b", "--event", "x"}, code: 2, stderr: "exactly one"},
		{name: "no event", args: []string{"--api-key", cliAPIKey, "--room", "a"}, code: 2, stderr: "--event"},
		{name: "bad data", args: []string{"--api-key", cliAPIKey, "--room", "a", "--event", "x", "--data", "{nope"}, code: 2, stderr: "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HERALD_API_KEY", tt.env)
			var stdout, stderr lockedBuffer
			code := run(append([]string{"publish"}, tt.args...), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
					code, stdout.String(), stderr.String(), tt.code, tt.stdout, tt.stderr)
			}
			if tt.room == "" {
				return
			}
			var resp herald.PublishResponse
			if err := json.Unmarshal([]byte(stdout.String()), &resp); err != nil || resp.MsgID == "" {
				t.Fatalf("stdout is not a publish response: %q (%v)", stdout.String(), err)
			}
			select {
			case ev := <-got:
				if ev.Room != tt.room || ev.MsgID != resp.MsgID || (tt.wantData != "" && string(ev.Data) != tt.wantData) {
					t.Errorf("received %+v, want msgId %s in %s with %s", ev, resp.MsgID, tt.room, tt.wantData)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the message never arrived")
			}
		})
	}
}

func TestPublishHelp(t *testing.T) {
	var stdout, stderr lockedBuffer
	if code := run([]string{"publish", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--api-key (HERALD_API_KEY)", "--url (HERALD_URL)", "--room", "--user", "--data"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help (on stdout) lacks %q:\n%s", want, stdout.String())
		}
	}
}
