package herald

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/heraldrt/herald/session"
)

// refreshWorkers bounds the session touches a refresh round has in
// flight. A store that pipelines concurrent commands (the Redis store
// does) sends them in a few round trips instead of one per connection, so
// a round over 14,000 connections is not 14,000 round trips one after the
// other: that bounded a node to SessionTTL/3 ÷ round trip connections
// (docs/capacity.md) and cost Redis a read and a write system call per
// session.
const refreshWorkers = 64

// refreshSessions keeps live connections' sessions from expiring and
// writes again those the store no longer has (a Redis that restarted
// empty, or sessions that expired while it was unreachable), so that
// any connection can still resume after a reconnect. A round stops at
// the first failure other than a missing session: the store is down or
// stalled, and the next round tries again. It logs once per round. Its
// workers end before it returns.
func (s *Server) refreshSessions() {
	conns := s.snapshot()
	var (
		refreshed, rewritten, skipped atomic.Int64
		failMu                        sync.Mutex
		failure                       error
		failed                        atomic.Bool
		wg                            sync.WaitGroup
	)
	work := make(chan *conn)
	for range min(refreshWorkers, len(conns)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if failed.Load() {
					skipped.Add(1)
					continue
				}
				ok, rewrote, err := s.refreshSession(c)
				switch {
				case err != nil:
					skipped.Add(1)
					failMu.Lock()
					if failure == nil {
						failure = err
					}
					failMu.Unlock()
					failed.Store(true)
				case rewrote:
					rewritten.Add(1)
				case ok:
					refreshed.Add(1)
				}
			}
		}()
	}
	for i, c := range conns {
		if failed.Load() {
			skipped.Add(int64(len(conns) - i))
			break
		}
		work <- c
	}
	close(work)
	wg.Wait()
	if n := rewritten.Load(); n > 0 {
		s.log.Warn("sessions missing from the store written again", "sessions", n)
	}
	if failure != nil {
		s.log.Warn("session refresh failed; the next round retries", "err", failure,
			"refreshed", refreshed.Load()+rewritten.Load(), "not_refreshed", skipped.Load())
	}
}

// refreshSession touches c's session, or writes it again when the store
// no longer has it. ok is false for a connection that is still opening
// its session or closing (a clean close deletes it, which a rewrite must
// not undo).
func (s *Server) refreshSession(c *conn) (ok, rewrote bool, err error) {
	sid, has := c.sessionID()
	if !has || c.link.Err() != nil {
		return false, false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.BackendTimeout)
	defer cancel()
	err = s.sessions.Touch(ctx, sid, c.link.LastSeen(), s.cfg.SessionTTL)
	if errors.Is(err, session.ErrNotFound) {
		c.identMu.Lock()
		rooms := c.rooms // never changed in place (see roomSet)
		c.identMu.Unlock()
		rec := c.sessionRecord(rooms)
		err = s.sessions.Save(ctx, rec, s.cfg.SessionTTL)
		putRecord(rec)
		if err == nil {
			return true, true, nil
		}
	}
	return err == nil, false, err
}
