package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/broker/internal/catchup"
	"github.com/heraldrt/herald/protocol"
	"github.com/redis/rueidis"
)

// Broker is the Redis pub/sub engine. Create it with New; it is safe for
// concurrent use.
//
// Lock order: subsMu, then qmu, then stateMu; no lock is held across a
// Redis round trip.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	cluster bool
	control string // control channel name

	client rueidis.Client
	h      broker.Handler

	ctx     context.Context // cancelled by Close; parent of every goroutine
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started atomic.Bool
	closed  atomic.Bool

	stateMu     sync.Mutex
	up          atomic.Bool   // written under stateMu
	upCh        chan struct{} // closed while up
	lastErr     error
	monitorKick chan struct{}

	// Standalone: control, the user channels and shared rooms (see
	// Config.OwnSubscription) on one connection (mux). Cluster, and rooms
	// of their own: one subscription, with its goroutine, per room (subs);
	// in cluster mode control and each user channel have one too, which
	// only Close ends.
	mux    *muxSubscriber
	subsMu sync.Mutex
	subs   map[string]*subscription // by room
	// unconfirmed counts subscriptions not currently confirmed by Redis.
	unconfirmed atomic.Int64

	qmu       sync.Mutex
	queue     []pending
	flushKick chan struct{}

	history broker.HistoryFunc // set before Start; nil: no room keeps history
	// track orders the messages of rooms with history and fills the gaps
	// a resubscribe leaves (see package catchup); set by Start.
	track *catchup.Tracker
}

// pending is a publication waiting in the buffer for Redis to return.
type pending struct {
	channel string
	payload []byte
}

var _ broker.Broker = (*Broker)(nil)

