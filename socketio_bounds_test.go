package herald_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald"
)

// The Socket.IO bounds probed as a hostile client would: raw Engine.IO
// long-polling requests, no socket.io-client, no file descriptor held
// between requests.

// pollHandshake opens an Engine.IO polling session with an extra header
// of pad bytes. It returns the status, and the sid when the handshake
// was served (or the refusal's JSON message).
func pollHandshake(t testing.TB, ts *testServer, pad int) (status int, sid, message string) {
	t.Helper()
	return pollHandshakeFrom(t, ts, pad, "")
}

// pollHandshakeFrom is pollHandshake with X-Forwarded-For: xff (none when
// empty).
func pollHandshakeFrom(t testing.TB, ts *testServer, pad int, xff string) (status int, sid, message string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.HTTP.URL+"/socket.io/?EIO=4&transport=polling", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pad > 0 {
		req.Header.Set("X-Pad", strings.Repeat("p", pad))
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("refused handshake: %d %q is not Engine.IO's JSON error", resp.StatusCode, body)
		}
		return resp.StatusCode, "", e.Message
	}
	open, _, _ := strings.Cut(string(body), "\x1e")
	var h struct {
		SID string `json:"sid"`
	}
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &h) != nil || h.SID == "" {
		t.Fatalf("handshake answered %q", body)
	}
	return resp.StatusCode, h.SID, ""
}

// pollJoined opens a Socket.IO long-polling session, CONNECTs it to the
// default namespace and joins it to room, and returns its sid.
func pollJoined(t testing.TB, ts *testServer, room string) string {
	t.Helper()
	_, sid, _ := pollHandshake(t, ts, 0)
	if st := pollPost(t, ts, sid, "40"); st != http.StatusOK {
		t.Fatalf("CONNECT post: %d", st)
	}
	if st, body := pollGet(t, ts, sid); st != http.StatusOK || !strings.HasPrefix(body, "40{") {
		t.Fatalf("CONNECT reply: %d %q", st, body)
	}
	if st := pollPost(t, ts, sid, `421["herald:join",{"room":"`+room+`"}]`); st != http.StatusOK {
		t.Fatalf("join post: %d", st)
	}
	if st, body := pollGet(t, ts, sid); st != http.StatusOK || !strings.HasPrefix(body, "431[") {
		t.Fatalf("join reply: %d %q", st, body)
	}
	return sid
}

