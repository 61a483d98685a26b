package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/internal/catchup"
	"github.com/heraldrt/herald/protocol"
	"github.com/nats-io/nats.go"
)

// Broker is the NATS core engine. Create it with New; it is safe for
// concurrent use.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	control string

	nc      *nats.Conn
	h       broker.Handler
	started atomic.Bool
	closed  atomic.Bool

	mu         sync.Mutex
	subs       map[string]*nats.Subscription // by room
	controlSub *nats.Subscription
	usersSub   *nats.Subscription // every user room, on one wildcard

	hist historyState
	// track orders the messages of rooms with history and fills the gaps
	// a reconnect leaves (see package catchup); set by Start.
	track *catchup.Tracker
}

var _ broker.Broker = (*Broker)(nil)

// New returns a broker that connects on Start.
func New(cfg Config) (*Broker, error) {
	cfg = cfg.withDefaults()
	if cfg.PublishBufferBytes < 0 {
		return nil, errors.New("nats broker: PublishBufferBytes must not be negative")
	}
	return &Broker{
		cfg:     cfg,
		log:     cfg.Logger,
		control: cfg.Prefix + ".control",
		subs:    make(map[string]*nats.Subscription),
	}, nil
}

// roomSubject names the subject of room. User rooms have subjects of
// their own kind, so that one wildcard subscription (usersSubject) holds
// all of them.
func (b *Broker) roomSubject(room string) string {
	if protocol.IsUserRoom(room) {
		return b.cfg.Prefix + ".user." + escapeToken(room)
	}
	return b.cfg.Prefix + ".room." + escapeToken(room)
}

// usersSubject matches the subject of every user room.
func (b *Broker) usersSubject() string { return b.cfg.Prefix + ".user.*" }

func unavailable(err error) error {
	return fmt.Errorf("%w: nats: %v", broker.ErrUnavailable, err)
}

// Start connects to NATS (failing with broker.ErrUnavailable if it cannot),
// subscribes to the control subject and to every user room, and begins
// delivering to h.
func (b *Broker) Start(ctx context.Context, h broker.Handler) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("nats broker: already started")
	}
	b.h = h
	b.track = catchup.NewChecked(h, func(room string) bool { return b.policy(room).Size > 0 }, b.trackedSince, b.log)
	buf := b.cfg.PublishBufferBytes
	if buf == 0 {
		buf = -1 // nats.go: no reconnect buffer, publish fails at once
	}
	opts := append([]nats.Option{
		nats.Name(b.cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(b.cfg.ReconnectWait),
		nats.ReconnectJitter(b.cfg.ReconnectWait/5, b.cfg.ReconnectWait/5),
		nats.ReconnectBufSize(buf),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("nats broker: disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats broker: reconnected", "url", nc.ConnectedUrlRedacted())
			b.reconnected()
			// Control messages sent while disconnected never reached us.
			if h, ok := b.h.(broker.ControlGapHandler); ok {
				h.HandleControlGap()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			b.log.Error("nats broker: async error", "subject", subject, "err", err)
		}),
	}, b.cfg.Options...)
	nc, err := nats.Connect(b.cfg.URL, opts...)
	if err != nil {
		b.track.Close()
		return unavailable(err)
	}
	b.nc = nc
	if b.hist.policy != nil {
		if err := b.startJetStream(ctx); err != nil {
			nc.Close()
			b.track.Close()
			return err
		}
	}
	sub, err := nc.Subscribe(b.control, b.deliverControl)
	var users *nats.Subscription
	if err == nil {
		users, err = nc.Subscribe(b.usersSubject(), b.deliverMessage)
	}
	if err == nil {
		err = b.flush(ctx)
	}
	if err != nil {
		nc.Close()
		b.track.Close()
		return unavailable(err)
	}
	b.mu.Lock()
	b.controlSub, b.usersSub = sub, users
	b.mu.Unlock()
	return nil
}

func (b *Broker) deliverControl(msg *nats.Msg) {
	var c broker.Control
	if err := json.Unmarshal(msg.Data, &c); err != nil {
		b.log.Warn("nats broker: undecodable control message", "subject", msg.Subject, "err", err)
		return
	}
	b.h.HandleControl(&c)
}

func (b *Broker) deliverMessage(msg *nats.Msg) {
	m := new(broker.Message)
	if err := json.Unmarshal(msg.Data, m); err != nil {
		b.log.Warn("nats broker: undecodable message", "subject", msg.Subject, "err", err)
		return
	}
	b.track.Deliver(m)
}

// reconnected runs after nats.go reconnected and sent every
// subscription again: messages published meanwhile never reached this
// node, so rooms with history are caught up from their streams and the
// others reported to the Handler.
func (b *Broker) reconnected() {
	b.forgetStreams()
	b.mu.Lock()
	rooms := make([]string, 0, len(b.subs))
	for room := range b.subs {
		rooms = append(rooms, room)
	}
	b.mu.Unlock()
	b.track.Resubscribed(rooms)
}

