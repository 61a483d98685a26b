package herald

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/protocol"
)

// Recovery: a connection joins a room that keeps history through a
// roomFeed. The feed holds the room's live messages back while the
// connection is sent what it missed (the history after the position the
// client gave, or after the room's position at the join), then lets the
// held ones through, dropping those the replay already sent, and from
// then on drops any live message at or below the last offset sent. So a
// message published while the replay runs reaches the client exactly
// once, and in offset order.
//
// Lock order: the hub's shard lock (held around Deliver), then
// feedSet.mu, then roomFeed.mu, then the connection's acks.mu and its
// transport's lock.

// maxHeld bounds the live messages a feed holds during a replay, and
// Config.MaxReplayBytes their bytes. Past either the feed drops what it
// holds and the replay reads history once more: everything held was
// stored before it was delivered, so history has it.
const maxHeld = 1024

// replayPage is how many messages one Since call reads at most; fewer
// when they are large (Config.MaxReplayBytes, see pageCount).
const replayPage = 128

// Bytes: a replay holds its page of history (pageBytes of the messages
// read) until the page is queued to the connection, and its feed holds
// the live messages that come meanwhile; both count in
// Server.replayBytes, which Config.MaxNodeReplayBytes bounds. A page that
// would take the node over the bound is let go and read again once
// there is room (takeReplay); a held message that would is let go, and
// read from history later, like any overflow.

// errReplayBusy ends a recovery that found no room under
// Config.MaxNodeReplayBytes within replayQueueWait.
var errReplayBusy = errors.New("herald: the node's history replays hold too much")

// replaySize is what a history message costs while a replay holds it:
// its variable-length fields and the struct.
func replaySize(m *broker.Message) int64 {
	return int64(len(m.Data)+len(m.Room)+len(m.Event)+len(m.MsgID)+len(m.Epoch)+
		len(m.CorrelationID)+len(m.From)+len(m.IdempotencyKey)) + int64(unsafe.Sizeof(*m))
}

