package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/heraldrt/herald/broker"
	"github.com/redis/rueidis"
)

// muxSubscriber holds the shared channels of a standalone broker
// on one dedicated connection: rooms cost a map entry each rather than a
// goroutine and a rueidis Receive each, which matters because every
// connection has a room of its own (its user room). Cluster mode keeps
// one Receive per channel (see subscription), since sharded channels
// live on different masters.
//
// One goroutine (run) owns the connection: it dials once Redis is up,
// subscribes to every known channel, waits for the connection to break
// and starts again. Subscribe and Unsubscribe send their command on the
// current connection themselves, if there is one.
//
// The connection's reader hands each message to one of a few fan-out
// workers, chosen by channel, so that rooms fan out in parallel (as
// they did with a goroutine each) while each room keeps Redis' order.
type muxSubscriber struct {
	b       *Broker
	workers []chan rueidis.PubSubMessage

	// mu guards chans. Deliveries hold it for reading, so that once
	// unsubscribe has removed a channel no message of it reaches the
	// Handler.
	mu    sync.RWMutex
	chans map[string]*muxChan // by channel

	connMu sync.Mutex
	dc     rueidis.DedicatedClient // nil while there is no connection
}

// muxChan is one channel of a muxSubscriber.
type muxChan struct {
	control   bool
	confirmed bool       // Redis confirmed it on the current connection; guarded by mu
	ready     chan error // the first confirmation (nil) or failure; nil once reported
}

func newMuxSubscriber(b *Broker) *muxSubscriber {
	m := &muxSubscriber{b: b, chans: make(map[string]*muxChan)}
	m.workers = make([]chan rueidis.PubSubMessage, fanoutWorkers)
	for i := range m.workers {
		m.workers[i] = make(chan rueidis.PubSubMessage, fanoutQueue)
	}
	return m
}

// fanoutWorkers is how many rooms can fan out at once. Rooms are spread
// over them by hash, so more workers than cores make it less likely that
// a busy room delays another behind it.
const fanoutWorkers = 16

// fanoutQueue bounds the messages waiting for one fan-out worker; when
// it is full the connection's reader waits.
const fanoutQueue = 256

// start starts the connection's owner and the fan-out workers.
func (m *muxSubscriber) start() {
	m.b.wg.Add(1 + len(m.workers))
	go m.run()
	for _, q := range m.workers {
		go m.fanout(q)
	}
}

// fanout hands the messages of q to the Handler until the broker closes.
func (m *muxSubscriber) fanout(q chan rueidis.PubSubMessage) {
	defer m.b.wg.Done()
	for {
		select {
		case msg := <-q:
			m.handle(msg)
		case <-m.b.ctx.Done():
			return
		}
	}
}

// subscribeBatch bounds the channels of one SUBSCRIBE when a connection
// is set up again.
const subscribeBatch = 1000

// run holds the connection until the broker closes.
func (m *muxSubscriber) run() {
	b := m.b
	defer b.wg.Done()
	failures := 0
	for {
		if b.waitUp(b.ctx) != nil {
			return
		}
		err := m.serve()
		if b.ctx.Err() != nil {
			return
		}
		if isConnErr(err) {
			b.markDown(err)
		}
		if err == nil {
			err = errors.New("connection closed")
		}
		failures++
		b.log.Debug("redis broker: subscriber connection ended", "err", err)
		if !sleep(b.ctx, backoff(failures)) {
			return
		}
	}
}

// serve sets up one connection, subscribes to every known channel on it
// and returns when it breaks or the broker closes.
func (m *muxSubscriber) serve() error {
	b := m.b
	dc, release := b.client.Dedicate()
	defer release()
	broken := dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: m.onMessage, OnSubscription: m.onSubscription})
	m.connMu.Lock()
	m.dc = dc
	m.connMu.Unlock()
	defer func() {
		m.connMu.Lock()
		m.dc = nil
		m.connMu.Unlock()
		dc.Close()
		m.lost()
	}()

	// Everything known now; a channel added later is sent by its
	// Subscribe, which finds dc set.
	m.mu.RLock()
	channels := make([]string, 0, len(m.chans))
	for ch := range m.chans {
		channels = append(channels, ch)
	}
	m.mu.RUnlock()
	for batch := range slices.Chunk(channels, subscribeBatch) {
		if err := dc.Do(b.ctx, dc.B().Subscribe().Channel(batch...).Build()).Error(); err != nil {
			return err
		}
	}
	select {
	case err := <-broken:
		return err
	case <-b.ctx.Done():
		return nil
	}
}

