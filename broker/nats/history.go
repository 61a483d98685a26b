package nats

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// History on NATS is JetStream: each room with history has a stream of
// its own, <PREFIX>_H_<hash of the room> (file storage), on the subject
// <prefix>.hist.<escaped room>, limited to the room's Size (MaxMsgs,
// discarding the oldest) and TTL (MaxAge). The stream sequence is the
// room's offset; the epoch is a random value kept in the stream's
// metadata when it is created, so a stream deleted and created again
// (or lost with a server's storage) starts a new epoch. Idempotency keys
// are JetStream's message ids (Nats-Msg-Id), within the stream's
// duplicate window (the TTL, or 2 minutes without one).
//
// A publish is stored first (one JetStream publish, acknowledged by the
// server), then sent with its offset and epoch on the room's core
// subject, as any message is. Two publishers may so reach a node out of
// offset order; the node then puts them back in order from the stream.

const epochKey = "herald_epoch"

// dupWindow is the idempotency window of a room without TTL.
const dupWindow = 2 * time.Minute

// roomStream is what a node knows of a room's stream.
type roomStream struct {
	name  string
	epoch string
}

// historyState is the broker's JetStream side.
type historyState struct {
	policy broker.HistoryFunc
	js     jetstream.JetStream

	mu      sync.Mutex
	streams map[string]roomStream // by room; forgotten after a reconnect

	// chains keeps this node's live sends of a room in offset order: a
	// room's publishes go to JetStream in order (asynchronously, so they
	// pipeline), and each waits for the one before it to have been sent
	// live before it is sent itself.
	chainMu sync.Mutex
	chains  map[string]*chain
}

// chain is one room's publishes in flight on this node.
type chain struct {
	mu   sync.Mutex
	last chan struct{} // closed once the newest publish was sent live (or failed)
	refs int           // publishes holding the chain; guarded by chainMu
}

// closedChan is the chain's start: nothing to wait for.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (h *historyState) acquire(room string) *chain {
	h.chainMu.Lock()
	defer h.chainMu.Unlock()
	c := h.chains[room]
	if c == nil {
		if h.chains == nil {
			h.chains = make(map[string]*chain)
		}
		c = &chain{last: closedChan}
		h.chains[room] = c
	}
	c.refs++
	return c
}

func (h *historyState) release(room string, c *chain) {
	h.chainMu.Lock()
	defer h.chainMu.Unlock()
	if c.refs--; c.refs == 0 && h.chains[room] == c {
		delete(h.chains, room)
	}
}

var _ broker.Historian = (*Broker)(nil)

// SetHistory implements broker.Historian.
func (b *Broker) SetHistory(f broker.HistoryFunc) { b.hist.policy = f }

func (b *Broker) policy(room string) broker.HistoryPolicy {
	if b.hist.policy == nil || protocol.IsUserRoom(room) {
		return broker.HistoryPolicy{}
	}
	return b.hist.policy(room)
}

// startJetStream checks that the server has JetStream, which rooms with
// history need.
func (b *Broker) startJetStream(ctx context.Context) error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return unavailable(err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return fmt.Errorf("nats broker: rooms with history need JetStream, which the server does not enable: %w", err)
		}
		return unavailable(fmt.Errorf("jetstream: %w", err))
	}
	b.hist.js = js
	return nil
}

func (b *Broker) histSubject(room string) string {
	return b.cfg.Prefix + ".hist." + escapeToken(room)
}

func (b *Broker) streamName(room string) string {
	sum := sha256.Sum256([]byte(room))
	prefix := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, b.cfg.Prefix)
	return strings.ToUpper(prefix) + "_H_" + hex.EncodeToString(sum[:16])
}

// forgetStreams drops what this node knows of streams (after a
// reconnect: a server may have come back without them).
func (b *Broker) forgetStreams() {
	b.hist.mu.Lock()
	b.hist.streams = nil
	b.hist.mu.Unlock()
}

// stream returns room's stream, creating it if it does not exist.
func (b *Broker) stream(ctx context.Context, room string, p broker.HistoryPolicy) (roomStream, error) {
	b.hist.mu.Lock()
	rs, ok := b.hist.streams[room]
	b.hist.mu.Unlock()
	if ok {
		return rs, nil
	}
	_, info, err := b.streamInfo(ctx, room, p)
	if err != nil {
		return roomStream{}, err
	}
	rs = roomStream{name: info.Config.Name, epoch: info.Config.Metadata[epochKey]}
	b.hist.mu.Lock()
	if b.hist.streams == nil {
		b.hist.streams = make(map[string]roomStream)
	}
	b.hist.streams[room] = rs
	b.hist.mu.Unlock()
	return rs, nil
}

