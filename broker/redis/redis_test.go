package redis_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/brokertest"
	"github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/internal/testserver"
	"github.com/heraldrt/herald/protocol"
	"github.com/redis/rueidis"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// rueidis closes connections replaced by a cluster topology refresh
		// from a detached goroutine five seconds later; it is the library's,
		// bounded, and holds no broker state.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*clusterClient)._refresh.func2"),
		// After a connection error in cluster mode rueidis delays its
		// topology refresh in a goroutine that sleeps up to a second
		// (TestGapRepair's CLIENT KILL on every master); the library's too.
		goleak.IgnoreAnyFunction("github.com/redis/rueidis.(*call).DelayDo.func1"),
	)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newBroker(t testing.TB, cfg redis.Config) *redis.Broker {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	b, err := redis.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return newBroker(t, redis.Config{URL: srv.URL()})
	})
}

func TestClusterConformance(t *testing.T) {
	t.Parallel()
	c := testserver.StartRedisCluster(t)
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return newBroker(t, redis.Config{ClusterAddrs: c.Addrs()})
	})
}

func TestConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  redis.Config
		ok   bool
	}{
		{name: "url", cfg: redis.Config{URL: "redis://127.0.0.1:6379/0"}, ok: true},
		{name: "cluster", cfg: redis.Config{ClusterAddrs: []string{"127.0.0.1:7000"}}, ok: true},
		{name: "neither", cfg: redis.Config{}},
		{name: "both", cfg: redis.Config{URL: "redis://127.0.0.1:6379", ClusterAddrs: []string{"127.0.0.1:7000"}}},
		{name: "bad url", cfg: redis.Config{URL: "http://x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redis.New(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestStartUnreachable(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	srv.Kill()
	b := newBroker(t, redis.Config{URL: srv.URL()})
	err := b.Start(context.Background(), new(brokertest.Recorder))
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Start = %v, want ErrUnavailable", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// waitDown publishes until the broker notices the outage; it returns the
// error Publish gave.
func waitDown(t *testing.T, n *brokertest.Node, room string) error {
	t.Helper()
	var err error
	brokertest.Eventually(t, 5*time.Second, func() bool {
		err = n.Publish(context.Background(), brokertest.Msg(room, "during"))
		return err != nil
	}, "Publish kept succeeding after Kill")
	return err
}

func TestFaultFailFast(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	a := brokertest.StartNode(t, newBroker(t, redis.Config{URL: srv.URL()}))
	b := brokertest.StartNode(t, newBroker(t, redis.Config{URL: srv.URL()}))
	room := brokertest.Room("fault")
	ctx := context.Background()
	for _, n := range []*brokertest.Node{a, b} {
		if err := n.Subscribe(ctx, room); err != nil {
			t.Fatal(err)
		}
	}

	// Traffic in flight while Redis dies.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = a.Publish(ctx, brokertest.Msg(room, "traffic"))
		}
	}()
	brokertest.Eventually(t, 5*time.Second, func() bool { return len(b.Messages(room)) > 10 }, "no traffic before Kill")
	srv.Kill()

	err := waitDown(t, a, room)
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish while down = %v, want ErrUnavailable", err)
	}
	close(stop)
	<-done
	brokertest.Eventually(t, 5*time.Second, func() bool {
		return errors.Is(a.Health(ctx), broker.ErrUnavailable) && errors.Is(b.Health(ctx), broker.ErrUnavailable)
	}, "Health still ok while Redis is down")
	if err := a.Subscribe(ctx, brokertest.Room("down")); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Subscribe while down = %v, want ErrUnavailable", err)
	}

	restarted := time.Now()
	srv.Restart()
	// Delivery resumes on both nodes: publish until b has a fresh message.
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
	brokertest.Eventually(t, 5*time.Second, func() bool { return a.Health(ctx) == nil && b.Health(ctx) == nil }, "Health not ok after restart")

	// Control is resubscribed too.
	reason := brokertest.Room("ctl")
	if err := b.PublishControl(ctx, &broker.Control{Kind: broker.ControlRevoke, Reason: reason}); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 5*time.Second, func() bool { return len(a.Controls(reason)) == 1 }, "control not delivered after restart")
}

func TestFaultBuffered(t *testing.T) {
	t.Parallel()
	const buffered = 50
	srv := testserver.StartRedis(t)
	n := brokertest.StartNode(t, newBroker(t, redis.Config{URL: srv.URL(), PublishBuffer: buffered}))
	rb := n.Broker.(*redis.Broker)
	room := brokertest.Room("buffered")
	ctx := context.Background()
	if err := n.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	brokertest.Eventually(t, 5*time.Second, func() bool { return errors.Is(n.Health(ctx), broker.ErrUnavailable) }, "Health ok while Redis is down")

	for i := range buffered {
		m := brokertest.Msg(room, "queued")
		m.MsgID = strconv.Itoa(i)
		if err := n.Publish(ctx, m); err != nil {
			t.Fatalf("Publish %d while down with a buffer: %v", i, err)
		}
	}
	if got := rb.Buffered(); got != buffered {
		t.Fatalf("Buffered = %d, want %d", got, buffered)
	}
	if err := n.Publish(ctx, brokertest.Msg(room, "overflow")); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish with a full buffer = %v, want ErrUnavailable", err)
	}

	srv.Restart()
	n.InOrder(t, room, buffered, 5*time.Second)
	// The flusher takes an entry off the queue once Redis has answered
	// its PUBLISH, which can be after the subscriber got the message.
	brokertest.Eventually(t, 5*time.Second, func() bool { return rb.Buffered() == 0 }, "publications still buffered after the flush")
}

