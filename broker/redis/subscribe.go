package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
	"github.com/redis/rueidis"
)

// errUnsubscribed is what a subscription that Redis ended before confirming
// it reports.
var errUnsubscribed = errors.New("unsubscribed by the server")

// subscription is one channel this node listens to, kept alive by its own
// goroutine (run) across reconnects until cancel.
type subscription struct {
	b       *Broker
	room    string
	channel string
	control bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	leaving   atomic.Bool
	confirmed atomic.Bool
	ready     chan struct{} // closed at the first confirmation
	readyOnce sync.Once
	failed    chan error // the first attempt's error, if it never confirmed
}

func (b *Broker) newSubscription(room, channel string, control bool) *subscription {
	ctx, cancel := context.WithCancel(b.ctx)
	s := &subscription{
		b: b, room: room, channel: channel, control: control,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		ready: make(chan struct{}), failed: make(chan error, 1),
	}
	b.unconfirmed.Add(1)
	b.wg.Add(1)
	go s.run()
	return s
}

func (b *Broker) subscribeCmd(channel string) rueidis.Completed {
	if b.cluster {
		return b.client.B().Ssubscribe().Channel(channel).Build()
	}
	return b.client.B().Subscribe().Channel(channel).Build()
}

func (b *Broker) unsubscribeCmd(channel string) rueidis.Completed {
	if b.cluster {
		return b.client.B().Sunsubscribe().Channel(channel).Build()
	}
	return b.client.B().Unsubscribe().Channel(channel).Build()
}

func (s *subscription) setConfirmed(v bool) {
	if s.confirmed.Swap(v) != v {
		if v {
			s.b.unconfirmed.Add(-1)
		} else {
			s.b.unconfirmed.Add(1)
		}
	}
}

// run holds the subscription: it (re)subscribes whenever Redis is up and
// the previous Receive ended, until the subscription is cancelled. Only
// the first attempt's failure is reported (to Subscribe); later ones wait
// for the monitor to see Redis up again.
func (s *subscription) run() {
	b := s.b
	defer b.wg.Done()
	defer close(s.done)
	defer func() {
		s.setConfirmed(true) // leave the unconfirmed count
	}()
	hookCtx := rueidis.WithOnSubscriptionHook(s.ctx, func(ps rueidis.PubSubSubscription) {
		if ps.Channel != s.channel {
			return
		}
		switch ps.Kind {
		case "subscribe", "ssubscribe":
			s.setConfirmed(true)
			first := false
			s.readyOnce.Do(func() { close(s.ready); first = true })
			if !first && s.room != "" {
				// Back after a break: what was published meanwhile
				// never reached this node.
				s.b.track.Resubscribed([]string{s.room})
			}
			if !first && s.control {
				s.b.controlGap()
			}
		case "unsubscribe", "sunsubscribe":
			s.setConfirmed(false)
		}
	})
	failures := 0
	for {
		if b.waitUp(s.ctx) != nil {
			return
		}
		err := b.client.Receive(hookCtx, b.subscribeCmd(s.channel), s.deliver)
		s.setConfirmed(false)
		if s.ctx.Err() != nil || s.leaving.Load() {
			return
		}
		if isConnErr(err) {
			b.markDown(err)
		}
		select {
		case <-s.ready:
		default:
			if err == nil {
				err = errUnsubscribed
			}
			s.failed <- err
			return
		}
		// A nil error means Redis dropped the subscription (for example a
		// slot migrated in cluster mode): subscribe again.
		failures++
		if !sleep(s.ctx, backoff(failures)) {
			return
		}
		if err == nil {
			failures = 0
		}
	}
}

