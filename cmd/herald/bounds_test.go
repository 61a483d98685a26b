package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
)

// These tests attack the real binary the way a hostile client would and
// check that what it makes the server hold stays within the documented
// bounds: the server's peak RSS (VmHWM) is compared with its RSS before
// the attack.

// procStatusKB returns a field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
func procStatusKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", field, err)
			}
			return n
		}
	}
	t.Fatalf("%s not in /proc/%d/status", field, pid)
	return 0
}

// attacker is one hostile WebSocket client of the bounds tests.
type attacker struct {
	user string
	conn *websocket.Conn
}

func dialAttacker(ctx context.Context, t *testing.T, addr, user string) *attacker {
	t.Helper()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"X-Client-Id": {user}},
	})
	if err != nil {
		t.Fatalf("dial %s: %v", user, err)
	}
	c.SetReadLimit(1 << 20)
	return &attacker{user: user, conn: c}
}

// publishFrame is a publish of size bytes of data to the attacker's own
// user room.
func (a *attacker) publishFrame(n int, size int, ack bool) []byte {
	return fmt.Appendf(nil, `{"type":"publish","id":"p%d","room":"user:%s","event":"x","data":"%s","ack":%t}`,
		n, a.user, strings.Repeat("a", size), ack)
}

// TestPendingAckBytesBounded: clients publish 60 KB messages with ack to
// their own user room, read everything and never ack. Each is closed with
// 4008 once its pending messages pass --max-pending-ack-bytes (default 4 MiB), and
// the server's peak RSS stays within a small multiple of N × that bound,
// round after round. Before the byte bound, 1024 messages × 60 KB were
// held twice each (≈ 120 MB per connection).
func TestPendingAckBytesBounded(t *testing.T) {
	const (
		attackers = 10
		rounds    = 2
		messages  = 300 // 18 MB each: far over the bound
		size      = 60_000
	)
	srv := startBinary(t, nil, "--api-key", "bounds-test-key-0123456789", "--message-rate", "5000")
	pid := srv.cmd.Process.Pid
	before := procStatusKB(t, pid, "VmRSS")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for round := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, attackers)
		for i := range attackers {
			a := dialAttacker(ctx, t, srv.addr, fmt.Sprintf("acker-%d-%d", round, i))
			wg.Add(2)
			readErr := make(chan error, 1)
			go func() { // reads everything, acks nothing
				defer wg.Done()
				for {
					if _, _, err := a.conn.Read(ctx); err != nil {
						readErr <- err
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				defer a.conn.CloseNow()
				for n := range messages {
					if err := a.conn.Write(ctx, websocket.MessageText, a.publishFrame(n, size, true)); err != nil {
						break // closed by the server
					}
				}
				select {
				case err := <-readErr:
					if code, reason := websocket.CloseStatus(err), closeReason(err); code != 4008 || !strings.Contains(reason, "unacknowledged") {
						errs <- fmt.Errorf("%s: read ended with %v, want close 4008 (too many unacknowledged messages)", a.user, err)
					}
				case <-time.After(20 * time.Second):
					errs <- fmt.Errorf("%s: still open after %d unacknowledged messages of %d bytes", a.user, messages, size)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	peak := procStatusKB(t, pid, "VmHWM")
	// Each attacker may hold 4 MiB pending (plus one message), a message
	// being read and one being encoded; the garbage collector lets the
	// heap grow to about twice what is live.
	bound := before + attackers*3*herald.DefaultMaxPendingAckBytes/1024
	t.Logf("RSS before %d KiB, peak %d KiB (+%d KiB) with %d attackers; bound %d KiB", before, peak, peak-before, attackers, bound)
	if peak > bound {
		t.Errorf("peak RSS %d KiB over %d KiB: pending acks are not bounded in bytes", peak, bound)
	}
}

// closeReason returns the reason of a close error, or "".
func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

// TestSendQueueBytesBounded: clients that stop reading publish 60 KB
// messages to their own user room, so the server queues every one of
// them back to its publisher. Each is closed as a slow consumer once its
// queue would pass --send-queue-bytes (1 MiB here, so that the bound
// stands out from what a queue of 256 messages of 60 KB holds), and the
// server's peak RSS stays within a small multiple of N × the documented
// worst case per connection (the queue plus one batch being written:
// 2 MiB here). Before the byte bound a queue held up to 256 messages
// while blocked, 4 × 256 otherwise: 15–60 MB per connection.
func TestSendQueueBytesBounded(t *testing.T) {
	const (
		attackers = 12
		messages  = 400 // 24 MB each: far over the bound
		size      = 60_000
	)
	const queueBytes = 1 << 20
	srv := startBinary(t, nil, "--api-key", "bounds-test-key-0123456789", "--message-rate", "5000",
		"--send-queue-bytes", strconv.Itoa(queueBytes))
	pid := srv.cmd.Process.Pid
	before := procStatusKB(t, pid, "VmRSS")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	for i := range attackers {
		a := dialAttacker(ctx, t, srv.addr, fmt.Sprintf("sleeper-%d", i))
		wg.Add(1)
		go func() { // never reads
			defer wg.Done()
			defer a.conn.CloseNow()
			for n := range messages {
				if err := a.conn.Write(ctx, websocket.MessageText, a.publishFrame(n, size, false)); err != nil {
					return // closed by the server
				}
			}
		}()
	}
	wg.Wait()
	waitForMetric(t, srv.base, "herald_slow_consumer_disconnects_total", attackers)
	peak := procStatusKB(t, pid, "VmHWM")
	// Each attacker's queue may hold 1 MiB (plus one message) and one
	// batch of as much being written; the garbage collector lets the heap
	// grow to about twice what is live, and the messages being parsed
	// and encoded add their garbage.
	bound := before + attackers*6*queueBytes/1024
	t.Logf("RSS before %d KiB, peak %d KiB (+%d KiB) with %d attackers; bound %d KiB", before, peak, peak-before, attackers, bound)
	if peak > bound {
		t.Errorf("peak RSS %d KiB over %d KiB: send queues are not bounded in bytes", peak, bound)
	}
}

// waitForMetric polls the binary's /metrics until series reaches at
// least want.
func waitForMetric(t *testing.T, base, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got float64
	for time.Now().Before(deadline) {
		got = scrapeMetric(t, base, series)
		if got >= want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s = %v after 30s, want at least %v", series, got, want)
}

// scrapeMetric returns the value of series on the binary's /metrics; 0
// when absent.
func scrapeMetric(t *testing.T, base, series string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return v
		}
	}
	return 0
}
