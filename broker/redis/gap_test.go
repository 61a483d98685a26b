package redis_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/brokertest"
	"github.com/heraldrt/herald/broker/redis"
	"github.com/heraldrt/herald/internal/testserver"
)

// TestGapRepair: two nodes subscribed to a room with history and to one
// without; a publisher on node a sends a numbered stream while the test
// breaks the subscriptions (CLIENT KILL TYPE pubsub, or a Redis
// restart). Every publish Redis answered reaches node b exactly once, in
// order, with consecutive offsets within each epoch; the room without
// history is reported as a gap.
func TestGapRepair(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		shared bool
		fault  string
	}{
		{name: "client kill, own subscriptions", fault: "kill"},
		{name: "client kill, shared connection", shared: true, fault: "kill"},
		{name: "restart with data, own subscriptions", fault: "restart"},
		{name: "restart with data, shared connection", shared: true, fault: "restart"},
		{name: "restart empty, own subscriptions", fault: "crash"},
		{name: "restart empty, shared connection", shared: true, fault: "crash"},
		{name: "cluster, client kill on every master", fault: "cluster-kill"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				srv     *testserver.Redis
				cluster *testserver.RedisCluster
				cfg     redis.Config
			)
			if tt.fault == "cluster-kill" {
				cluster = testserver.StartRedisCluster(t)
				cfg = redis.Config{ClusterAddrs: cluster.Addrs()}
			} else {
				srv = testserver.StartRedis(t)
				cfg = redis.Config{URL: srv.URL(), OwnSubscription: func(string) bool { return !tt.shared }}
			}
			node := func() *brokertest.Node {
				b := newBroker(t, cfg)
				b.SetHistory(func(room string) broker.HistoryPolicy {
					if brokertest.TestHistory(room).Size == 0 {
						return broker.HistoryPolicy{}
					}
					return broker.HistoryPolicy{Size: 10000}
				})
				return brokertest.StartNode(t, b)
			}
			a, b := node(), node()
			room, plain := brokertest.Room("h-gap"), brokertest.Room("plain")
			ctx := context.Background()
			for _, n := range []*brokertest.Node{a, b} {
				for _, r := range []string{room, plain} {
					if err := n.Subscribe(ctx, r); err != nil {
						t.Fatal(err)
					}
				}
			}
			var (
				mu       sync.Mutex
				answered []string
				epochOf  = make(map[string]string)
				stop     = make(chan struct{})
				done     = make(chan struct{})
			)
			go func() {
				defer close(done)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					m := brokertest.Msg(room, "seq")
					m.MsgID = strconv.Itoa(i)
					if a.Publish(ctx, m) == nil {
						mu.Lock()
						answered = append(answered, m.MsgID)
						epochOf[m.MsgID] = m.Epoch
						mu.Unlock()
					} else {
						time.Sleep(5 * time.Millisecond)
					}
				}
			}()
			count := func() int { mu.Lock(); defer mu.Unlock(); return len(answered) }
			for round := range 3 {
				at := count()
				brokertest.Eventually(t, 10*time.Second, func() bool { return count() > at+30 }, "round %d: publishes stalled", round)
				switch tt.fault {
				case "restart":
					srv.RestartWithData()
				case "crash":
					srv.Restart()
				case "cluster-kill":
					for _, n := range cluster.Nodes() {
						if _, err := n.Command("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
							t.Fatal(err)
						}
					}
				default:
					if _, err := srv.Command("CLIENT", "KILL", "TYPE", "pubsub"); err != nil {
						t.Fatal(err)
					}
				}
			}
			at := count()
			brokertest.Eventually(t, 10*time.Second, func() bool { return count() > at+30 }, "publishes stalled at the end")
			close(stop)
			<-done
			want := slices.Clone(answered)
			last := want[len(want)-1]
			brokertest.Eventually(t, 10*time.Second, func() bool { return b.Count(room, last) > 0 }, "last message not delivered")
			seen := make(map[string]int)
			var prev *broker.Message
			for _, m := range b.Messages(room) {
				seen[m.MsgID]++
				if prev != nil && prev.Epoch == m.Epoch && m.Offset != prev.Offset+1 {
					t.Errorf("offset %d follows %d in epoch %s", m.Offset, prev.Offset, m.Epoch)
				}
				if prev != nil {
					p, _ := strconv.Atoi(prev.MsgID)
					c, _ := strconv.Atoi(m.MsgID)
					if c <= p {
						t.Errorf("message %d after %d: out of order", c, p)
					}
				}
				prev = m
			}
			// A Redis restarted empty (a crash without persistence) loses
			// what it had stored: a message answered just before may
			// not have reached the other node yet. It is then reported
			// as a gap (the epoch changed); every message of the epoch
			// that follows is delivered.
			finalEpoch := epochOf[last]
			lost, dup, lostBefore := 0, 0, 0
			for _, id := range want {
				switch seen[id] {
				case 0:
					if tt.fault == "crash" && epochOf[id] != finalEpoch {
						lostBefore++
						continue
					}
					t.Logf("lost %s", id)
					lost++
				case 1:
				default:
					dup++
				}
			}
			t.Logf("%d answered, %d delivered to the other node, %d lost, %d duplicated, %d lost in a crash and reported; gaps reported %v",
				len(want), len(b.Messages(room)), lost, dup, lostBefore, b.Gaps())
			if lost != 0 || dup != 0 {
				t.Fatalf("%d of %d answered publishes lost, %d duplicated", lost, len(want), dup)
			}
			gapped, roomGapped := false, false
			for _, g := range b.Gaps() {
				gapped = gapped || slices.Contains(g, plain)
				roomGapped = roomGapped || slices.Contains(g, room)
			}
			if !gapped {
				t.Errorf("room without history %s never reported as a gap: %v", plain, b.Gaps())
			}
			if tt.fault == "crash" && !roomGapped {
				t.Errorf("history lost in a crash but %s never reported as a gap", room)
			}
			if tt.fault != "crash" && roomGapped {
				t.Errorf("%s reported as a gap though its history was kept", room)
			}
		})
	}
}