// takeReplay counts n more bytes held by replays and reports true, or
// reports false (counting nothing) when they would take the node over
// Config.MaxNodeReplayBytes while other replays hold some: one replay
// alone may always hold its page.
func (s *Server) takeReplay(n int64) bool {
	for {
		cur := s.replayBytes.Load()
		if cur > 0 && cur+n > s.cfg.MaxNodeReplayBytes {
			return false
		}
		if s.replayBytes.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// pageCount is how many messages the next page of a replay reads: as
// many of the largest message seen so far (before any: of the largest a
// client may send) as fit in Config.MaxReplayBytes, from 1 to replayPage.
func (s *Server) pageCount(largest int64) int {
	if largest <= 0 {
		largest = int64(s.cfg.ReadLimit) + replaySize(&broker.Message{})
	}
	return int(max(1, min(int64(replayPage), s.cfg.MaxReplayBytes/largest)))
}

// maxReplayRounds bounds the Since calls of one recovery: a room
// published to faster than the connection can be replayed to gives up
// rather than loop for ever.
const maxReplayRounds = 1000

// replayQueueWait bounds how long a replay waits for the connection's
// send queue to drain before it gives the client up as a slow consumer.
const replayQueueWait = 10 * time.Second

// feedSet is a connection's feeds by room, kept in Server.feeds (not in
// conn, which must stay small) once the connection joined a room that
// keeps history; feeds are added by the read side and removed when it
// leaves the room, the set when the connection ends.
type feedSet struct {
	mu sync.Mutex
	m  map[string]*roomFeed
}

// roomFeed is one room's feed (see the top of this file). It is the
// connection's member of the room in the hub, so a delivery reaches the
// feed without looking it up.
type roomFeed struct {
	c    *conn
	mu   sync.Mutex
	live bool            // the replay is done
	held []*hub.Delivery // live messages that came during the replay
	// heldBytes is the replaySize of held, counted in
	// Server.replayBytes.
	heldBytes int64
	overflow  bool // held was dropped since the last Since call
	// pos is the position of the last message sent (or where the feed
	// started): a message at or below it in the same epoch is a duplicate.
	// Its MsgID (the message's, or the client's or the engine's word for
	// it) goes to the client in the join's reply, for it to give back
	// when it recovers: the history checks it.
	pos broker.Position
}

// dup reports whether m was already sent. The caller holds f.mu.
func (f *roomFeed) dup(m *broker.Message) bool {
	return m.Offset != 0 && m.Epoch == f.pos.Epoch && m.Offset <= f.pos.Offset
}

// advance records m as sent. The caller holds f.mu.
func (f *roomFeed) advance(m *broker.Message) {
	if m.Offset != 0 {
		f.pos = broker.Position{Offset: m.Offset, Epoch: m.Epoch, MsgID: m.MsgID}
	}
}

// Deliver implements hub.Member for the connection's membership of the
// feed's room.
func (f *roomFeed) Deliver(d *hub.Delivery) { f.c.deliverFeed(f, d) }

// memberConn returns the connection behind a room member: the connection
// itself, or the connection of a room feed. Other members (the admin
// console's tails) have none.
func memberConn(m hub.Member) (*conn, bool) {
	switch m := m.(type) {
	case *conn:
		return m, true
	case *roomFeed:
		return m.c, true
	}
	return nil, false
}

// member returns the connection's member of room in the hub: its feed if
// the room keeps history, else the connection.
func (c *conn) member(room string) hub.Member {
	if c.flags.Load()&flagFeeds != 0 {
		if f := c.feed(room); f != nil {
			return f
		}
	}
	return c
}

// feed returns the connection's feed of room, or nil.
func (c *conn) feed(room string) *roomFeed {
	v, ok := c.s.feeds.Load(c)
	if !ok {
		return nil
	}
	fs := v.(*feedSet)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.m[room]
}

// setFeed adds (f != nil) or removes the feed of room.
func (c *conn) setFeed(room string, f *roomFeed) {
	var fs *feedSet
	if v, ok := c.s.feeds.Load(c); ok {
		fs = v.(*feedSet)
	} else {
		if f == nil {
			return
		}
		fs = &feedSet{m: make(map[string]*roomFeed)}
		c.s.feeds.Store(c, fs) // only the read side adds
		c.flags.Or(flagFeeds)
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f == nil {
		delete(fs.m, room)
	} else {
		fs.m[room] = f
	}
}

// dropFeeds forgets the connection's feeds; cleanup calls it once the
// connection left its rooms.
func (c *conn) dropFeeds() {
	if c.flags.Load()&flagFeeds != 0 {
		c.s.feeds.Delete(c)
	}
}

// deliverFeed is Deliver for a room with a feed.
func (c *conn) deliverFeed(f *roomFeed, d *hub.Delivery) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.live {
		if f.overflow {
			return
		}
		size := replaySize(d.Msg)
		if len(f.held) >= maxHeld || f.heldBytes+size > c.s.cfg.MaxReplayBytes || !c.s.takeReplay(size) {
			f.dropHeldLocked()
			f.overflow = true
			return
		}
		f.held = append(f.held, d)
		f.heldBytes += size
		return
	}
	if f.dup(d.Msg) {
		return
	}
	f.advance(d.Msg)
	c.deliverNow(d)
}

// dropHeldLocked lets the held messages go. f.mu must be held.
func (f *roomFeed) dropHeldLocked() {
	clear(f.held)
	f.held = f.held[:0]
	f.c.s.replayBytes.Add(-f.heldBytes)
	f.heldBytes = 0
}

// keepsHistory reports whether room keeps history on this server's
// broker. User rooms are never recovered.
func (s *Server) keepsHistory(room string) bool {
	return s.historian != nil && s.historyOf != nil && !protocol.IsUserRoom(room) && s.historyOf(room).Size > 0
}

// errSlowReplay ends a recovery whose client does not read its replay.
var errSlowReplay = errors.New("herald: the client did not read its history replay")

// joinHistory joins room, which keeps history, answering ref:
// it replays what followed the client's position (or, for a plain join,
// what followed the room's position when the connection joined), replies,
// and then lets live messages through. On failure the connection is not
// in the room and the client got an error.
func (c *conn) joinHistory(ref json.RawMessage, room string, from *broker.Position) {
	f := &roomFeed{c: c}
	c.setFeed(room, f)
	ctx := c.backendCtx()
	_, err := c.s.hub.JoinIndirect(ctx, room, f)
	ctx.cancel()
	if err != nil {
		c.setFeed(room, nil)
		c.s.log.WarnContext(c.ctx(), "join failed", "room", room, "err", err)
		c.sendError(ref, protocol.CodeBrokerUnavailable, "could not subscribe to the room; retry later")
		return
	}
	c.addRoom(room)
	err = c.replay(f, ref, room, from)
	if err != nil {
		ctx := c.backendCtx()
		c.leaveRoom(ctx, room)
		ctx.cancel()
		if errors.Is(err, errSlowReplay) {
			if c.link.Abort(protocol.CloseSlowConsumer, "slow consumer", err) {
				c.s.log.WarnContext(c.ctx(), "closing: history replay not read", "room", room)
			}
			return
		}
		if errors.Is(err, errReplayBusy) {
			c.s.countLimit(limitNodeReplayBytes)
			c.s.log.WarnContext(c.ctx(), "join refused: the node's history replays hold too much", "room", room,
				"replay_bytes", c.s.replayBytes.Load(), "max_node_replay_bytes", c.s.cfg.MaxNodeReplayBytes)
			c.sendError(ref, protocol.CodeOverloaded, "the node is replaying too much history; retry the join shortly")
			return
		}
		c.s.log.WarnContext(c.ctx(), "recovery failed", "room", room, "err", err)
		c.sendError(ref, protocol.CodeBrokerUnavailable, "could not read the room's history; retry the join later")
		return
	}
	ctx = c.backendCtx()
	c.storeJoined(ctx, room)
	ctx.cancel()
}

// replay sends the connection what it missed of room and makes f live,
// sending the join's reply between the replay and the held messages.
func (c *conn) replay(f *roomFeed, ref json.RawMessage, room string, from *broker.Position) error {
	s := c.s
	reply := protocol.JoinReply{Room: room}
	recovering := from != nil
	recovered := true
	var pos broker.Position
	if recovering {
		pos = *from
	} else {
		// A plain join starts at the room's position now: what follows it
		// reaches the client, by replay or live.
		ctx := c.backendCtx()
		_, cur, err := s.historian.Since(ctx, room, broker.Position{}, 0)
		ctx.cancel()
		if err != nil {
			return err
		}
		pos = cur
	}
	f.mu.Lock()
	f.pos = pos
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if !f.live {
			f.dropHeldLocked() // the replay failed: nothing will send them
		}
		f.mu.Unlock()
	}()
	var largest int64  // replaySize of the largest message read
	var busy time.Time // when the node's bound first kept this replay waiting
	for round := 0; ; round++ {
		if round == maxReplayRounds {
			return errSlowReplay
		}
		// Whatever is held now was stored before this Since call reads
		// history, so Since returns it too.
		f.mu.Lock()
		f.dropHeldLocked()
		f.overflow = false
		pos := f.pos
		f.mu.Unlock()
		n := s.pageCount(largest)
		ctx := c.backendCtx()
		msgs, cur, err := s.historian.Since(ctx, room, pos, n)
		ctx.cancel()
		var page int64
		for _, m := range msgs {
			size := replaySize(m)
			page += size
			largest = max(largest, size)
		}
		if page > 0 && !s.takeReplay(page) {
			// Let the page go and read it again once there is room.
			msgs = nil
			if busy.IsZero() {
				busy = time.Now()
				s.log.InfoContext(c.ctx(), "recovery waits: the node's history replays hold too much", "room", room,
					"page_bytes", page, "replay_bytes", s.replayBytes.Load(), "max_node_replay_bytes", s.cfg.MaxNodeReplayBytes)
			}
			wait := replayQueueWait
			if w := time.Duration(s.replayWait.Load()); w > 0 {
				wait = w
			}
			if err := c.awaitReplayRoom(page, busy.Add(wait)); err != nil {
				return err
			}
			round-- // waiting is bounded by its deadline, not by maxReplayRounds
			continue
		}
		busy = time.Time{}
		release := func() { s.replayBytes.Add(-page); page = 0 } // once the page is done with
		if errors.Is(err, broker.ErrUnrecoverable) {
			release()
			// The gap cannot be filled: the client is told so, and gets
			// everything after the room's current position.
			s.log.InfoContext(c.ctx(), "recovery: history cannot fill the gap", "room", room,
				"from_offset", pos.Offset, "from_epoch", pos.Epoch, "offset", cur.Offset, "epoch", cur.Epoch, "err", err)
			recovered = false
			f.mu.Lock()
			f.pos = cur
			f.mu.Unlock()
			continue
		}
		if err != nil {
			release()
			return err
		}
		for _, m := range msgs {
			d := hub.NewDelivery(m, s.cfg.CompressionThreshold, s.cfg.CompressionLevel)
			_, codec := c.link.direct()
			if err := c.awaitQueue(d.Frame(codec).Size()); err != nil {
				release()
				return err
			}
			f.mu.Lock()
			if !f.dup(m) {
				f.advance(m)
				c.deliverNow(d)
				reply.Replayed++
			}
			f.mu.Unlock()
		}
		release() // queued to the connection, whose send queue counts them now
		if len(msgs) >= n {
			continue // more to read
		}
		f.mu.Lock()
		if f.overflow {
			f.mu.Unlock()
			continue
		}
		reply.Offset, reply.Epoch, reply.MsgID = f.pos.Offset, f.pos.Epoch, f.pos.MsgID
		if recovering {
			reply.Recovered = &recovered
		}
		if !recovering {
			reply.Replayed = 0 // a plain join replays what raced with it, not history
		}
		c.reply(ref, mustJSON(reply))
		for _, d := range f.held {
			if !f.dup(d.Msg) {
				f.advance(d.Msg)
				c.deliverNow(d)
			}
		}
		f.dropHeldLocked()
		f.held, f.live = nil, true
		f.mu.Unlock()
		if recovering {
			s.metrics.Recoveries.WithLabelValues(recoveryLabel(recovered)).Inc()
		}
		return nil
	}
}

func recoveryLabel(recovered bool) string {
	if recovered {
		return "recovered"
	}
	return "unrecoverable"
}

// awaitQueue waits until the connection's send queue is at most half
// full and has room for size more bytes, so that a replay never fills it.
func (c *conn) awaitQueue(size int) error {
	limit := c.link.QueueLimit() / 2
	ready := func() bool {
		n := c.link.Queued()
		return n == 0 || n <= limit && c.link.QueueRoom() >= size
	}
	if ready() {
		return nil
	}
	deadline := time.Now().Add(replayQueueWait)
	for !ready() {
		if c.link.Err() != nil {
			return fmt.Errorf("herald: connection closed during replay: %w", c.link.Err())
		}
		if time.Now().After(deadline) {
			return errSlowReplay
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// awaitReplayRoom waits until the node's replays leave room for size
// more bytes (Config.MaxNodeReplayBytes), or fails with errReplayBusy at
// deadline.
func (c *conn) awaitReplayRoom(size int64, deadline time.Time) error {
	s := c.s
	for {
		cur := s.replayBytes.Load()
		if cur == 0 || cur+size <= s.cfg.MaxNodeReplayBytes {
			return nil
		}
		if c.link.Err() != nil {
			return fmt.Errorf("herald: connection closed during replay: %w", c.link.Err())
		}
		if !time.Now().Before(deadline) {
			return errReplayBusy
		}
		time.Sleep(time.Millisecond)
	}
}

// joinReply is the reply to a join of a room the connection is already
// in: the room and, with history, the position of the last message sent.
func (c *conn) joinReply(room string) json.RawMessage {
	r := protocol.JoinReply{Room: room}
	if f := c.feed(room); f != nil {
		f.mu.Lock()
		r.Offset, r.Epoch, r.MsgID = f.pos.Offset, f.pos.Epoch, f.pos.MsgID
		f.mu.Unlock()
	}
	return mustJSON(r)
}

// handleGap tells the local members of rooms that they may have missed
// messages that history cannot give back.
func (s *Server) handleGap(rooms []string) {
	for _, room := range rooms {
		n := 0
		s.hub.EachMember(room, func(m hub.Member) {
			if c, ok := memberConn(m); ok {
				c.link.gap(c, room)
				n++
			}
		})
		s.metrics.Gaps.Add(float64(n))
		s.log.Warn("messages of a room may have been missed; members told to resync", "room", room, "connections", n)
	}
}