// streamInfo reads room's stream, creating it if it does not exist: one
// request (the info comes with the stream).
func (b *Broker) streamInfo(ctx context.Context, room string, p broker.HistoryPolicy) (jetstream.Stream, *jetstream.StreamInfo, error) {
	name := b.streamName(room)
	for range 3 {
		s, err := b.hist.js.Stream(ctx, name)
		if err == nil {
			return s, s.CachedInfo(), nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, nil, b.jsErr(err)
		}
		dup := dupWindow
		if p.TTL > 0 {
			dup = min(dup, p.TTL)
		}
		cfg := jetstream.StreamConfig{
			Name:       name,
			Subjects:   []string{b.histSubject(room)},
			Storage:    jetstream.FileStorage,
			Retention:  jetstream.LimitsPolicy,
			Discard:    jetstream.DiscardOld,
			MaxMsgs:    int64(p.Size),
			MaxAge:     p.TTL,
			Duplicates: dup,
			Metadata:   map[string]string{epochKey: rand.Text()[:12]},
		}
		s, err = b.hist.js.CreateStream(ctx, cfg)
		if err == nil {
			return s, s.CachedInfo(), nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, nil, b.jsErr(err)
		}
		// Another node created it meanwhile: read that one.
	}
	return nil, nil, unavailable(fmt.Errorf("stream %s: created and deleted concurrently", name))
}

func (b *Broker) jsErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return fmt.Errorf("nats broker: jetstream: %w", err)
	}
	return unavailable(err)
}

// publishStored stores m in its room's stream, then publishes it (with
// its offset and epoch) on the room's subject.
func (b *Broker) publishStored(ctx context.Context, m *broker.Message, p broker.HistoryPolicy) error {
	if !b.nc.IsConnected() {
		return unavailable(fmt.Errorf("connection %s", b.nc.Status()))
	}
	rs, err := b.stream(ctx, m.Room, p)
	if err != nil {
		return err
	}
	m.Offset, m.Epoch = 0, ""
	payload, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("nats broker: encode: %w", err)
	}
	opts := []jetstream.PublishOpt{jetstream.WithExpectStream(rs.name), jetstream.WithRetryAttempts(0)}
	if m.IdempotencyKey != "" {
		opts = append(opts, jetstream.WithMsgID(m.IdempotencyKey))
	}
	c := b.hist.acquire(m.Room)
	defer b.hist.release(m.Room, c)
	c.mu.Lock()
	future, err := b.hist.js.PublishMsgAsync(&nats.Msg{Subject: b.histSubject(m.Room), Data: payload}, opts...)
	prev, done := c.last, make(chan struct{})
	c.last = done
	c.mu.Unlock()
	// Whatever happens, the next publish of the room waits for this
	// one's turn to pass.
	sent := false
	defer func() {
		if !sent {
			<-prev
			close(done)
		}
	}()
	if err != nil {
		b.forgetStreams()
		return b.jsErr(err)
	}
	wait, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		wait, cancel = context.WithTimeout(ctx, flushTimeout)
	}
	defer cancel()
	var ack *jetstream.PubAck
	select {
	case ack = <-future.Ok():
	case err := <-future.Err():
		b.forgetStreams() // it may be gone; read it again next time
		return b.jsErr(err)
	case <-wait.Done():
		return wait.Err()
	}
	if ack.Duplicate {
		s, err := b.hist.js.Stream(ctx, rs.name)
		if err != nil {
			return b.jsErr(err)
		}
		m.Offset, m.Epoch = ack.Sequence, rs.epoch
		raw, err := s.GetMsg(ctx, ack.Sequence)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// Trimmed since, though still within the duplicate window:
			// stored once all the same; its msgId is gone with it.
			return nil
		}
		if err != nil {
			return b.jsErr(err)
		}
		var stored broker.Message
		if err := json.Unmarshal(raw.Data, &stored); err != nil {
			return fmt.Errorf("nats broker: stored message %d: %w", ack.Sequence, err)
		}
		m.MsgID = stored.MsgID
		return nil
	}
	m.Offset, m.Epoch = ack.Sequence, rs.epoch
	live, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("nats broker: encode: %w", err)
	}
	// Stored: a failure to send it live now is repaired by the nodes from
	// the stream when the room's next message (or their reconnect) shows
	// the gap.
	<-prev
	err = b.publish(b.roomSubject(m.Room), live)
	close(done)
	sent = true
	if err != nil {
		b.log.Warn("nats broker: stored message not sent live", "room", m.Room, "offset", m.Offset, "err", err)
	}
	return nil
}

