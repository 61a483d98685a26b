package main

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/heraldrt/herald/bench/rolling"
)

// TestRollingDeploy is the rolling-deploy scenario of `herald bench
// rolling` at CI size: real nginx in front of three nodes on one
// redis-server, clients in rooms with history, acked publishes through the
// API while each node is drained and started again, then one is killed.
// Every message answered 200 must reach every client of its room, once
// and in order.
func TestRollingDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("rolling deploy: a minute of real processes")
	}
	bin := buildBinary(t)
	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := rolling.Run(ctx, rolling.Options{
		Herald: bin, Clients: 60, Rooms: 10, Rate: 100, Phase: 3 * time.Second, Log: &log, NodeLogs: true,
	})
	if errors.Is(err, rolling.ErrMissingBinary) {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", rep)
	if rep.Total.Published == 0 || rep.Recovered == 0 {
		t.Fatalf("nothing published or nothing recovered: the scenario shows nothing\n%s", log.String())
	}
	for _, r := range rep.Rooms {
		if r.Lost != 0 || r.Duplicated != 0 || r.OutOfOrder != 0 || r.Published == 0 {
			t.Errorf("room %s: published %d, lost %d, duplicated %d, out of order %d", r.Room, r.Published, r.Lost, r.Duplicated, r.OutOfOrder)
		}
	}
	if rep.Unrecovered != 0 {
		t.Errorf("%d joins not recovered: history is big enough for the whole run", rep.Unrecovered)
	}
	if t.Failed() {
		t.Logf("progress and node logs:\n%s", log.String())
	}
}
