package loadgen_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/bench/loadgen"
)

// TestBroadcastSmoke runs the broadcast scenario for about two seconds
// against an in-process Herald with 50 subscribers on local workers, so
// that CI exercises the whole generator: dial, join, publish, latency and
// loss accounting, CPU sampling; with v1 clients and with Socket.IO ones
// (the herald-socketio target).
func TestBroadcastSmoke(t *testing.T) {
	for _, kind := range []loadgen.Kind{loadgen.KindHerald, loadgen.KindHeraldSocketIO} {
		t.Run(string(kind), func(t *testing.T) { broadcastSmoke(t, kind) })
	}
}

// startSmokeServer starts an in-process Herald, with Socket.IO on if
// socketIO, stopped when t ends, and returns its ws:// base URL.
func startSmokeServer(t *testing.T, socketIO bool) string {
	t.Helper()
	srv, err := herald.New(herald.Config{
		APIKeys:     []string{"smoke-test-api-key-0123"},
		MessageRate: -1,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		SocketIO:    herald.SocketIOConfig{Enabled: socketIO},
	})
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
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

func broadcastSmoke(t *testing.T, kind loadgen.Kind) {
	ctx := context.Background()
	url := kind.EndpointURL(startSmokeServer(t, kind == loadgen.KindHeraldSocketIO))
	specs := loadgen.SplitSpecs(loadgen.WorkerSpec{
		Kind: kind, URLs: []string{url}, Mode: "subscribe", Conns: 50, Rooms: 5,
		SourceIPs: []string{"127.0.0.1"},
	}, 25)
	fleet, err := loadgen.StartFleet(ctx, specs, loadgen.LocalWorkers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fleet.Close() })
	if fleet.Connected != 50 || len(fleet.PerRoom) != 5 {
		t.Fatalf("connected %d in %d rooms (failed %d: %s), want 50 in 5", fleet.Connected, len(fleet.PerRoom), fleet.Failed, fleet.FirstErr)
	}
	pub, err := loadgen.NewPublisher(ctx, kind, url, 5, 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	res, err := loadgen.RunBroadcastStep(ctx, fleet, pub, loadgen.StepConfig{
		Step: 0, DeliveriesPerSec: 2000, PayloadBytes: 100, Duration: 2 * time.Second, DrainTimeout: 5 * time.Second,
		LoadPIDs: []int{},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Published == 0 || res.Expected != res.Published*10 {
		t.Fatalf("published %d, expected %d deliveries: want 10 subscribers per message", res.Published, res.Expected)
	}
	if res.Lost != 0 || res.Duplicates != 0 || res.Received != res.Expected {
		t.Fatalf("received %d of %d (lost %d, duplicates %d)", res.Received, res.Expected, res.Lost, res.Duplicates)
	}
	if res.Latency.Count != uint64(res.Received) || res.Latency.P50 <= 0 {
		t.Fatalf("latency summary %+v does not match %d deliveries", res.Latency, res.Received)
	}
}

// TestBroadcastMixedSmoke: v1 and Socket.IO subscribers alternate in the
// same rooms of one Herald (WorkerSpec.MixKind); every one gets every
// message, and the two kinds' latencies are kept apart.
func TestBroadcastMixedSmoke(t *testing.T) {
	ctx := context.Background()
	base := startSmokeServer(t, true)
	specs := loadgen.SplitSpecs(loadgen.WorkerSpec{
		Kind: loadgen.KindHerald, URLs: []string{loadgen.KindHerald.EndpointURL(base)},
		MixKind: loadgen.KindHeraldSocketIO, MixURLs: []string{loadgen.KindHeraldSocketIO.EndpointURL(base)},
		Mode: "subscribe", Conns: 40, Rooms: 4, SourceIPs: []string{"127.0.0.1"},
	}, 15)
	fleet, err := loadgen.StartFleet(ctx, specs, loadgen.LocalWorkers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fleet.Close() })
	if fleet.Connected != 40 {
		t.Fatalf("connected %d (failed %d: %s), want 40", fleet.Connected, fleet.Failed, fleet.FirstErr)
	}
	pub, err := loadgen.NewPublisher(ctx, loadgen.KindHerald, loadgen.KindHerald.EndpointURL(base), 4, 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	res, err := loadgen.RunBroadcastStep(ctx, fleet, pub, loadgen.StepConfig{
		Step: 0, DeliveriesPerSec: 2000, PayloadBytes: 100, Duration: time.Second, DrainTimeout: 5 * time.Second,
		LoadPIDs: []int{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published == 0 || res.Lost != 0 || res.ClientsShort != 0 || res.Received != res.Expected {
		t.Fatalf("received %d of %d (published %d, lost %d, %d clients short)", res.Received, res.Expected, res.Published, res.Lost, res.ClientsShort)
	}
	// Room r holds subscribers r, r+4, …, of either kind in turn: each
	// kind got half the deliveries.
	if res.LatencyMix == nil || res.ReceivedMix*2 != res.Received {
		t.Fatalf("Socket.IO subscribers got %d of %d deliveries (latency %v), want half", res.ReceivedMix, res.Received, res.LatencyMix)
	}
	if res.Latency.Count != uint64(res.Received-res.ReceivedMix) || res.LatencyMix.Count != uint64(res.ReceivedMix) || res.LatencyMix.P50 <= 0 {
		t.Fatalf("latency counts v1 %d, Socket.IO %d; want %d each", res.Latency.Count, res.LatencyMix.Count, res.ReceivedMix)
	}
}

// TestBroadcastRefusedPublications: publications the server refuses are
// counted as such, and their deliveries as lost, with every subscriber of
// the refused room short; the step does not pass.
func TestBroadcastRefusedPublications(t *testing.T) {
	srv, err := herald.New(herald.Config{
		APIKeys:     []string{"smoke-test-api-key-0123"},
		MessageRate: -1,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hooks: herald.Hooks{OnPublish: func(ctx context.Context, c *herald.ConnInfo, room, event string, data json.RawMessage) (json.RawMessage, error) {
			if room == loadgen.RoomName(0) {
				return nil, &herald.EventError{Code: "forbidden", Message: "not this room"}
			}
			return nil, nil
		}},
	})
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
	})
	ctx := context.Background()
	url := loadgen.KindHerald.EndpointURL("ws" + strings.TrimPrefix(hs.URL, "http"))
	fleet, err := loadgen.StartFleet(ctx, []loadgen.WorkerSpec{{
		Kind: loadgen.KindHerald, URLs: []string{url}, Mode: "subscribe", Conns: 20, Rooms: 2,
	}}, loadgen.LocalWorkers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fleet.Close() })
	pub, err := loadgen.NewPublisher(ctx, loadgen.KindHerald, url, 2, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	res, err := loadgen.RunBroadcastStep(ctx, fleet, pub, loadgen.StepConfig{
		Step: 0, DeliveriesPerSec: 400, PayloadBytes: 100, Duration: time.Second, DrainTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	refused := res.Published / 2 // every other message goes to room 0
	if res.PublishErrors < refused-1 || res.PublishErrors > refused+1 || res.Lost != res.PublishErrors*10 {
		t.Fatalf("published %d, refused %d, lost %d: want about %d refused and 10 lost deliveries each", res.Published, res.PublishErrors, res.Lost, refused)
	}
	if res.Clients != 20 || res.ClientsShort != 10 || res.OK(time.Minute) {
		t.Fatalf("%d subscribers checked, %d short, ok %v: want 20, the 10 of the refused room, not ok", res.Clients, res.ClientsShort, res.OK(time.Minute))
	}
}

// TestSlowConnectPhaseKeepsConnections: a worker whose connect phase
// outlasts the server's ping interval and pong timeout answers the pings
// of the connections it already has, so the server closes none of them
// (it closed the first ones while the worker was still dialing the rest).
//
// The pong timeout is 1 s, not less: a loaded machine (-race, load
// average 20-40 on 2 cores) held this process's pongs back past a 100 ms
// timeout and the server closed all 12 connections in some runs. The
// connect phase outlasts it whatever the load, because the joins' sleeps
// set its length from below: the 11 joins after the first connection's
// take at least 1.65 s, more than its first ping (0.1 s) plus the timeout.
func TestSlowConnectPhaseKeepsConnections(t *testing.T) {
	srv, err := herald.New(herald.Config{
		APIKeys:           []string{"smoke-test-api-key-0123"},
		MessageRate:       -1,
		HeartbeatInterval: 100 * time.Millisecond,
		HeartbeatTimeout:  time.Second,
		Logger:            slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hooks: herald.Hooks{OnJoin: func(ctx context.Context, c *herald.ConnInfo, room string) error {
			time.Sleep(150 * time.Millisecond) // 12 joins one at a time: at least 1.8 s
			return nil
		}},
	})
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
	})
	ctx := context.Background()
	url := loadgen.KindHerald.EndpointURL("ws" + strings.TrimPrefix(hs.URL, "http"))
	fleet, err := loadgen.StartFleet(ctx, []loadgen.WorkerSpec{{
		Kind: loadgen.KindHerald, URLs: []string{url}, Mode: "subscribe", Conns: 12, Rooms: 2, DialConcurrency: 1,
	}}, loadgen.LocalWorkers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fleet.Close() })
	if fleet.Connected != 12 {
		t.Fatalf("connected %d of 12 (%s)", fleet.Connected, fleet.FirstErr)
	}
	pub, err := loadgen.NewPublisher(ctx, loadgen.KindHerald, url, 2, 1, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	res, err := loadgen.RunBroadcastStep(ctx, fleet, pub, loadgen.StepConfig{
		Step: 0, DeliveriesPerSec: 120, PayloadBytes: 100, Duration: 500 * time.Millisecond, DrainTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Disconnects != 0 || res.ClientsShort != 0 || res.Lost != 0 {
		t.Fatalf("%d of 12 connections closed by the server, %d subscribers short, %d lost", res.Disconnects, res.ClientsShort, res.Lost)
	}
}
