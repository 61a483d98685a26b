package herald

import (
	"context"
	"errors"
	"time"

	"github.com/heraldrt/herald/protocol"
)

// Shutdown drains the server and stops it:
//
//  1. /readyz turns 503 and new upgrades get 503 with Retry-After;
//  2. every client gets server_shutdown with a jittered retryAfterMs;
//  3. clients that leave on their own are let go; from half of the drain
//     time on, the rest are closed with 1001, paced evenly until 90% of it,
//     so they do not all reconnect at once;
//  4. at the end of the drain (Config.DrainTimeout, or ctx's deadline if
//     sooner) whatever is left is terminated;
//  5. the background goroutines, the broker and the session store stop.
//
// It returns ctx.Err() if ctx ended before the connection handlers did. It
// does not stop the http.Server the handler is mounted on: shut that down
// afterwards.
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

	drain := s.cfg.DrainTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < drain {
		drain = time.Until(dl)
	}
	conns := s.snapshot()
	s.log.Info("draining", "connections", len(conns), "drain_timeout", drain.String())
	for _, c := range conns {
		ms := s.retryAfter().Milliseconds()
		c.send(protocol.TypeServerShutdown, protocol.EncodeServerShutdown(ms, "server shutdown"))
	}

	pacedFrom := start.Add(drain / 2)
	pacedUntil := start.Add(drain * 9 / 10)
	end := start.Add(drain)
	s.waitConns(ctx, pacedFrom)

	if rest := s.snapshot(); len(rest) > 0 && time.Now().Before(end) {
		s.log.Info("closing remaining connections, paced", "connections", len(rest))
		step := time.Until(pacedUntil) / time.Duration(len(rest))
		for i, c := range rest {
			c.closeWith(protocol.CloseGoingAway, "server shutdown")
			if i < len(rest)-1 && step > 0 {
				select {
				case <-time.After(step):
				case <-ctx.Done():
				}
			}
			if ctx.Err() != nil {
				break
			}
		}
		s.waitConns(ctx, end)
	}
	if rest := s.snapshot(); len(rest) > 0 {
		s.log.Warn("drain timeout: terminating connections", "connections", len(rest))
		for _, c := range rest {
			c.ws.Terminate(errDrainTerminated)
		}
	}

	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(5 * time.Second):
		err = errors.New("herald: connection handlers did not finish")
	}
	s.closed.Store(true)
	close(s.stop)
	s.bgWG.Wait()
	err = errors.Join(err, s.broker.Close(), s.sessions.Close(), s.presence.Close())
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