// ready reports why the broker cannot be used now, if it cannot.
func (b *Broker) ready() error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if !b.started.Load() {
		return unavailable(errors.New("not started"))
	}
	return nil
}

// Publish implements broker.Broker: one PUB of the JSON-encoded message.
// A nil error means nats.go accepted it for sending (NATS core is
// at-most-once); while reconnecting it is buffered or refused according
// to Config.PublishBufferBytes. To a room with history it is first
// stored in the room's stream (see the package documentation), and a
// nil error means JetStream acknowledged it; such publishes are never
// buffered.
func (b *Broker) Publish(ctx context.Context, m *broker.Message) error {
	if err := b.ready(); err != nil {
		return err
	}
	if p := b.policy(m.Room); p.Size > 0 {
		return b.publishStored(ctx, m, p)
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("nats broker: encode: %w", err)
	}
	return b.publish(b.roomSubject(m.Room), payload)
}

// PublishControl implements broker.Broker.
func (b *Broker) PublishControl(_ context.Context, c *broker.Control) error {
	if err := b.ready(); err != nil {
		return err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("nats broker: encode: %w", err)
	}
	return b.publish(b.control, payload)
}

func (b *Broker) publish(subject string, payload []byte) error {
	if b.cfg.PublishBufferBytes == 0 && !b.nc.IsConnected() {
		return unavailable(fmt.Errorf("connection %s", b.nc.Status()))
	}
	err := b.nc.Publish(subject, payload)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrConnectionClosed) && b.closed.Load():
		return broker.ErrClosed
	default:
		return unavailable(err)
	}
}

// flushTimeout bounds the server round trip of Start and Subscribe when the
// caller's context has no deadline (nats.go insists on one).
const flushTimeout = 5 * time.Second

// flush waits until the server processed everything sent so far.
func (b *Broker) flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	return b.nc.FlushWithContext(ctx)
}

// Subscribe implements broker.Broker. It returns after the server has
// registered the subscription (a PING round trip), so a publication made
// after it returns is delivered. nats.go renews it after every reconnect.
// User rooms need no subscription of their own.
func (b *Broker) Subscribe(ctx context.Context, room string) error {
	if err := b.ready(); err != nil {
		return err
	}
	if protocol.IsUserRoom(room) {
		return nil
	}
	if !b.nc.IsConnected() {
		return unavailable(fmt.Errorf("connection %s", b.nc.Status()))
	}
	b.mu.Lock()
	if _, ok := b.subs[room]; ok {
		b.mu.Unlock()
		return nil
	}
	sub, err := b.nc.Subscribe(b.roomSubject(room), b.deliverMessage)
	if err != nil {
		b.mu.Unlock()
		return unavailable(err)
	}
	b.subs[room] = sub
	b.mu.Unlock()
	if err := b.flush(ctx); err != nil {
		b.mu.Lock()
		if b.subs[room] == sub {
			delete(b.subs, room)
		}
		b.mu.Unlock()
		_ = sub.Unsubscribe()
		return unavailable(err)
	}
	b.track.Subscribed(ctx, room)
	return nil
}

// Unsubscribe implements broker.Broker. Once it returns no further message
// of room is handed to the Handler (a callback already running may finish).
func (b *Broker) Unsubscribe(_ context.Context, room string) error {
	if protocol.IsUserRoom(room) {
		return nil
	}
	b.mu.Lock()
	sub := b.subs[room]
	delete(b.subs, room)
	b.mu.Unlock()
	if sub == nil {
		return nil
	}
	defer b.track.Unsubscribed(room)
	// While disconnected the UNSUB is buffered or, with the connection gone,
	// moot: nats.go forgets the subscription and will not resend it.
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("nats broker: unsubscribe %q: %w", room, err)
	}
	return nil
}

// Subscribed reports whether the node currently has interest in room
// (for a user room: whether the broker is started).
func (b *Broker) Subscribed(room string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if protocol.IsUserRoom(room) {
		return b.usersSub != nil
	}
	_, ok := b.subs[room]
	return ok
}

// Health implements broker.Broker: a wrapped broker.ErrUnavailable unless
// the connection is established.
func (b *Broker) Health(context.Context) error {
	if err := b.ready(); err != nil {
		return err
	}
	if st := b.nc.Status(); st != nats.CONNECTED {
		return unavailable(fmt.Errorf("connection %s", st))
	}
	return nil
}

// Close implements broker.Broker. It drops whatever nats.go still buffers
// for an absent server.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	if b.nc != nil {
		b.nc.Close()
	}
	if b.track != nil {
		b.track.Close()
	}
	return nil
}