// backoff spaces out repeated failures that the monitor does not gate
// (a Redis error, such as a permission denied, while PING works).
func backoff(failures int) time.Duration {
	d := 10 * time.Millisecond << min(failures, 7)
	return min(d, time.Second)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// deliver hands one pub/sub message to the broker, unless s is ending.
func (s *subscription) deliver(msg rueidis.PubSubMessage) {
	if s.leaving.Load() {
		return
	}
	s.b.deliver(msg, s.control)
}

// deliver decodes one pub/sub message and hands it to the Handler.
func (b *Broker) deliver(msg rueidis.PubSubMessage, control bool) {
	if control {
		var c broker.Control
		if err := json.Unmarshal([]byte(msg.Message), &c); err != nil {
			b.log.Warn("redis broker: undecodable control message", "channel", msg.Channel, "err", err)
			return
		}
		b.h.HandleControl(&c)
		return
	}
	m := new(broker.Message)
	if err := json.Unmarshal([]byte(msg.Message), m); err != nil {
		b.log.Warn("redis broker: undecodable message", "channel", msg.Channel, "err", err)
		return
	}
	b.track.Deliver(m)
}

// awaitSubscribed waits for s's first confirmation. On failure it stops s.
func (b *Broker) awaitSubscribed(ctx context.Context, s *subscription) error {
	select {
	case <-s.ready:
		return nil
	case err := <-s.failed:
		<-s.done
		if isConnErr(err) {
			return unavailable(err)
		}
		return fmt.Errorf("redis broker: subscribe %s: %w", s.channel, err)
	case <-ctx.Done():
		b.stop(s)
		return ctx.Err()
	}
}

// stop cancels s, waits for its goroutine, and clears any server-side
// subscription it may have left (best effort: a failed UNSUBSCRIBE means
// the connection, and the subscription with it, is gone).
func (b *Broker) stop(s *subscription) error {
	s.leaving.Store(true)
	s.cancel()
	<-s.done
	ctx, cancel := context.WithTimeout(b.ctx, pingTimeout)
	defer cancel()
	err := b.client.Do(ctx, b.unsubscribeCmd(s.channel)).Error()
	if err != nil && !isConnErr(err) && b.ctx.Err() == nil {
		return fmt.Errorf("redis broker: unsubscribe %s: %w", s.channel, err)
	}
	return nil
}

// shared reports whether room is held on the shared subscriber
// connection (see Config.OwnSubscription).
func (b *Broker) shared(room string) bool {
	return b.mux != nil && (b.cfg.OwnSubscription == nil || !b.cfg.OwnSubscription(room))
}

// Subscribe implements broker.Broker. It returns once Redis confirmed the
// subscription, so a publication made after it returns is delivered. From
// then on the subscription is renewed after every reconnect until
// Unsubscribe. User rooms need no subscription of their own: Start
// subscribed to the user channels.
func (b *Broker) Subscribe(ctx context.Context, room string) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if !b.started.Load() {
		return unavailable(errors.New("not started"))
	}
	if protocol.IsUserRoom(room) {
		return nil
	}
	if !b.up.Load() {
		return b.downErr()
	}
	if b.shared(room) {
		if err := b.mux.subscribe(ctx, b.roomChannel(room), false); err != nil {
			return err
		}
		b.track.Subscribed(ctx, room)
		return nil
	}
	b.subsMu.Lock()
	if _, ok := b.subs[room]; ok {
		b.subsMu.Unlock()
		return nil
	}
	s := b.newSubscription(room, b.roomChannel(room), false)
	b.subs[room] = s
	b.subsMu.Unlock()
	err := b.awaitSubscribed(ctx, s)
	if err != nil {
		b.subsMu.Lock()
		if b.subs[room] == s {
			delete(b.subs, room)
		}
		b.subsMu.Unlock()
		return err
	}
	b.track.Subscribed(ctx, room)
	return nil
}

// Unsubscribe implements broker.Broker. Once it returns, no message of room
// is handed to the Handler by this node.
func (b *Broker) Unsubscribe(_ context.Context, room string) error {
	if protocol.IsUserRoom(room) {
		return nil
	}
	if b.shared(room) {
		err := b.mux.unsubscribe(b.roomChannel(room))
		b.track.Unsubscribed(room)
		return err
	}
	b.subsMu.Lock()
	s := b.subs[room]
	delete(b.subs, room)
	b.subsMu.Unlock()
	if s == nil {
		return nil
	}
	err := b.stop(s)
	b.track.Unsubscribed(room)
	return err
}

// Subscribed reports whether the node currently has interest in room
// (for a user room: whether the broker is started).
func (b *Broker) Subscribed(room string) bool {
	if protocol.IsUserRoom(room) {
		return b.started.Load() && !b.closed.Load()
	}
	if b.shared(room) {
		return b.mux.subscribed(b.roomChannel(room))
	}
	b.subsMu.Lock()
	defer b.subsMu.Unlock()
	_, ok := b.subs[room]
	return ok
}
