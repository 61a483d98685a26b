package nats_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/brokertest"
	"github.com/heraldrt/herald/broker/nats"
	"github.com/heraldrt/herald/internal/testserver"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newBroker(t testing.TB, cfg nats.Config) *nats.Broker {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	cfg.ReconnectWait = 50 * time.Millisecond
	b, err := nats.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := testserver.StartNATS(t)
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return newBroker(t, nats.Config{URL: srv.URL()})
	})
}

func TestRoomNamesNeedingEscapes(t *testing.T) {
	t.Parallel()
	srv := testserver.StartNATS(t)
	n := brokertest.StartNode(t, newBroker(t, nats.Config{URL: srv.URL()}))
	ctx := context.Background()
	rooms := []string{"a.b", "a*", "a>", "a b", "a%2E", "user:42", "user:4.2", "user:*", "user:>", "ünï", ""}
	for _, room := range rooms {
		if err := n.Subscribe(ctx, room); err != nil {
			t.Fatalf("Subscribe(%q): %v", room, err)
		}
	}
	for _, room := range rooms {
		if err := n.Publish(ctx, brokertest.Msg(room, "x")); err != nil {
			t.Fatalf("Publish(%q): %v", room, err)
		}
	}
	for _, room := range rooms {
		brokertest.Eventually(t, 5*time.Second, func() bool { return len(n.Messages(room)) > 0 }, "room %q got nothing", room)
	}
	// Each message reached its own room only (no collisions, no wildcards).
	if err := n.Publish(ctx, brokertest.Msg("a.b", "y")); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 5*time.Second, func() bool { return len(n.Messages("a.b")) == 2 }, "second a.b message missing")
	for _, room := range rooms[1:] {
		if got := len(n.Messages(room)); got != 1 {
			t.Errorf("room %q got %d messages, want 1", room, got)
		}
	}
}

func TestStartUnreachable(t *testing.T) {
	t.Parallel()
	srv := testserver.StartNATS(t)
	srv.Shutdown()
	b := newBroker(t, nats.Config{URL: srv.URL()})
	if err := b.Start(context.Background(), new(brokertest.Recorder)); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Start = %v, want ErrUnavailable", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFaultFailFast(t *testing.T) {
	t.Parallel()
	srv := testserver.StartNATS(t)
	a := brokertest.StartNode(t, newBroker(t, nats.Config{URL: srv.URL()}))
	b := brokertest.StartNode(t, newBroker(t, nats.Config{URL: srv.URL()}))
	room := brokertest.Room("fault")
	ctx := context.Background()
	for _, n := range []*brokertest.Node{a, b} {
		if err := n.Subscribe(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = a.Publish(ctx, brokertest.Msg(room, "traffic"))
			time.Sleep(100 * time.Microsecond) // pace the writer, not a wait
		}
	}()
	brokertest.Eventually(t, 5*time.Second, func() bool { return len(b.Messages(room)) > 10 }, "no traffic before shutdown")
	srv.Shutdown()

	var err error
	brokertest.Eventually(t, 5*time.Second, func() bool {
		err = a.Publish(ctx, brokertest.Msg(room, "during"))
		return err != nil
	}, "Publish kept succeeding after shutdown")
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish while down = %v, want ErrUnavailable", err)
	}
	close(stop)
	<-done
	// A node that has not published learns of the loss when its read of
	// the closed socket fails, which under load can come a little later.
	for i, n := range []*brokertest.Node{a, b} {
		var err error
		brokertest.Eventually(t, 5*time.Second, func() bool {
			err = n.Health(ctx)
			return err != nil
		}, "node %d Health kept reporting healthy while NATS was down", i)
		if !errors.Is(err, broker.ErrUnavailable) {
			t.Fatalf("node %d Health while down = %v, want ErrUnavailable", i, err)
		}
	}

	restarted := time.Now()
	srv.Restart()
	var id string
	brokertest.Eventually(t, 5*time.Second, func() bool {
		if id != "" && b.Count(room, id) > 0 && a.Count(room, id) > 0 {
			return true
		}
		m := brokertest.Msg(room, "after")
		if a.Publish(ctx, m) == nil {
			id = m.MsgID
		}
		return false
	}, "delivery did not resume within 5s of restart")
	t.Logf("delivery resumed %v after restart", time.Since(restarted).Round(time.Millisecond))
	for i, n := range []*brokertest.Node{a, b} {
		if err := n.Health(ctx); err != nil {
			t.Fatalf("node %d Health after restart = %v", i, err)
		}
	}
	reason := brokertest.Room("ctl")
	if err := b.PublishControl(ctx, &broker.Control{Kind: broker.ControlRevoke, Reason: reason}); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 5*time.Second, func() bool { return len(a.Controls(reason)) == 1 }, "control not delivered after restart")
}

func TestFaultBuffered(t *testing.T) {
	t.Parallel()
	const buffered = 50
	srv := testserver.StartNATS(t)
	n := brokertest.StartNode(t, newBroker(t, nats.Config{URL: srv.URL(), PublishBufferBytes: 1 << 20}))
	room := brokertest.Room("buffered")
	ctx := context.Background()
	if err := n.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	brokertest.Eventually(t, 5*time.Second, func() bool { return errors.Is(n.Health(ctx), broker.ErrUnavailable) }, "Health ok while NATS is down")
	for i := range buffered {
		m := brokertest.Msg(room, "queued")
		m.MsgID = strconv.Itoa(i)
		if err := n.Publish(ctx, m); err != nil {
			t.Fatalf("Publish %d while down with a buffer: %v", i, err)
		}
	}
	srv.Restart()
	n.InOrder(t, room, buffered, 5*time.Second)
}

func BenchmarkPublish(b *testing.B) {
	srv := testserver.StartNATS(b)
	brokertest.Bench(b, func(tb testing.TB) broker.Broker {
		return newBroker(tb, nats.Config{URL: srv.URL()})
	})
}
