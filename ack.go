package herald

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/session"
	"github.com/heraldrt/herald/transport"
)

// acks tracks a connection's messages that were published with ack and not
// yet acknowledged. Deliver adds (fan-out goroutines), the read loop removes
// (ack frames), the server's redelivery goroutine resends.
//
// A pending message is its prepared frame, the one the send queue held and
// other members of its room share: it is held once, and counted once per
// node however many connections wait for its ack (see ackBudget).
type acks struct {
	mu sync.Mutex
	p  *pendingAcks // nil while nothing is pending (an idle connection holds no map)
}

// pendingAcks is a connection's unacknowledged messages by msgId.
type pendingAcks struct {
	byID  map[string]*pendingAck
	bytes int64 // sum of the frames' sizes
}

// get returns the pending message id, or nil; p may be nil.
func (p *pendingAcks) get(id string) *pendingAck {
	if p == nil {
		return nil
	}
	return p.byID[id]
}

// byIDOrNil returns the map of pending messages; nil when p is.
func (p *pendingAcks) byIDOrNil() map[string]*pendingAck {
	if p == nil {
		return nil
	}
	return p.byID
}

// len returns how many messages are pending; p may be nil.
func (p *pendingAcks) len() int {
	if p == nil {
		return 0
	}
	return len(p.byID)
}

type pendingAck struct {
	frame     *transport.Prepared
	size      int64 // frame.Size() when it was tracked
	sentAt    time.Time
	firstSent time.Time // orders what a connection hands on (dropPending)
	attempts  int
}

// track records an acked message. It refuses, naming the bound, a message
// that would take the connection over MaxPendingAcks or
// MaxPendingAckBytes (a message larger than the latter is still taken
// when nothing else is pending), or a message the node does not hold yet
// that arrives while the node's pending messages already take
// MaxNodePendingAckBytes. The node's count may pass its bound by the
// messages being tracked at that moment, never more. It returns "" when
// the message was tracked.
func (c *conn) track(msgID string, f *transport.Prepared) limitName {
	size := int64(f.Size())
	cfg := &c.s.cfg
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	n := c.acks.p.len()
	switch {
	case n >= cfg.MaxPendingAcks:
		return limitPendingAcks
	case n > 0 && c.acks.p.bytes+size > cfg.MaxPendingAckBytes:
		return limitPendingAckBytes
	case !f.Retained() && c.s.pendingAckBytes.Load() >= cfg.MaxNodePendingAckBytes:
		// A message already held costs the node nothing more.
		return limitNodePendingAckBytes
	}
	if c.acks.p == nil {
		c.acks.p = &pendingAcks{byID: make(map[string]*pendingAck)}
	}
	if old := c.acks.p.byID[msgID]; old != nil {
		c.releaseAck(old) // the same message again: keep the newest
	} else if n == 0 {
		c.s.awaitAcks(c, true)
	}
	if f.Retain() {
		c.s.pendingAckBytes.Add(size)
	}
	c.acks.p.bytes += size
	now := time.Now()
	c.acks.p.byID[msgID] = &pendingAck{frame: f, size: size, sentAt: now, firstSent: now, attempts: 1}
	return ""
}

// releaseAck uncounts p, which the caller removes from the pending set.
// c.acks.mu must be held.
func (c *conn) releaseAck(p *pendingAck) {
	c.acks.p.bytes -= p.size
	if p.frame.Unretain() {
		c.s.pendingAckBytes.Add(-p.size)
	}
}

// acked removes ids from the pending set and returns how many were pending.
func (c *conn) acked(ids []string) int {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	n := 0
	for _, id := range ids {
		if p := c.acks.p.get(id); p != nil {
			c.releaseAck(p)
			delete(c.acks.p.byID, id)
			n++
		}
	}
	return n
}

// redeliverDue resends what waited longer than timeout and drops what ran
// out of retries, returning the ids given up.
func (c *conn) redeliverDue(now time.Time, timeout time.Duration, retries int) (resent int, expired []string) {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	if c.acks.p == nil {
		c.s.awaitAcks(c, false)
		return 0, nil
	}
	for id, p := range c.acks.p.byID {
		if now.Sub(p.sentAt) < timeout {
			continue
		}
		if p.attempts > retries {
			c.releaseAck(p)
			delete(c.acks.p.byID, id)
			expired = append(expired, id)
			continue
		}
		p.attempts++
		p.sentAt = now
		if c.link.Send(p.frame) == nil {
			resent++
		}
	}
	if len(c.acks.p.byID) == 0 {
		c.acks.p = nil
		c.s.awaitAcks(c, false)
	}
	return resent, expired
}

// dropPending empties the pending set of a connection that has ended and
// returns the ids it held and their event frames, oldest first: this
// connection cannot redeliver them any more (see carryPending).
func (c *conn) dropPending() ([]string, []session.Pending) {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	ids := make([]string, 0, c.acks.p.len())
	msgs := make([]session.Pending, 0, c.acks.p.len())
	for id, p := range c.acks.p.byIDOrNil() {
		msgs = append(msgs, session.Pending{MsgID: id, Frame: p.frame.Payload()})
	}
	slices.SortFunc(msgs, func(a, b session.Pending) int {
		return c.acks.p.byID[a.MsgID].firstSent.Compare(c.acks.p.byID[b.MsgID].firstSent)
	})
	for _, m := range msgs {
		c.releaseAck(c.acks.p.byID[m.MsgID])
		ids = append(ids, m.MsgID)
	}
	c.acks.p = nil
	c.s.awaitAcks(c, false)
	return ids, msgs
}

// awaitAcks adds c to, or takes it out of, the connections the redelivery
// goroutine visits. The caller holds c.acks.mu.
func (s *Server) awaitAcks(c *conn, waiting bool) {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	if !waiting {
		delete(s.awaiting, c)
		return
	}
	if s.awaiting == nil {
		s.awaiting = make(map[*conn]struct{})
	}
	s.awaiting[c] = struct{}{}
}

// awaitingAcks returns the connections that may hold unacknowledged
// messages. One whose messages were all acknowledged leaves the set at
// the redelivery goroutine's next visit.
func (s *Server) awaitingAcks() []*conn {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return slices.AppendSeq(make([]*conn, 0, len(s.awaiting)), maps.Keys(s.awaiting))
}

// maxLoggedIDs bounds the message ids one log line lists.
const maxLoggedIDs = 20

// redeliverUnacked is the Server's goroutine that resends unacknowledged
// messages. It stops when Shutdown closes s.stop.
func (s *Server) redeliverUnacked() {
	defer s.bgWG.Done()
	tick := s.cfg.AckTimeout / 4
	if tick < 10*time.Millisecond {
		tick = 10 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			for _, c := range s.awaitingAcks() {
				resent, expired := c.redeliverDue(now, s.cfg.AckTimeout, s.cfg.AckRetries)
				if resent > 0 {
					s.metrics.Redeliveries.Add(float64(resent))
					s.metrics.MessagesOut.WithLabelValues(protocol.TypeEvent).Add(float64(resent))
				}
				if len(expired) > 0 {
					s.metrics.AcksExpired.Add(float64(len(expired)))
					s.log.WarnContext(c.ctx(), "gave up redelivering unacknowledged messages", "msg_ids", expired)
				}
			}
		}
	}
}
