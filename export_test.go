package herald

import (
	"time"

	memsession "github.com/heraldrt/herald/session/memory"
)

// AwaitingAcks returns how many connections the redelivery goroutine
// visits: those that may hold unacknowledged messages.
func (s *Server) AwaitingAcks() int {
	s.ackMu.Lock()
	defer s.ackMu.Unlock()
	return len(s.awaiting)
}

// InjectGap makes the server act as if its broker reported a gap in rooms
// (broker.Handler.HandleGap).
func (s *Server) InjectGap(rooms []string) { s.hub.HandleGap(rooms) }

// IndexedConns returns how many connections the connection index holds
// under a user id and under a jti (connindex.go).
func (s *Server) IndexedConns() (users, tokens int) {
	s.connsMu.Lock()
	defer s.connsMu.Unlock()
	return s.index.users.len(), s.index.tokens.len()
}

// UsesOpener reports whether new connections write their session and
// presence entry together (session.Opener).
func (s *Server) UsesOpener() bool { return s.opener != nil }

// HoldReplayBytes counts n more bytes (or fewer, n < 0) as held by
// history replays, as other replays would (Config.MaxNodeReplayBytes).
func (s *Server) HoldReplayBytes(n int64) { s.replayBytes.Add(n) }

// SetReplayWait sets how long a replay waits for room under
// Config.MaxNodeReplayBytes before its join is refused.
func (s *Server) SetReplayWait(d time.Duration) { s.replayWait.Store(int64(d)) }

// SetDraining sets the flag Shutdown sets first, without shutting down:
// new connections are refused as during a drain.
func (s *Server) SetDraining(on bool) { s.draining.Store(on) }

// LimitSessions sets the bound of the in-memory session store the server
// made (memory.Store.LimitSessions, counted as in New) and returns what
// its sessions count, or -1 when the store is another.
func (s *Server) LimitSessions(n int64) (sessionBytes func() int64) {
	ms, ok := s.sessions.(*memsession.Store)
	if !ok {
		return func() int64 { return -1 }
	}
	ms.LimitSessions(n, func() { s.countLimit(limitNodeSessionBytes) })
	return ms.SessionBytes
}
