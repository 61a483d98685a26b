package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDrainExitsWithinTimeoutRealBinary: with clients that never leave
// (they read nothing after the upgrade, so they neither act on
// server_shutdown nor answer the close frame), `herald serve` must be
// gone, exit status and all, before --drain-timeout has passed since
// SIGTERM: an orchestrator that waits exactly that long must not have
// to kill it.
func TestDrainExitsWithinTimeoutRealBinary(t *testing.T) {
	const drain = 3 * time.Second
	srv := startBinary(t, nil, "--drain-timeout", drain.String(), "--api-key", "drain-exit-key-0123456789")
	for range 4 {
		nc, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		req := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
		if _, err := nc.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		// From here on the client reads nothing and says nothing.
	}
	deadline := time.Now().Add(10 * time.Second)
	for countConnected(srv.logs.String()) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("clients not connected:\n%s", srv.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-srv.exited:
		srv.exited <- err // for the cleanup
	case <-time.After(drain + 10*time.Second):
		t.Fatalf("herald did not exit\n%s", srv.logs.String())
	}
	took := time.Since(start)
	t.Logf("exit %v %s after SIGTERM with a %s drain timeout\n%s", err, took, drain, srv.logs.String())
	if err != nil {
		t.Errorf("herald exited with %v\n%s", err, srv.logs.String())
	}
	if took >= drain {
		t.Errorf("the process was still there %s after SIGTERM, at or past the %s drain timeout\n%s", took, drain, srv.logs.String())
	}
	if !strings.Contains(srv.logs.String(), "terminating connections") {
		t.Errorf("the clients that stayed were not terminated:\n%s", srv.logs.String())
	}
}

// countConnected counts the connections the logs say were accepted.
func countConnected(logs string) int {
	return strings.Count(logs, `"msg":"connected"`)
}