// pollPost posts an Engine.IO payload to session sid and returns the
// status.
func pollPost(t testing.TB, ts *testServer, sid, payload string) int {
	t.Helper()
	resp, err := http.Post(ts.HTTP.URL+"/socket.io/?EIO=4&transport=polling&sid="+sid, "text/plain;charset=UTF-8", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// pollGet polls session sid once and returns the body.
func pollGet(t testing.TB, ts *testServer, sid string) (int, string) {
	t.Helper()
	resp, err := http.Get(ts.HTTP.URL + "/socket.io/?EIO=4&transport=polling&sid=" + sid)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Engine.IO polling sessions that never CONNECT hold their handshake
// request (kept for the CONNECT's admission) and no file descriptor: a
// client with no credential could open them by the hundred thousand, each
// holding what its headers weighed, for ConnectTimeout. Their bytes are
// bounded node-wide: past SocketIOConfig.MaxPendingBytes a handshake is
// refused with 403 and Engine.IO's JSON error, counted, and what a
// session held is given back once it joins a namespace or closes.
func TestSocketIOPendingSessionsBounded(t *testing.T) {
	t.Parallel()
	cfg := herald.Config{SocketIO: herald.SocketIOConfig{Enabled: true, MaxPendingBytes: 64 << 10, ConnectTimeout: time.Minute}}
	ts := startServer(t, cfg)

	var sids []string
	for len(sids) < 100 {
		status, sid, msg := pollHandshake(t, ts, 8<<10)
		if status != http.StatusOK {
			if status != http.StatusForbidden || !strings.Contains(msg, "retry") {
				t.Fatalf("refused handshake: %d %q, want 403 with a message saying to retry", status, msg)
			}
			break
		}
		sids = append(sids, sid)
	}
	// 64 KiB at about 10 KiB a session (8 KiB of header and the
	// session's own): 6 of them.
	if len(sids) < 5 || len(sids) > 7 {
		t.Fatalf("%d sessions of 8 KiB headers held before the refusal under 64 KiB", len(sids))
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="socketio_pending_bytes"}`); v < 1 {
		t.Fatalf("herald_limit_rejections_total{limit=\"socketio_pending_bytes\"} = %v, want >= 1", v)
	}
	if v := metricValue(t, ts, "herald_socketio_pending_bytes"); v < float64(len(sids)*(10<<10)) || v > 64<<10 {
		t.Fatalf("herald_socketio_pending_bytes = %v with %d sessions of 8 KiB headers pending", v, len(sids))
	}
	// Small handshakes fill what is left (a session is 2 KiB at least).
	for i := 0; ; i++ {
		status, sid, _ := pollHandshake(t, ts, 0)
		if status != http.StatusOK {
			break
		}
		if i == 5 {
			t.Fatal("6 small handshakes taken by a budget an 8 KiB one did not fit")
		}
		sids = append(sids, sid)
	}

	// One session joins the main namespace: what it held is given back.
	if st := pollPost(t, ts, sids[0], "40"); st != http.StatusOK {
		t.Fatalf("CONNECT post: %d", st)
	}
	if st, body := pollGet(t, ts, sids[0]); st != http.StatusOK || !strings.HasPrefix(body, "40{") {
		t.Fatalf("CONNECT reply: %d %q", st, body)
	}
	if status, sid, _ := pollHandshake(t, ts, 0); status != http.StatusOK {
		t.Fatalf("handshake after a pending session connected: %d, want 200", status)
	} else {
		sids = append(sids, sid)
	}

	// They all close: every byte comes back.
	for _, sid := range sids {
		if st := pollPost(t, ts, sid, "1"); st != http.StatusOK {
			t.Fatalf("close post: %d", st)
		}
	}
	waitFor(t, 5*time.Second, "the closed sessions' bytes given back", func() bool {
		status, sid, _ := pollHandshake(t, ts, 8<<10)
		if status == http.StatusOK {
			pollPost(t, ts, sid, "1")
		}
		return status == http.StatusOK
	})
	var held []string
	for len(held) < 4 {
		status, sid, _ := pollHandshake(t, ts, 8<<10)
		if status != http.StatusOK {
			t.Fatalf("handshake %d after the closes: %d", len(held), status)
		}
		held = append(held, sid)
	}
	for _, sid := range held {
		pollPost(t, ts, sid, "1")
	}
	waitFor(t, 5*time.Second, "herald_socketio_pending_bytes back to 0", func() bool {
		return metricValue(t, ts, "herald_socketio_pending_bytes") == 0
	})
}

// A Socket.IO polling client that joins a busy room and never polls holds
// no socket, only its buffer: the node's bound on queued bytes
// (MaxNodeQueuedBytes), which WebSockets count in, counts these buffers
// too and shows them in herald_send_queue_bytes. Each such client could
// otherwise leave SendQueueBytes behind, as many times as it opened
// sessions. The session that finds the budget full is closed as a slow
// consumer and its bytes are given back.
func TestSocketIOPollingBuffersCountInNodeQueues(t *testing.T) {
	t.Parallel()
	cfg := herald.Config{SendQueueBytes: 1 << 20, MaxNodeQueuedBytes: 128 << 10,
		SocketIO: herald.SocketIOConfig{Enabled: true, PingInterval: time.Minute, PingTimeout: time.Minute}}
	ts := startServer(t, cfg)
	sid := pollJoined(t, ts, "busy")
	data := `"` + strings.Repeat("d", 8<<10) + `"`
	var peak float64
	const sent = 48 // 384 KiB: three times the node's bound, a third of the session's own
	for i := range sent {
		if code, m := apiPublish(t, ts, testAPIKey, `{"room":"busy","event":"e","data":`+data+`}`); code != http.StatusOK {
			t.Fatalf("publish %d: %d %v", i, code, m)
		}
		if i == 4 {
			peak = metricValue(t, ts, "herald_send_queue_bytes")
		}
	}
	if peak < 5*(8<<10) {
		t.Fatalf("herald_send_queue_bytes = %v with 5 messages of 8 KiB in a polling buffer", peak)
	}
	// The session was closed: its next poll learns it.
	if st, body := pollGet(t, ts, sid); st == http.StatusOK && !strings.Contains(body, "\x1e1") && body != "1" {
		t.Fatalf("poll after the node's bound: %d %.80q, want the session closed", st, body)
	}
	waitFor(t, 5*time.Second, "the polling buffer given back", func() bool {
		return metricValue(t, ts, "herald_send_queue_bytes") == 0
	})
	if v := metricValue(t, ts, `herald_connections_closed_total{reason="slow_consumer"}`); v != 1 {
		t.Fatalf(`herald_connections_closed_total{reason="slow_consumer"} = %v, want 1`, v)
	}
}

// When the node's queued bytes are at MaxNodeQueuedBytes, a message to a
// client that reads does not close that client: the holder with the most
// bytes whose client is not reading (here a Socket.IO polling session
// that never polls) is closed instead, so that one hostile client filling
// the bound cannot have the others' messages lost.
func TestNodeQueuesCloseTheBiggestHolder(t *testing.T) {
	t.Parallel()
	const node = 128 << 10
	cfg := herald.Config{SendQueueBytes: 1 << 20, MaxNodeQueuedBytes: node,
		SocketIO: herald.SocketIOConfig{Enabled: true, PingInterval: time.Minute, PingTimeout: time.Minute}}
	ts := startServer(t, cfg)
	sid := pollJoined(t, ts, "busy")
	reader := dial(t, ts.URL)
	reader.join("other")

	// The polling session's buffer fills the node's bound.
	data := `"` + strings.Repeat("d", 8<<10) + `"`
	for i := 0; metricValue(t, ts, "herald_send_queue_bytes") < node; i++ {
		if i == 32 {
			t.Fatalf("herald_send_queue_bytes = %v after 32 messages of 8 KiB", metricValue(t, ts, "herald_send_queue_bytes"))
		}
		if code, m := apiPublish(t, ts, testAPIKey, `{"room":"busy","event":"e","data":`+data+`}`); code != http.StatusOK {
			t.Fatalf("publish %d: %d %v", i, code, m)
		}
	}
	if code, m := apiPublish(t, ts, testAPIKey, `{"room":"other","event":"e","data":"hello"}`); code != http.StatusOK {
		t.Fatalf("publish to the reader: %d %v", code, m)
	}
	if m := reader.expect("event"); m["data"] != "hello" {
		t.Fatalf("reader got %v", m)
	}
	if st, body := pollGet(t, ts, sid); st == http.StatusOK && !strings.Contains(body, "\x1e1") && body != "1" {
		t.Fatalf("poll of the session that held the node's bound: %d %.80q, want it closed", st, body)
	}
	waitFor(t, 5*time.Second, "the polling buffer given back", func() bool {
		return metricValue(t, ts, "herald_send_queue_bytes") == 0
	})
	if v := metricValue(t, ts, `herald_connections_closed_total{reason="slow_consumer"}`); v != 1 {
		t.Fatalf(`herald_connections_closed_total{reason="slow_consumer"} = %v, want 1`, v)
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="node_queued_bytes"}`); v != 1 {
		t.Fatalf(`herald_limit_rejections_total{limit="node_queued_bytes"} = %v, want 1`, v)
	}
	// The reader is still open.
	if code, m := apiPublish(t, ts, testAPIKey, `{"room":"other","event":"e","data":"again"}`); code != http.StatusOK {
		t.Fatalf("publish to the reader: %d %v", code, m)
	}
	if m := reader.expect("event"); m["data"] != "again" {
		t.Fatalf("reader got %v", m)
	}
}

// One client IP holds at most MaxPendingBytesPerIP of the node's bound on
// sessions in no namespace: an address that opens sessions and leaves
// them is refused (403, its own limit label) while the others' handshakes
// are still served.
func TestSocketIOPendingSessionsPerIP(t *testing.T) {
	t.Parallel()
	cfg := herald.Config{TrustedProxies: []string{"127.0.0.1", "::1"},
		SocketIO: herald.SocketIOConfig{Enabled: true, MaxPendingBytesPerIP: 32 << 10, ConnectTimeout: time.Minute}}
	ts := startServer(t, cfg)
	var sids []string
	for {
		status, sid, msg := pollHandshakeFrom(t, ts, 8<<10, "203.0.113.1")
		if status != http.StatusOK {
			if status != http.StatusForbidden || !strings.Contains(msg, "your address") {
				t.Fatalf("refused handshake: %d %q, want 403 naming the address", status, msg)
			}
			break
		}
		if sids = append(sids, sid); len(sids) > 4 {
			t.Fatalf("%d sessions of 8 KiB headers from one address under a 32 KiB share", len(sids))
		}
	}
	if len(sids) < 2 {
		t.Fatalf("%d sessions of 8 KiB headers before the refusal under a 32 KiB share", len(sids))
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="socketio_pending_bytes_per_ip"}`); v != 1 {
		t.Fatalf(`herald_limit_rejections_total{limit="socketio_pending_bytes_per_ip"} = %v, want 1`, v)
	}
	status, other, _ := pollHandshakeFrom(t, ts, 8<<10, "203.0.113.2")
	if status != http.StatusOK {
		t.Fatalf("another address's handshake: %d, want 200", status)
	}
	// The first address's sessions close: its share comes back.
	for _, sid := range append(sids, other) {
		pollPost(t, ts, sid, "1")
	}
	waitFor(t, 5*time.Second, "the address's share given back", func() bool {
		return metricValue(t, ts, "herald_socketio_pending_bytes") == 0
	})
	status, sid, _ := pollHandshakeFrom(t, ts, 8<<10, "203.0.113.1")
	if status != http.StatusOK {
		t.Fatalf("handshake after the address's sessions closed: %d", status)
	}
	pollPost(t, ts, sid, "1")
}

// Long-polling sessions hold no socket, so the descriptor limit that
// bounds WebSockets does not bound them, in a namespace or not: past
// SocketIOConfig.MaxPollingSessions a polling handshake is refused (403,
// counted, the gauge at the bound), and one closing makes room.
func TestSocketIOPollingSessionsBounded(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{SocketIO: herald.SocketIOConfig{Enabled: true, MaxPollingSessions: 3,
		PingInterval: time.Minute, PingTimeout: time.Minute}})
	var sids []string
	for i := range 3 {
		status, sid, msg := pollHandshake(t, ts, 0)
		if status != http.StatusOK {
			t.Fatalf("handshake %d: %d %q", i, status, msg)
		}
		sids = append(sids, sid)
	}
	// One joins the namespace: it still counts.
	if st := pollPost(t, ts, sids[0], "40"); st != http.StatusOK {
		t.Fatalf("CONNECT post: %d", st)
	}
	if st, body := pollGet(t, ts, sids[0]); st != http.StatusOK || !strings.HasPrefix(body, "40{") {
		t.Fatalf("CONNECT reply: %d %q", st, body)
	}
	status, _, msg := pollHandshake(t, ts, 0)
	if status != http.StatusForbidden || !strings.Contains(msg, "long-polling sessions") {
		t.Fatalf("fourth handshake: %d %q, want 403 naming the bound", status, msg)
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="socketio_polling_sessions"}`); v != 1 {
		t.Fatalf(`herald_limit_rejections_total{limit="socketio_polling_sessions"} = %v, want 1`, v)
	}
	if v := metricValue(t, ts, "herald_socketio_polling_sessions"); v != 3 {
		t.Fatalf("herald_socketio_polling_sessions = %v, want 3", v)
	}
	pollPost(t, ts, sids[1], "1") // a close packet
	waitFor(t, 5*time.Second, "a polling session closed", func() bool {
		return metricValue(t, ts, "herald_socketio_polling_sessions") == 2
	})
	if status, sid, msg := pollHandshake(t, ts, 0); status != http.StatusOK {
		t.Fatalf("handshake after one closed: %d %q", status, msg)
	} else {
		sids[1] = sid
	}
	for _, sid := range sids {
		pollPost(t, ts, sid, "1")
	}
}

// The bound holds when handshakes come at once: each reserves its place
// before it is vetted, so a burst cannot all find the last places free.
// Checked in sioAllow and counted only once the session was made, 48
// handshakes at once opened 5 to 8 sessions under a cap of 4 (in 9 of
// 12 runs of 4 or 8 rounds, and in every run of 8 rounds): each came
// through a chain of trusted proxies (2,000 hops), whose walk to the
// client's address, for the per-IP bytes charged after the check, held
// the handshake between the two long enough for the others.
func TestSocketIOPollingSessionsBoundedConcurrently(t *testing.T) {
	t.Parallel()
	const limit, burst = 4, 48
	ts := startServer(t, herald.Config{TrustedProxies: []string{"127.0.0.0/8"},
		SocketIO: herald.SocketIOConfig{Enabled: true, MaxPollingSessions: limit,
			PingInterval: time.Minute, PingTimeout: time.Minute}})
	hops := strings.Repeat(", 127.0.0.1", 2000)
	for round := range 8 {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			sids    []string
			refused int
		)
		start := make(chan struct{})
		for i := range burst {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				status, sid, msg := pollHandshakeFrom(t, ts, 0, fmt.Sprintf("10.0.%d.%d", round, i)+hops)
				mu.Lock()
				defer mu.Unlock()
				switch status {
				case http.StatusOK:
					sids = append(sids, sid)
				case http.StatusForbidden:
					refused++
				default:
					t.Errorf("handshake: %d %q", status, msg)
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(sids) != limit || refused != burst-limit {
			t.Errorf("round %d: %d of %d handshakes at once opened a session and %d were refused, cap %d",
				round, len(sids), burst, refused, limit)
		}
		if v := metricValue(t, ts, "herald_socketio_polling_sessions"); v != float64(len(sids)) {
			t.Errorf("round %d: herald_socketio_polling_sessions = %v, want %d", round, v, len(sids))
		}
		for _, sid := range sids {
			pollPost(t, ts, sid, "1") // a close packet
		}
		waitFor(t, 5*time.Second, "the polling sessions closed", func() bool {
			return metricValue(t, ts, "herald_socketio_polling_sessions") == 0
		})
		if t.Failed() {
			return
		}
	}
}

// A client that has its CONNECT refused again and again on one
// connection (here by asking for a namespace not served; a bad token
// counts the same) gets its connection closed at the 16th, counted, and
// cannot keep the node checking credentials in a loop.
func TestSocketIOConnectRefusalsClose(t *testing.T) {
	t.Parallel()
	ts := startServer(t, herald.Config{SocketIO: herald.SocketIOConfig{Enabled: true}})
	_, sid, _ := pollHandshake(t, ts, 0)
	if st := pollPost(t, ts, sid, strings.Repeat("40/nope,\x1e", 15)+"40/nope,"); st != http.StatusOK {
		t.Fatalf("post: %d", st)
	}
	st, body := pollGet(t, ts, sid)
	if st != http.StatusOK || strings.Count(body, `44/nope,{"message":"Invalid namespace"}`) != 16 || !strings.HasSuffix(body, "\x1e1") {
		t.Fatalf("poll: %d %q, want 16 CONNECT_ERRORs and the close packet", st, body)
	}
	if v := metricValue(t, ts, `herald_limit_rejections_total{limit="socketio_connect_refusals"}`); v != 1 {
		t.Fatalf(`herald_limit_rejections_total{limit="socketio_connect_refusals"} = %v, want 1`, v)
	}
}