// TestIdempotencyKeysBounded: the idempotency keys of a room are kept
// only while their messages are in the history, so a stream of
// publishes with keys holds about as many keys as messages.
func TestIdempotencyKeysBounded(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	b := newBroker(t, redis.Config{URL: srv.URL()})
	b.SetHistory(brokertest.TestHistory)
	n := brokertest.StartNode(t, b)
	room := brokertest.Room("h-keys")
	ctx := context.Background()
	for i := range 1000 {
		m := brokertest.Msg(room, "k")
		m.IdempotencyKey = "key-" + strconv.Itoa(i)
		if err := n.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := srv.Command("ZCARD", "herald:hist:{"+room+"}:k")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := srv.Command("XLEN", "herald:hist:{"+room+"}:s")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after 1000 publishes with keys to a room of %d: %s keys, %s stream entries", brokertest.HistorySize, keys, entries)
	if k, _ := strconv.Atoi(keys); k == 0 || k > 2*brokertest.HistorySize+100 {
		t.Fatalf("%s idempotency keys kept for a history of %d (%s entries)", keys, brokertest.HistorySize, entries)
	}
	// A key whose message was trimmed is a new publish again.
	m := brokertest.Msg(room, "k")
	m.IdempotencyKey = "key-0"
	if err := n.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	if m.Offset != 1001 {
		t.Fatalf("key of a trimmed message: offset %d, want a new one, 1001", m.Offset)
	}
}

// TestRollbackStartsNewEpoch: a Redis that comes back from a snapshot
// older than the last messages (a crash with RDB persistence, a replica
// behind its master taking over) has rolled the room's history back. A
// node that had the newer messages starts a new epoch when it catches
// up, and reports the gap, so that the offsets after the snapshot are
// not given again to new messages in the old epoch, which every node and
// client that saw the old ones would drop as repeats; also when new
// messages took the room past that offset before the node caught up (the
// message at its offset is another one). A client's position past the
// newest offset does not do that: anyone can send one.
func TestRollbackStartsNewEpoch(t *testing.T) {
	t.Parallel()
	srv := testserver.StartRedis(t)
	node := func() *brokertest.Node {
		b := newBroker(t, redis.Config{URL: srv.URL()})
		b.SetHistory(brokertest.TestHistory)
		return brokertest.StartNode(t, b)
	}
	a, b := node(), node()
	room := brokertest.Room("h-rollback")
	// quiet has no subscriber: the test reads it as a node's repair would.
	quiet := brokertest.Room("h-rollback-quiet")
	ctx := context.Background()
	if err := b.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	publishTo := func(room string, n int) *broker.Message {
		t.Helper()
		var m *broker.Message
		for range n {
			m = brokertest.Msg(room, "seq")
			if err := a.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	publish := func(n int) *broker.Message { t.Helper(); return publishTo(room, n) }
	publish(5)
	publishTo(quiet, 5)
	if _, err := srv.Command("SAVE"); err != nil {
		t.Fatal(err)
	}
	last := publish(5)
	quietLast := publishTo(quiet, 5)
	quietAt := broker.Position{Offset: quietLast.Offset, Epoch: quietLast.Epoch}
	if _, cur, err := redis.TrackedSince(b.Broker.(*redis.Broker), ctx, quiet, quietAt, quietLast.MsgID, 0); err != nil || cur.Offset != quietAt.Offset || cur.Epoch != quietAt.Epoch {
		t.Fatalf("repair's read at the newest message: %+v, %v; want %+v", cur, err, quietAt)
	}
	brokertest.Eventually(t, 5*time.Second, func() bool { return b.Count(room, last.MsgID) > 0 }, "last message before the crash not delivered")
	epoch := last.Epoch

	// A client's position past the newest: unrecoverable, nothing reset.
	h := a.Broker.(broker.Historian)
	if _, _, err := h.Since(ctx, room, broker.Position{Offset: 1000, Epoch: epoch}, 0); !errors.Is(err, broker.ErrUnrecoverable) {
		t.Fatalf("Since past the newest: %v, want ErrUnrecoverable", err)
	}
	if _, cur, err := h.Since(ctx, room, broker.Position{}, 0); err != nil || cur != (broker.Position{Offset: 10, Epoch: epoch, MsgID: last.MsgID}) {
		t.Fatalf("position after a client's position past the newest: %+v, %v; want 10 in %s", cur, err, epoch)
	}

	srv.RestartFromSnapshot()
	brokertest.Eventually(t, 10*time.Second, func() bool {
		for _, g := range b.Gaps() {
			if slices.Contains(g, room) {
				return true
			}
		}
		return false
	}, "the rolled-back room never reported as a gap")
	var m *broker.Message
	brokertest.Eventually(t, 10*time.Second, func() bool {
		m = brokertest.Msg(room, "seq")
		return a.Publish(ctx, m) == nil
	}, "no publish after the crash")
	if m.Epoch == epoch {
		t.Fatalf("publish after the rollback: offset %d in the old epoch %s, whose offsets 6-10 were already given", m.Offset, epoch)
	}

	// Overtaken: new messages reach offset 10 again before the repair
	// (retried: a connection of the client may still be the old one).
	brokertest.Eventually(t, 10*time.Second, func() bool {
		m := brokertest.Msg(quiet, "seq")
		if err := a.Publish(ctx, m); err != nil {
			return false
		}
		if m.Epoch != quietAt.Epoch {
			t.Fatalf("quiet room after the rollback: epoch %s, want %s (nothing read it yet)", m.Epoch, quietAt.Epoch)
		}
		return m.Offset > quietAt.Offset
	}, "the quiet room never reached offset %d again", quietAt.Offset)
	var (
		cur broker.Position
		err error
	)
	brokertest.Eventually(t, 10*time.Second, func() bool {
		_, cur, err = redis.TrackedSince(b.Broker.(*redis.Broker), ctx, quiet, quietAt, quietLast.MsgID, 0)
		return !errors.Is(err, broker.ErrUnavailable)
	}, "history unreadable after the crash")
	if !errors.Is(err, broker.ErrUnrecoverable) || cur.Epoch == quietAt.Epoch {
		t.Fatalf("repair's read after offset 10 was given again: %+v, %v; want a new epoch, unrecoverable", cur, err)
	}
	brokertest.Eventually(t, 5*time.Second, func() bool { return b.Count(room, m.MsgID) > 0 }, "publish after the crash not delivered")
}
