// Package memory is the single-node Broker: publications are handed straight
// to the local Handler in the caller's goroutine, so a publisher's messages
// are delivered in order and a publish returns once every local member has
// the message queued. It starts no goroutines.
package memory

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/heraldrt/herald/broker"
)

// Broker is the in-memory engine. The zero value is not usable; call New.
type Broker struct {
	mu      sync.RWMutex
	handler broker.Handler
	rooms   map[string]struct{}
	closed  atomic.Bool
}

// New returns an in-memory broker.
func New() *Broker {
	return &Broker{rooms: make(map[string]struct{})}
}

var _ broker.Broker = (*Broker)(nil)

// Start implements broker.Broker.
func (b *Broker) Start(_ context.Context, h broker.Handler) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handler = h
	return nil
}

// Publish implements broker.Broker. Rooms without local interest are
// dropped here, exactly as a cluster engine would not route them to a node
// that has no member; user rooms always reach the Handler.
func (b *Broker) Publish(_ context.Context, m *broker.Message) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	b.mu.RLock()
	h := b.handler
	_, ok := b.rooms[m.Room]
	b.mu.RUnlock()
	if (ok || broker.IsUserRoom(m.Room)) && h != nil {
		h.HandleMessage(m)
	}
	return nil
}

// Subscribe implements broker.Broker; user rooms need no subscription.
func (b *Broker) Subscribe(_ context.Context, room string) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if broker.IsUserRoom(room) {
		return nil
	}
	b.mu.Lock()
	b.rooms[room] = struct{}{}
	b.mu.Unlock()
	return nil
}

// Unsubscribe implements broker.Broker.
func (b *Broker) Unsubscribe(_ context.Context, room string) error {
	if broker.IsUserRoom(room) {
		return nil
	}
	b.mu.Lock()
	delete(b.rooms, room)
	b.mu.Unlock()
	return nil
}

// PublishControl implements broker.Broker.
func (b *Broker) PublishControl(_ context.Context, c *broker.Control) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	b.mu.RLock()
	h := b.handler
	b.mu.RUnlock()
	if h != nil {
		h.HandleControl(c)
	}
	return nil
}

// Health implements broker.Broker; memory is always healthy until closed.
func (b *Broker) Health(context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return nil
}

// Close implements broker.Broker.
func (b *Broker) Close() error {
	b.closed.Store(true)
	return nil
}

// Subscribed reports whether the node currently has interest in room
// (always, for a user room). It exists for tests of the Hub's interest
// tracking.
func (b *Broker) Subscribed(room string) bool {
	if broker.IsUserRoom(room) {
		return true
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.rooms[room]
	return ok
}