// New validates cfg and returns a broker that connects on Start.
func New(cfg Config) (*Broker, error) {
	if _, err := cfg.clientOption(); err != nil {
		return nil, err
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "herald"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PublishBuffer < 0 {
		cfg.PublishBuffer = 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg:         cfg,
		log:         cfg.Logger,
		cluster:     len(cfg.ClusterAddrs) > 0,
		control:     cfg.Prefix + ":control",
		ctx:         ctx,
		cancel:      cancel,
		upCh:        make(chan struct{}),
		monitorKick: make(chan struct{}, 1),
		flushKick:   make(chan struct{}, 1),
		subs:        make(map[string]*subscription),
	}
	if !b.cluster {
		b.mux = newMuxSubscriber(b)
	}
	return b, nil
}

// roomChannel names the pub/sub channel of room. The braces make the room
// the cluster hash tag, so in cluster mode the channel lives on the master
// owning the room's slot; standalone Redis uses the same name. User rooms
// share the user channels instead.
func (b *Broker) roomChannel(room string) string {
	if protocol.IsUserRoom(room) {
		return b.userChannel(room)
	}
	return b.cfg.Prefix + ":room:{" + room + "}"
}

// channelRoom returns the room of a room channel; "" for the control
// and user channels.
func (b *Broker) channelRoom(channel string) string {
	rest, ok := strings.CutPrefix(channel, b.cfg.Prefix+":room:{")
	if !ok {
		return ""
	}
	return strings.TrimSuffix(rest, "}")
}

// userChannels is how many channels carry the user rooms. Every node
// subscribes to all of them; a user room's messages take one of them,
// chosen by a hash of the room's name that every node computes alike.
// More than one spreads the load over the masters of a cluster and
// over the fan-out workers of a standalone node.
const userChannels = 16

// userChannel names the user channel that carries room.
func (b *Broker) userChannel(room string) string {
	return b.userChannelN(int(crc32.ChecksumIEEE([]byte(room)) % userChannels))
}

func (b *Broker) userChannelN(n int) string {
	return b.cfg.Prefix + ":users:{" + strconv.Itoa(n) + "}"
}

// Start connects to Redis, subscribes to the control channel and the user
// channels, and begins delivering to h. It fails with broker.ErrUnavailable if Redis cannot be
// reached; a broker whose Start failed is closed.
func (b *Broker) Start(ctx context.Context, h broker.Handler) (err error) {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("redis broker: already started")
	}
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()
	opt, err := b.cfg.clientOption()
	if err != nil {
		return err
	}
	client, err := rueidis.NewClient(opt)
	if err != nil {
		return unavailable(err)
	}
	b.client, b.h = client, h
	b.track = catchup.NewChecked(h, func(room string) bool { return b.policy(room).Size > 0 }, b.trackedSince, b.log)
	b.stateMu.Lock()
	b.up.Store(true)
	close(b.upCh)
	b.stateMu.Unlock()

	b.wg.Add(2)
	go b.monitor()
	go b.flusher()

	if b.mux != nil {
		b.mux.start()
		if err := b.mux.subscribe(ctx, b.control, true); err != nil {
			return err
		}
		for n := range userChannels {
			if err := b.mux.subscribe(ctx, b.userChannelN(n), false); err != nil {
				return err
			}
		}
		return nil
	}
	fixed := []*subscription{b.newSubscription("", b.control, true)}
	for n := range userChannels {
		fixed = append(fixed, b.newSubscription("", b.userChannelN(n), false))
	}
	for _, s := range fixed {
		if err := b.awaitSubscribed(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// controlGap tells the Handler that control messages may have been missed
// (see broker.ControlGapHandler).
func (b *Broker) controlGap() {
	if h, ok := b.h.(broker.ControlGapHandler); ok {
		h.HandleControlGap()
	}
}

// Publish implements broker.Broker: one PUBLISH (cluster: one SPUBLISH to
// the slot owner) of the JSON-encoded message.
func (b *Broker) Publish(ctx context.Context, m *broker.Message) error {
	if p := b.policy(m.Room); p.Size > 0 {
		return b.publishStored(ctx, m, p)
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("redis broker: encode: %w", err)
	}
	return b.send(ctx, b.roomChannel(m.Room), payload)
}

// PublishControl implements broker.Broker.
func (b *Broker) PublishControl(ctx context.Context, c *broker.Control) error {
	payload, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("redis broker: encode: %w", err)
	}
	return b.send(ctx, b.control, payload)
}

func (b *Broker) publishCmd(channel string, payload []byte) rueidis.Completed {
	if b.cluster {
		return b.client.B().Spublish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()
	}
	return b.client.B().Publish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()
}

// PublishBatch implements broker.BatchPublisher: the PUBLISH commands of
// ms go out in one pipeline, in order (in cluster mode, in order per
// slot owner, which keeps each room's order), and each gets the result
// Publish would have given it.
func (b *Broker) PublishBatch(ctx context.Context, ms []*broker.Message, errs []error) {
	type direct struct {
		i       int
		channel string
		payload []byte
	}
	sent := make([]direct, 0, len(ms))
	cmds := make(rueidis.Commands, 0, len(ms))
	var stored map[int]*storedPublish
	for i, m := range ms {
		if p := b.policy(m.Room); p.Size > 0 {
			if !b.up.Load() || b.closed.Load() || !b.started.Load() {
				errs[i] = b.publishStored(ctx, m, p) // the refusal it gives
				continue
			}
			sp, err := b.prepareStored(m, p)
			if errs[i] = err; err != nil {
				continue
			}
			if stored == nil {
				stored = make(map[int]*storedPublish)
			}
			stored[len(cmds)] = sp
			sent = append(sent, direct{i: i})
			cmds = append(cmds, b.client.B().Evalsha().Sha1(publishSha1).Numkeys(int64(len(sp.keys))).Key(sp.keys...).Arg(sp.args...).Build())
			continue
		}
		payload, err := json.Marshal(m)
		if err != nil {
			errs[i] = fmt.Errorf("redis broker: encode: %w", err)
			continue
		}
		channel := b.roomChannel(m.Room)
		ok, err := b.admit(channel, payload)
		errs[i] = err
		if ok {
			sent = append(sent, direct{i: i, channel: channel, payload: payload})
			cmds = append(cmds, b.publishCmd(channel, payload))
		}
	}
	if len(cmds) == 0 {
		return
	}
	var noScript []int
	for k, r := range b.client.DoMulti(ctx, cmds...) {
		d := sent[k]
		if sp := stored[k]; sp != nil {
			if rerr, ok := rueidis.IsRedisErr(r.Error()); ok && rerr.IsNoScript() {
				noScript = append(noScript, k)
				continue
			}
			errs[d.i] = b.storedResult(sp, r)
			continue
		}
		errs[d.i] = b.sent(d.channel, d.payload, r.Error())
	}
	// Redis lost its script cache (a restart): these go again, in order,
	// with EVAL, which also loads the script.
	for _, k := range noScript {
		sp := stored[k]
		errs[sent[k].i] = b.storedResult(sp, publishLua.Exec(ctx, b.client, sp.keys, sp.args))
	}
}

// send publishes, or queues while Redis is down (or while older queued
// publications are still being flushed, so that order is kept).
func (b *Broker) send(ctx context.Context, channel string, payload []byte) error {
	ok, err := b.admit(channel, payload)
	if !ok {
		return err
	}
	return b.sent(channel, payload, b.client.Do(ctx, b.publishCmd(channel, payload)).Error())
}

// admit reports whether a publication is to be sent now. When it is not,
// it has been queued (a nil error) or refused (the error).
func (b *Broker) admit(channel string, payload []byte) (bool, error) {
	if b.closed.Load() {
		return false, broker.ErrClosed
	}
	if !b.started.Load() {
		return false, unavailable(errors.New("not started"))
	}
	if b.cfg.PublishBuffer == 0 {
		if !b.up.Load() {
			return false, b.downErr()
		}
		return true, nil
	}
	queued, err := b.enqueue(channel, payload, false)
	return !queued && err == nil, err
}

// sent returns the result of a publication sent to Redis that answered
// err.
func (b *Broker) sent(channel string, payload []byte, err error) error {
	if !isConnErr(err) {
		return err
	}
	b.markDown(err)
	if b.cfg.PublishBuffer == 0 {
		return unavailable(err)
	}
	// The command may or may not have reached Redis; sending it again after
	// the outage prefers a rare duplicate to a silent loss.
	_, err = b.enqueue(channel, payload, true)
	return err
}

// enqueue queues the publication if it must wait (always when force). It
// reports whether it queued, or an error if the buffer is full.
func (b *Broker) enqueue(channel string, payload []byte, force bool) (bool, error) {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	if !force && b.up.Load() && len(b.queue) == 0 {
		return false, nil
	}
	if len(b.queue) >= b.cfg.PublishBuffer {
		return false, fmt.Errorf("%w: redis: publish buffer full (%d)", broker.ErrUnavailable, b.cfg.PublishBuffer)
	}
	b.queue = append(b.queue, pending{channel: channel, payload: payload})
	if b.up.Load() {
		wake(b.flushKick)
	}
	return true, nil
}

// Buffered returns the number of publications waiting for Redis.
func (b *Broker) Buffered() int {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	return len(b.queue)
}

// Health implements broker.Broker: a wrapped broker.ErrUnavailable while
// Redis (any master, in cluster mode) does not answer PING.
func (b *Broker) Health(ctx context.Context) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	if !b.started.Load() {
		return unavailable(errors.New("not started"))
	}
	if !b.up.Load() {
		return b.downErr()
	}
	if err := b.ping(ctx); err != nil {
		if isConnErr(err) {
			b.markDown(err)
		}
		return unavailable(err)
	}
	return nil
}

// Close implements broker.Broker. It stops every goroutine and closes the
// connections. Publications still buffered are discarded, and Close says so
// with an error wrapping broker.ErrUnavailable.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.cancel()
	if b.track != nil {
		b.track.Close()
	}
	b.wg.Wait()
	if b.client != nil {
		b.client.Close()
	}
	b.qmu.Lock()
	n := len(b.queue)
	b.queue = nil
	b.qmu.Unlock()
	if n > 0 {
		b.log.Error("redis broker: buffered publications discarded at close", "count", n)
		return fmt.Errorf("%w: redis: %d buffered publications discarded at close", broker.ErrUnavailable, n)
	}
	return nil
}
