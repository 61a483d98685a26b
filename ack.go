package herald

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
)

// acks tracks a connection's messages that were published with ack and not
// yet acknowledged. Deliver adds (fan-out goroutines), the read loop removes
// (ack frames), the server's redelivery goroutine resends.
type acks struct {
	mu      sync.Mutex
	pending map[string]*pendingAck
}

type pendingAck struct {
	frame    *transport.Prepared
	sentAt   time.Time
	attempts int
}

// track records an acked message; it reports false when the connection is
// over its limit of pending acks.
func (c *conn) track(msgID string, f *transport.Prepared) bool {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	if c.acks.pending == nil {
		c.acks.pending = make(map[string]*pendingAck)
	}
	if len(c.acks.pending) >= c.s.cfg.MaxPendingAcks {
		return false
	}
	if len(c.acks.pending) == 0 {
		c.s.awaitAcks(c, true)
	}
	c.acks.pending[msgID] = &pendingAck{frame: f, sentAt: time.Now(), attempts: 1}
	return true
}

// acked removes ids from the pending set and returns how many were pending.
func (c *conn) acked(ids []string) int {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := c.acks.pending[id]; ok {
			delete(c.acks.pending, id)
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
	for id, p := range c.acks.pending {
		if now.Sub(p.sentAt) < timeout {
			continue
		}
		if p.attempts > retries {
			delete(c.acks.pending, id)
			expired = append(expired, id)
			continue
		}
		p.attempts++
		p.sentAt = now
		if c.ws.Send(p.frame) == nil {
			resent++
		}
	}
	if len(c.acks.pending) == 0 {
		c.s.awaitAcks(c, false)
	}
	return resent, expired
}

// dropPending empties the pending set of a connection that has ended and
// returns the ids it held: nothing can redeliver them any more.
func (c *conn) dropPending() []string {
	c.acks.mu.Lock()
	defer c.acks.mu.Unlock()
	ids := make([]string, 0, len(c.acks.pending))
	for id := range c.acks.pending {
		ids = append(ids, id)
	}
	c.acks.pending = nil
	c.s.awaitAcks(c, false)
	return ids
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