// trackedSince is Since for the node's own gap repair, from the message
// posID ("" if unknown) at pos: after a stream was restored from an older
// copy and new messages took it past pos before the repair, the message
// there is another one and the repair reports a gap (the members may
// have missed the new ones at or below pos, which a bare position would
// skip). The stream keeps its epoch: a new one would need offsets to
// start again at 1.
func (b *Broker) trackedSince(ctx context.Context, room string, pos broker.Position, posID string, limit int) ([]*broker.Message, broker.Position, error) {
	pos.MsgID = posID
	return b.Since(ctx, room, pos, limit)
}

// msgIDAt reads the msgId of the message at seq of s.
func msgIDAt(ctx context.Context, s jetstream.Stream, seq uint64) (string, error) {
	raw, err := s.GetMsg(ctx, seq)
	if err != nil {
		return "", err
	}
	var at struct {
		MsgID string `json:"msgId"`
	}
	if err := json.Unmarshal(raw.Data, &at); err != nil {
		return "", fmt.Errorf("nats broker: stored message %d: %w", seq, err)
	}
	return at.MsgID, nil
}

// Since implements broker.Historian: the stream and its info (one
// request), then one direct read per message. A position with a MsgID
// costs one read more, of its own message, which must be that one: a
// stream restored from an older backup (or a server's disk from an
// older copy) keeps its epoch and gives the sequences after the copy
// again, so a client's position there names another message, or one not
// stored yet. Such a position is unrecoverable. A position alone reads
// the newest message's msgId (the current position's MsgID), as do the
// answers that give the client the room's position instead of its own.
func (b *Broker) Since(ctx context.Context, room string, pos broker.Position, limit int) ([]*broker.Message, broker.Position, error) {
	if err := b.ready(); err != nil {
		return nil, broker.Position{}, err
	}
	p := b.policy(room)
	if p.Size <= 0 {
		if pos == (broker.Position{}) {
			return nil, broker.Position{}, nil
		}
		return nil, broker.Position{}, fmt.Errorf("%w: room %q keeps no history", broker.ErrUnrecoverable, room)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, flushTimeout)
		defer cancel()
	}
	s, info, err := b.streamInfo(ctx, room, p)
	if err != nil {
		return nil, broker.Position{}, err
	}
	cur := broker.Position{Offset: info.State.LastSeq, Epoch: info.Config.Metadata[epochKey]}
	// newest is cur with the newest message's msgId, for a position the
	// client takes as its own (a join's, or the room's after a gap); ""
	// when it cannot be read.
	newest := func() broker.Position {
		if cur.Offset > 0 {
			cur.MsgID, _ = msgIDAt(ctx, s, cur.Offset)
		}
		return cur
	}
	checked := pos.MsgID != "" && pos.Offset > 0
	switch {
	case pos == (broker.Position{}):
		return nil, newest(), nil
	case pos.Epoch != cur.Epoch:
		return nil, newest(), fmt.Errorf("%w: epoch %q is not the current %q", broker.ErrUnrecoverable, pos.Epoch, cur.Epoch)
	case pos.Offset > cur.Offset:
		return nil, newest(), fmt.Errorf("%w: offset %d is past the newest, %d", broker.ErrUnrecoverable, pos.Offset, cur.Offset)
	case pos.Offset == cur.Offset && !checked:
		return nil, cur, nil
	case pos.Offset+1 < info.State.FirstSeq:
		return nil, newest(), fmt.Errorf("%w: messages after %d are no longer kept", broker.ErrUnrecoverable, pos.Offset)
	}
	n := cur.Offset - pos.Offset
	if limit > 0 && n > uint64(limit) {
		n = uint64(limit)
	}
	if checked {
		id, err := msgIDAt(ctx, s, pos.Offset)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, newest(), fmt.Errorf("%w: the message at %d is no longer kept, so the position cannot be checked", broker.ErrUnrecoverable, pos.Offset)
		}
		if err != nil {
			return nil, cur, b.jsErr(err)
		}
		if id != pos.MsgID {
			return nil, newest(), fmt.Errorf("%w: the message at %d is %q, not %q: the stream was rolled back", broker.ErrUnrecoverable, pos.Offset, id, pos.MsgID)
		}
	}
	out := make([]*broker.Message, 0, n)
	for seq := pos.Offset + 1; seq <= pos.Offset+n; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, cur, fmt.Errorf("%w: message %d is no longer kept (%v, first %d)", broker.ErrUnrecoverable, seq, err, info.State.FirstSeq)
		}
		if err != nil {
			return nil, cur, b.jsErr(err)
		}
		m := new(broker.Message)
		if err := json.Unmarshal(raw.Data, m); err != nil {
			return nil, cur, fmt.Errorf("nats broker: stored message %d: %w", seq, err)
		}
		m.Offset, m.Epoch = seq, cur.Epoch
		out = append(out, m)
	}
	return out, cur, nil
}
