package herald

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrt/herald/protocol"
)

// Shutdown drains the server and stops it:
//
//  1. /readyz turns 503 and new upgrades get 503 with Retry-After;
//  2. every client gets server_shutdown with a jittered retryAfterMs;
//  3. clients that leave on their own are let go; from half of the drain
//     time on, the rest are closed with 1001, paced evenly until 80% of it
//     (earlier in drains of a few seconds), so they do not all reconnect
//     at once;
//  4. shortly before the end of the drain (Config.DrainTimeout, or ctx's
//     deadline if sooner), at the drain time less a tenth of it (at least
//     0.5 s, at most 2 s, never more than a quarter), whatever is left is
//     terminated;
//  5. the background goroutines (the server's and the transport's), the
//     broker and the session store stop, in the time left.
//
// Shutdown returns within the drain time: the tenth kept back is for
// stopping, so that a process that exits after it is gone before the
// drain time is up. It returns an error if something did not stop in
// time, or ctx.Err() if ctx ended first. It leaves no goroutine behind.
// It does not stop the http.Server the handler is mounted on: shut that
// down afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() { s.shutErr = s.shutdown(ctx) })
	return s.shutErr
}

func (s *Server) shutdown(ctx context.Context) error {
	start := time.Now()
	s.connsMu.Lock()
	s.draining.Store(true)
	s.connsMu.Unlock()
	s.metrics.Draining.Set(1)
	s.stopAdminConsole()

	drain := s.cfg.DrainTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < drain {
		drain = time.Until(dl)
	}
	conns := s.snapshot()
	s.log.Info("draining", "connections", len(conns), "drain_timeout", drain.String())
	for _, c := range conns {
		c.link.shutdown(c, s.retryAfter())
	}

	// A tenth of the drain (at least 0.5 s, at most 2 s, and never more
	// than a quarter) is kept for what comes after the connections: their
	// handlers, the transport's goroutines, the broker and the store, and
	// the caller's own exit.
	reserve := min(max(drain/10, 500*time.Millisecond), drain/4, 2*time.Second)
	pacedFrom := start.Add(drain / 2)
	// Closed clients get some time to answer before the terminations.
	pacedUntil := start.Add(min(drain*8/10, drain-reserve*3/2))
	terminateAt := start.Add(drain - reserve)
	end := start.Add(drain - reserve/4)
	s.waitConns(ctx, pacedFrom)

	if rest := s.snapshot(); len(rest) > 0 && time.Now().Before(terminateAt) {
		s.log.Info("closing remaining connections, paced", "connections", len(rest))
		// Each close has its time on one schedule, so that timers that
		// fire late (a process short of CPU) do not add up past
		// pacedUntil: a late close goes at once.
		from := time.Now()
		step := pacedUntil.Sub(from) / time.Duration(len(rest))
		for i, c := range rest {
			c.closeWith(protocol.CloseGoingAway, "server shutdown")
			if i < len(rest)-1 && step > 0 {
				if d := time.Until(from.Add(time.Duration(i+1) * step)); d > 0 {
					t := time.NewTimer(d)
					select {
					case <-t.C:
					case <-ctx.Done():
					}
					t.Stop()
				}
			}
			if ctx.Err() != nil {
				break
			}
		}
		s.waitConns(ctx, terminateAt)
	}
	if rest := s.snapshot(); len(rest) > 0 {
		s.log.Warn("drain timeout: terminating connections", "connections", len(rest))
		for _, c := range rest {
			c.link.Terminate(errDrainTerminated)
		}
	}

	// A connection leaves the set when its handler has finished. A
	// terminated one's handler ends at once: even when the terminations
	// came late, past end, it gets one tick of the wait before it counts
	// as not finished.
	var err error
	if soon := time.Now().Add(20 * time.Millisecond); end.Before(soon) {
		end = soon
	}
	s.waitConns(ctx, end)
	if n := s.Connections(); n > 0 {
		err = fmt.Errorf("herald: %d connection handlers did not finish", n)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	s.connsMu.Lock() // see takeCarriedFor
	s.closed.Store(true)
	s.connsMu.Unlock()
	close(s.stop)
	s.bgWG.Wait()
	s.stopAdmin()
	stopCtx, cancel := context.WithDeadline(ctx, start.Add(drain))
	defer cancel()
	err = errors.Join(err, s.upgrader.Close(stopCtx))
	if s.sio != nil {
		err = errors.Join(err, s.sio.eng.Shutdown(stopCtx))
	}
	err = errors.Join(err, s.broker.Close(), s.sessions.Close(), s.presence.Close())
	if s.cfg.Revocations != nil {
		err = errors.Join(err, s.cfg.Revocations.Close())
	}
	s.log.Info("stopped", "took_ms", time.Since(start).Milliseconds())
	return err
}

// waitConns returns when no connection is left, at until, or when ctx ends.
func (s *Server) waitConns(ctx context.Context, until time.Time) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for s.Connections() > 0 && time.Now().Before(until) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