func TestCloseReportsDiscarded(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	b := newBroker(t, redis.Config{URL: srv.URL(), PublishBuffer: 10})
	if err := b.Start(context.Background(), new(brokertest.Recorder)); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	brokertest.Eventually(t, 5*time.Second, func() bool { return b.Health(context.Background()) != nil }, "Health ok while Redis is down")
	if err := b.Publish(context.Background(), brokertest.Msg("r", "x")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Close with a buffered message = %v, want ErrUnavailable", err)
	}
}

func BenchmarkPublish(b *testing.B) {
	srv := testserver.StartRedis(b)
	brokertest.Bench(b, func(tb testing.TB) broker.Broker {
		return newBroker(tb, redis.Config{URL: srv.URL()})
	})
}

func BenchmarkPublishCluster(b *testing.B) {
	c := testserver.StartRedisCluster(b)
	brokertest.Bench(b, func(tb testing.TB) broker.Broker {
		return newBroker(tb, redis.Config{ClusterAddrs: c.Addrs()})
	})
}

// TestInterestReachesRedis checks that interest is declared to Redis, not
// only filtered locally: the room channel has a subscriber exactly while
// the node is subscribed.
func TestInterestReachesRedis(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	n := brokertest.StartNode(t, newBroker(t, redis.Config{URL: srv.URL(), Prefix: "it"}))
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	room := brokertest.Room("interest")
	channel := "it:room:{" + room + "}"
	numsub := func() int64 {
		res, err := c.Do(ctx, c.B().PubsubNumsub().Channel(channel).Build()).AsIntMap()
		if err != nil {
			t.Fatal(err)
		}
		return res[channel]
	}
	if got := numsub(); got != 0 {
		t.Fatalf("NUMSUB before Subscribe = %d", got)
	}
	if err := n.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	if got := numsub(); got != 1 {
		t.Fatalf("NUMSUB after Subscribe = %d, want 1", got)
	}
	if err := n.Unsubscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	if got := numsub(); got != 0 {
		t.Fatalf("NUMSUB after Unsubscribe = %d, want 0", got)
	}
	if got, err := c.Do(ctx, c.B().PubsubNumsub().Channel("it:control").Build()).AsIntMap(); err != nil || got["it:control"] != 1 {
		t.Fatalf("control subscribers = %v, %v; want 1", got, err)
	}
}

