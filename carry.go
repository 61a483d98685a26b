package herald

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/session"
	"github.com/heraldrt/herald/transport"
)

// Acknowledged messages across a reconnect: a connection that ends with
// messages its client did not acknowledge hands them to its session in
// the session store (carryPending); the connection that resumes the
// session, on whichever node, takes them (storeOpened, in the round trip
// that saves the session) and delivers them again (redeliver). The two
// may happen in either order:
//
//   - the old connection ends first: the resume finds them in the store;
//   - the client resumed first (its old connection's end was noticed
//     late): the old node, seeing that the session moved, tells the node
//     holding it (broker.ControlSessionPending).
//
// The old node stores before it looks where the session is, and the new
// node records the session as its own before it takes: whichever order
// the store sees, one of the two finds the messages.
//
// The built-in stores (session/redis, session/memory) are bounded in
// bytes and may drop some to stay within their bounds: they are counted
// and logged here, and the store keeps a record of the loss per room that
// the resuming connection takes with the messages and turns into gap
// frames (redeliver): the client is told, as when history cannot fill a
// gap.

// carryPending stores msgs with c's session and reports whether it could.
func (s *Server) carryPending(ctx context.Context, c *conn, msgs []session.Pending) bool {
	ps, ok := s.sessions.(session.PendingStore)
	if !ok {
		return false
	}
	for i := range msgs {
		msgs[i].Room = eventRoom(msgs[i].Frame)
	}
	sid := c.info.SessionID
	var dropped *session.PendingDropped
	if err := ps.AddPending(ctx, sid, msgs, s.cfg.MaxPendingAcks, s.cfg.SessionTTL); errors.As(err, &dropped) {
		// The newest are stored; older ones (of this connection or a
		// previous one of the session) are not.
		s.metrics.AcksDropped.Add(float64(dropped.Messages))
		s.log.WarnContext(ctx, "unacknowledged messages of the session dropped: over the session store's bounds; the resuming client is told (gap)",
			"messages", dropped.Messages)
	} else if err != nil {
		s.log.WarnContext(ctx, "unacknowledged messages not stored with the session", "err", err)
		return false
	}
	cur, err := s.sessions.Get(ctx, sid)
	if err == nil && cur.Conn != c.info.ID {
		err = s.broker.PublishControl(ctx, &broker.Control{Kind: broker.ControlSessionPending, Session: sid, User: c.info.UserID})
		if err != nil {
			s.log.WarnContext(ctx, "session moved; its node not told of the unacknowledged messages", "err", err)
		}
	}
	return true
}

// redeliverCarried takes what c's session carried and delivers it again
// (see redeliver).
func (c *conn) redeliverCarried(ctx context.Context) {
	if msgs := c.takeCarried(ctx); len(msgs) > 0 {
		c.gapLost(ctx, c.redeliver(ctx, msgs))
	}
}

// takeCarried takes what c's session carried from the store.
func (c *conn) takeCarried(ctx context.Context) []session.Pending {
	s := c.s
	ps, ok := s.sessions.(session.PendingStore)
	if !ok {
		return nil
	}
	msgs, err := ps.TakePending(ctx, c.info.SessionID)
	if err != nil {
		s.log.WarnContext(ctx, "unacknowledged messages of the session not read", "err", err)
		return nil
	}
	return msgs
}

// redeliver delivers msgs, which c's session carried, again, tracked for
// their ack like any acked message. Messages past the connection's bounds
// are dropped and counted. The client is told of those, and of those the
// store recorded as lost (session.Pending.Lost): redeliver returns their
// rooms, for the caller to tell the client (gapLost).
func (c *conn) redeliver(ctx context.Context, msgs []session.Pending) (lost []string) {
	s := c.s
	sent := 0
	for i, m := range msgs {
		if m.Lost > 0 {
			lost = append(lost, m.Room)
			continue
		}
		f := transport.NewPrepared(transport.Text, m.Frame, s.cfg.CompressionThreshold, s.cfg.CompressionLevel)
		if limit := c.track(m.MsgID, f); limit != "" {
			rest := 0
			for _, m := range msgs[i:] {
				if m.Lost == 0 {
					rest++
					lost = append(lost, eventRoom(m.Frame))
				}
			}
			s.metrics.AcksDropped.Add(float64(rest))
			s.log.WarnContext(ctx, "unacknowledged messages of the session dropped: over the connection's bounds",
				"limit", string(limit), "messages", rest)
			break
		}
		if c.link.Send(f) != nil {
			break
		}
		sent++
	}
	if sent > 0 {
		s.metrics.Redeliveries.Add(float64(sent))
		s.log.InfoContext(ctx, "unacknowledged messages of the session delivered again", "messages", sent)
	}
	return lost
}

// gapLost tells c's client that it missed messages of rooms that cannot
// be redelivered: a gap frame for each room once ("" stands for all of
// the connection's rooms, its user room among them).
func (c *conn) gapLost(ctx context.Context, rooms []string) {
	if len(rooms) == 0 {
		return
	}
	if slices.Contains(rooms, "") {
		c.identMu.Lock() // the read side may be joining (takeCarriedFor's goroutine)
		rooms = append(append(rooms, c.userRoom()), c.rooms...)
		c.identMu.Unlock()
	}
	slices.Sort(rooms)
	rooms = slices.Compact(rooms)
	if rooms[0] == "" {
		rooms = rooms[1:]
	}
	for _, room := range rooms {
		c.link.gap(c, room)
	}
	c.s.metrics.Gaps.Add(float64(len(rooms)))
	c.s.log.WarnContext(ctx, "unacknowledged messages of the session were lost; the client is told to resync their rooms (gap)",
		"rooms", rooms[:min(len(rooms), maxLoggedIDs)])
}

// eventRoom returns the room of an event frame, "" if it has none.
func eventRoom(frame []byte) string {
	var ev struct {
		Room string `json:"room"`
	}
	_ = json.Unmarshal(frame, &ev) // a frame the server encoded
	return ev.Room
}

// takeCarriedFor handles broker.ControlSessionPending: the connection of
// session sid, which belongs to user, on this node, if any, takes what its
// session carries. It looks among the user's connections (connindex.go),
// not every connection of the node: a node of 100,000 connections is told
// of each session that moved, and held connsMu for a whole scan each time.
func (s *Server) takeCarriedFor(sid, user string) {
	// The goroutine is background work (bgWG), added under connsMu while
	// the server is not closed: Shutdown sets closed under connsMu before
	// it waits for bgWG.
	s.connsMu.Lock()
	var target *conn
	if !s.closed.Load() {
		target = s.sessionConn(sid, user)
		if target != nil {
			s.bgWG.Add(1)
		}
	}
	s.connsMu.Unlock()
	if target == nil {
		return
	}
	go func() {
		defer s.bgWG.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(target.ctx()), s.cfg.BackendTimeout+time.Second)
		defer cancel()
		target.redeliverCarried(ctx)
	}()
}

// sessionConn returns the live connection of session sid among user's
// connections on this node, or nil. connsMu must be held.
func (s *Server) sessionConn(sid, user string) *conn {
	return s.index.users.find(user, func(c *conn) bool {
		// The ended connection of the session may still be here, cleaning up.
		id, ok := c.sessionID()
		return ok && id == sid && c.link.Err() == nil
	})
}
