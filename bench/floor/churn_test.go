//go:build linux

package floor_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	jwtauth "github.com/heraldrt/herald/auth/jwt"
	"github.com/heraldrt/herald/bench/floor"
	"github.com/heraldrt/herald/bench/loadgen"
)

const churnSecret = "floor-churn-secret-0123456789abcdef"

// startFloor runs the floor server with cfg on a free port until the test
// ends and returns its address.
func startFloor(t testing.TB, cfg floor.Config) string {
	t.Helper()
	cfg.Addr = "127.0.0.1:0" // the server picks a free port and names it
	listening := make(chan string, 1)
	cfg.Listening = func(a string) { listening <- a }
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- floor.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case addr := <-listening:
		return addr
	case err := <-served:
		served <- err // for the cleanup
		t.Fatalf("Run: %v", err)
		return ""
	}
}

// TestHandshakeFloorChurn runs the churn scenario at a small size against
// the handshake floor and against an in-process Herald with the same
// secret, as herald bench does with processes: every connect carries the
// token and gets its welcome; the floor refuses a bad token with 401.
func TestHandshakeFloorChurn(t *testing.T) {
	addr := startFloor(t, floor.Config{JWTSecret: []byte(churnSecret)})
	a, err := jwtauth.New(context.Background(), jwtauth.Config{Secret: []byte(churnSecret)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := herald.New(herald.Config{Authenticator: a, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = a.Close()
	})
	tok, err := jwtauth.Sign([]byte(churnSecret), "churn-user", nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		kind loadgen.Kind
		base string
	}{
		{"floor", loadgen.KindWS, "ws://" + addr},
		{"herald", loadgen.KindHerald, "ws" + strings.TrimPrefix(hs.URL, "http")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := loadgen.WorkerSpec{
				Kind: tc.kind, URLs: []string{tc.kind.EndpointURL(tc.base)}, Mode: "churn",
				SourceIPs: []string{"127.0.0.1"}, Header: map[string]string{"Authorization": "Bearer " + tok},
				ChurnConcurrency: 4, ChurnDuration: 500 * time.Millisecond,
			}
			res, err := loadgen.RunChurn(ctx, []loadgen.WorkerSpec{spec, spec}, loadgen.LocalWorkers, []int{os.Getpid()})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d connects (%.0f/s), %d failed, p99 %.1f ms", tc.name, res.Connects, res.ConnectsPerSec, res.Failures, res.Latency.P99)
			if res.Connects == 0 || res.Failures != 0 || res.ServerCPUPerConn <= 0 {
				t.Fatalf("%d connects, %d failed (%s), %.1f µs each", res.Connects, res.Failures, res.FirstErr, res.ServerCPUPerConn)
			}
		})
	}

	// A bad or missing token is refused before the 101.
	url := loadgen.KindWS.EndpointURL("ws://" + addr)
	for _, hdr := range []http.Header{nil, {"Authorization": {"Bearer " + tok[:len(tok)-2] + "xx"}}} {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := loadgen.Dial(dctx, url, loadgen.DialOptions{Header: hdr})
		cancel()
		if err == nil {
			c.Close()
			t.Fatalf("floor accepted the upgrade with header %v", hdr)
		}
		if !strings.Contains(err.Error(), "401") {
			t.Fatalf("refusal %v, want a 401", err)
		}
	}
}