// lost marks every channel unconfirmed after the connection ended, and
// fails the Subscribe calls still waiting for their first confirmation.
func (m *muxSubscriber) lost() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ch, c := range m.chans {
		if c.confirmed {
			c.confirmed = false
			m.b.unconfirmed.Add(1)
		}
		if c.ready != nil {
			c.ready <- errors.New("connection lost before the subscription was confirmed")
			c.ready = nil
			delete(m.chans, ch)
			m.b.unconfirmed.Add(-1)
		}
	}
}

func (m *muxSubscriber) onSubscription(s rueidis.PubSubSubscription) {
	if s.Kind != "subscribe" {
		return // an unsubscribe confirms what unsubscribe already removed
	}
	m.mu.Lock()
	c := m.chans[s.Channel]
	if c == nil || c.confirmed {
		m.mu.Unlock()
		return
	}
	c.confirmed = true
	m.b.unconfirmed.Add(-1)
	again := c.ready == nil // confirmed before, on an earlier connection
	if c.ready != nil {
		c.ready <- nil
		c.ready = nil
	}
	m.mu.Unlock()
	if again && c.control {
		m.b.controlGap()
	}
	if room := m.b.channelRoom(s.Channel); again && room != "" {
		// Back after a break: what was published meanwhile never
		// reached this node. On this connection's reader, before any
		// message that follows the confirmation.
		m.b.track.Resubscribed([]string{room})
	}
}

// onMessage runs on the connection's reader: it queues msg for its
// channel's worker.
func (m *muxSubscriber) onMessage(msg rueidis.PubSubMessage) {
	q := m.workers[maphash.String(workerSeed, msg.Channel)%uint64(len(m.workers))]
	select {
	case q <- msg:
	case <-m.b.ctx.Done():
	}
}

var workerSeed = maphash.MakeSeed()

// handle hands msg to the Handler if its channel is still held.
func (m *muxSubscriber) handle(msg rueidis.PubSubMessage) {
	m.mu.RLock()
	c := m.chans[msg.Channel]
	if c == nil || c.control {
		m.mu.RUnlock()
		if c != nil {
			// Not under mu: handling a control message may end
			// connections and so leave rooms. Control is never
			// unsubscribed.
			m.b.deliver(msg, true)
		}
		return
	}
	defer m.mu.RUnlock()
	m.b.deliver(msg, false)
}

// subscribe adds channel and returns once Redis confirmed it.
func (m *muxSubscriber) subscribe(ctx context.Context, channel string, control bool) error {
	b := m.b
	m.mu.Lock()
	if _, ok := m.chans[channel]; ok {
		m.mu.Unlock()
		return nil
	}
	ready := make(chan error, 1)
	c := &muxChan{control: control, ready: ready}
	m.chans[channel] = c
	b.unconfirmed.Add(1)
	m.mu.Unlock()

	// Without a connection, run subscribes once it has one.
	m.connMu.Lock()
	dc := m.dc
	m.connMu.Unlock()
	if dc != nil {
		if err := dc.Do(ctx, dc.B().Subscribe().Channel(channel).Build()).Error(); err != nil {
			m.remove(channel, c)
			if isConnErr(err) {
				return unavailable(err)
			}
			return fmt.Errorf("redis broker: subscribe %s: %w", channel, err)
		}
	}
	select {
	case err := <-ready:
		if err != nil {
			return unavailable(err)
		}
		return nil
	case <-ctx.Done():
		m.remove(channel, c)
		_ = m.sendUnsubscribe(channel)
		return ctx.Err()
	case <-b.ctx.Done():
		return broker.ErrClosed
	}
}

// remove takes c out if it is still channel's entry.
func (m *muxSubscriber) remove(channel string, c *muxChan) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.chans[channel] != c {
		return false
	}
	delete(m.chans, channel)
	if !c.confirmed {
		m.b.unconfirmed.Add(-1)
	}
	c.ready = nil
	return true
}

// unsubscribe drops channel; once it returns no message of it reaches
// the Handler.
func (m *muxSubscriber) unsubscribe(channel string) error {
	m.mu.RLock()
	c := m.chans[channel]
	m.mu.RUnlock()
	if c == nil || !m.remove(channel, c) {
		return nil
	}
	return m.sendUnsubscribe(channel)
}

// sendUnsubscribe clears the server side, best effort: without a
// connection there is nothing to clear.
func (m *muxSubscriber) sendUnsubscribe(channel string) error {
	b := m.b
	m.connMu.Lock()
	dc := m.dc
	m.connMu.Unlock()
	if dc == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, pingTimeout)
	defer cancel()
	err := dc.Do(ctx, dc.B().Unsubscribe().Channel(channel).Build()).Error()
	if err != nil && !isConnErr(err) && b.ctx.Err() == nil {
		return fmt.Errorf("redis broker: unsubscribe %s: %w", channel, err)
	}
	return nil
}

// subscribed reports whether channel is held.
func (m *muxSubscriber) subscribed(channel string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.chans[channel]
	return ok
}