// TestRoomsShareOneConnection checks that a standalone broker holds its
// rooms on one connection, without a goroutine per room, and subscribes
// to all of them again after Redis restarts; and that user rooms, one
// per connection, add no channel at all: the node's user channels,
// subscribed at Start, carry them, again after the restart.
//
// Not parallel: it counts the process's goroutines.
func TestRoomsShareOneConnection(t *testing.T) {
	const rooms = 1500 // more than one resubscribe batch
	srv := testserver.StartRedis(t)
	n := brokertest.StartNode(t, newBroker(t, redis.Config{URL: srv.URL(), Prefix: "mux"}))
	ctx := context.Background()
	const fixed = 1 + 16 // the control channel and the user channels
	before := runtime.NumGoroutine()
	users := make([]string, 100)
	for i := range users {
		users[i] = protocol.UserRoomPrefix + brokertest.Room("mux"+strconv.Itoa(i))
		if err := n.Subscribe(ctx, users[i]); err != nil {
			t.Fatal(err)
		}
	}
	names := make([]string, rooms)
	for i := range names {
		names[i] = brokertest.Room("mux" + strconv.Itoa(i))
		if err := n.Subscribe(ctx, names[i]); err != nil {
			t.Fatal(err)
		}
	}
	// A goroutine per room would add 1,500; some slack for the
	// library's own and for tests that are still winding down.
	if grown := runtime.NumGoroutine() - before; grown > rooms/10 {
		t.Fatalf("%d rooms added %d goroutines", rooms, grown)
	}
	subscriberConns := func() []int {
		got, err := srv.SubscriberChannels()
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := subscriberConns(); len(got) != 1 || got[0] != rooms+fixed {
		t.Fatalf("subscribed connections %v, want one holding %d channels (rooms, control and user channels)", got, rooms+fixed)
	}

	srv.Kill()
	brokertest.Eventually(t, 5*time.Second, func() bool { return errors.Is(n.Health(ctx), broker.ErrUnavailable) }, "Health ok while Redis is down")
	srv.Restart()
	brokertest.Eventually(t, 5*time.Second, func() bool {
		got := subscriberConns()
		return len(got) == 1 && got[0] == rooms+fixed
	}, "rooms not all subscribed again after a restart: %v", subscriberConns())
	for _, room := range []string{names[0], names[rooms/2], names[rooms-1], users[0], users[len(users)-1]} {
		if err := n.Publish(ctx, brokertest.Msg(room, "after-restart")); err != nil {
			t.Fatal(err)
		}
		brokertest.Eventually(t, 5*time.Second, func() bool { return len(n.Messages(room)) == 1 }, "room %s got %d messages", room, len(n.Messages(room)))
	}
	for _, room := range append(names, users...) {
		if err := n.Unsubscribe(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	if got := subscriberConns(); len(got) != 1 || got[0] != fixed {
		t.Fatalf("after Unsubscribe: subscribed connections %v, want one holding control and the user channels", got)
	}
}

// TestConformanceMixed runs the conformance suite with half the rooms on
// subscriptions of their own and half on the shared connection.
func TestConformanceMixed(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	// By name length: brokertest's rooms differ in their prefixes, so the
	// pairs a test uses together (quiet and loud, leave and stay) land on
	// different kinds.
	own := func(room string) bool { return len(room)%2 == 0 }
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return newBroker(t, redis.Config{URL: srv.URL(), OwnSubscription: own})
	})
}

// TestClusterUserRoomsNeedNoSubscription checks that in cluster mode,
// where every room has a subscription and a goroutine of its own, user
// rooms (one per connection) add neither, and still reach other nodes.
//
// Not parallel: it counts the process's goroutines.
func TestClusterUserRoomsNeedNoSubscription(t *testing.T) {
	const users = 300
	c := testserver.StartRedisCluster(t)
	a := brokertest.StartNode(t, newBroker(t, redis.Config{ClusterAddrs: c.Addrs()}))
	b := brokertest.StartNode(t, newBroker(t, redis.Config{ClusterAddrs: c.Addrs()}))
	ctx := context.Background()
	before := runtime.NumGoroutine()
	rooms := make([]string, users)
	for i := range rooms {
		rooms[i] = protocol.UserRoomPrefix + brokertest.Room("cu"+strconv.Itoa(i))
		if err := a.Subscribe(ctx, rooms[i]); err != nil {
			t.Fatal(err)
		}
	}
	if grown := runtime.NumGoroutine() - before; grown > users/10 {
		t.Fatalf("%d user rooms added %d goroutines", users, grown)
	}
	for _, room := range rooms {
		if err := b.Publish(ctx, brokertest.Msg(room, "dm")); err != nil {
			t.Fatal(err)
		}
	}
	for _, room := range rooms {
		brokertest.Eventually(t, 5*time.Second, func() bool { return len(a.Messages(room)) == 1 && len(b.Messages(room)) == 1 },
			"%s: %d and %d messages on the two nodes, want 1 each", room, len(a.Messages(room)), len(b.Messages(room)))
	}
}

// PublishBatch while Redis is down answers each message as Publish
// would: ErrUnavailable without a buffer; with one, queued in order and
// sent once Redis is back, and ErrUnavailable for what does not fit.
func TestFaultBatch(t *testing.T) {
	t.Parallel()
	const buffered = 30
	srv := testserver.StartRedis(t)
	failFast := brokertest.StartNode(t, newBroker(t, redis.Config{URL: srv.URL()}))
	n := brokertest.StartNode(t, newBroker(t, redis.Config{URL: srv.URL(), PublishBuffer: buffered}))
	room := brokertest.Room("batch-down")
	ctx := context.Background()
	if err := n.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	brokertest.Eventually(t, 5*time.Second, func() bool {
		return errors.Is(n.Health(ctx), broker.ErrUnavailable) && errors.Is(failFast.Health(ctx), broker.ErrUnavailable)
	}, "Health ok while Redis is down")

	batch := func(first, count int) ([]*broker.Message, []error) {
		ms := make([]*broker.Message, count)
		for i := range ms {
			ms[i] = brokertest.Msg(room, "queued")
			ms[i].MsgID = strconv.Itoa(first + i)
		}
		return ms, make([]error, count)
	}
	ms, errs := batch(0, 3)
	failFast.Broker.(broker.BatchPublisher).PublishBatch(ctx, ms, errs)
	for i, err := range errs {
		if !errors.Is(err, broker.ErrUnavailable) {
			t.Fatalf("message %d of a batch while down without a buffer: %v, want ErrUnavailable", i, err)
		}
	}

	bp := n.Broker.(broker.BatchPublisher)
	ms, errs = batch(0, buffered-5)
	bp.PublishBatch(ctx, ms, errs)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("message %d of a batch while down with a buffer: %v", i, err)
		}
	}
	ms, errs = batch(buffered-5, 10) // 5 fit
	bp.PublishBatch(ctx, ms, errs)
	for i, err := range errs {
		if fits := i < 5; fits != (err == nil) || !fits && !errors.Is(err, broker.ErrUnavailable) {
			t.Fatalf("message %d of a batch that overflows the buffer: %v", i, err)
		}
	}

	srv.Restart()
	n.InOrder(t, room, buffered, 5*time.Second)
}
