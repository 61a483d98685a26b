package client

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/protocol"
)

// stableAfter is how long a connection must have lived for the next
// reconnect to start again from the smallest backoff.
const stableAfter = 10 * time.Second

// ended says how a connection ended and when to dial again.
type ended struct {
	err     error
	drainAt time.Time     // when server_shutdown arrived, or zero
	retry   time.Duration // its retryAfter
}

// run is the supervisor: it serves one connection after another until the
// Client stops, then closes the dispatch queue.
func (c *Client) run(cn *conn) {
	defer func() {
		c.setState(Closed)
		close(c.queue)
	}()
	attempt := 0
	refusals := 0 // consecutive reconnects refused for the credentials
	for {
		end := c.serve(cn)
		if c.ctx.Err() != nil {
			return
		}
		if code, reason := closeCode(end.err); !protocol.CloseReconnects(code) {
			c.opts.log.Warn("herald: closed by server for good", "code", code, "reason", reason)
			c.stop(&CloseError{Code: code, Reason: reason})
			return
		}
		var wait time.Duration
		if !end.drainAt.IsZero() {
			// The server asked for this delay: it is not a failure.
			wait = time.Until(end.drainAt.Add(end.retry))
			attempt = 0
		} else {
			if time.Since(cn.started) >= min(stableAfter, c.opts.maxBackoff) {
				attempt = 0
			}
			wait = c.backoff(attempt)
			attempt++
		}
		c.opts.log.Info("herald: disconnected", "err", end.err, "reconnect_in", wait)
		c.setState(Reconnecting)
		for {
			if !sleep(c.ctx, wait) {
				return
			}
			next, err := c.connect(c.ctx)
			if err == nil {
				cn = next
				refusals = 0
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			var he *HandshakeError
			if errors.As(err, &he) && c.refusedForGood(he, &refusals) {
				c.opts.log.Warn("herald: reconnect refused for good", "err", err)
				c.stop(he)
				return
			}
			wait = c.retryDelay(attempt, he)
			attempt++
			c.opts.log.Info("herald: reconnect failed", "err", err, "reconnect_in", wait)
		}
	}
}

// serve runs one connection until it ends or the Client stops.
func (c *Client) serve(cn *conn) ended {
	c.acks.reset(cn.gen)
	cn.wg.Add(2)
	go cn.readLoop()
	go cn.writeLoop()
	defer cn.wg.Wait()

	var end ended
	if c.rejoin(cn) {
		c.mu.Lock()
		c.cur = cn
		close(c.ready)
		c.mu.Unlock()
		c.setState(Connected)

		end = c.watch(cn)

		c.mu.Lock()
		c.cur = nil
		c.ready = make(chan struct{})
		c.mu.Unlock()
	}
	select {
	case <-cn.done:
	default:
		if c.ctx.Err() != nil {
			// Close: say goodbye properly. The reader keeps reading
			// until the server's close frame arrives.
			err := cn.ws.Close(websocket.StatusNormalClosure, "")
			c.mu.Lock()
			c.closeErr = err
			c.mu.Unlock()
		}
	}
	_ = cn.ws.CloseNow()
	<-cn.done
	if end.err == nil {
		end.err = cn.err
	}
	return end
}

// watch waits until the connection ends, the Client stops, the server
// announces a drain, or the server goes quiet for two heartbeats.
func (c *Client) watch(cn *conn) ended {
	var end ended
	var tick, leave <-chan time.Time
	hb := time.Duration(cn.welcome.HeartbeatMs) * time.Millisecond
	if hb > 0 {
		t := time.NewTicker(hb)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-cn.done:
			return end
		case <-c.ctx.Done():
			return end
		case end.retry = <-cn.shutdown:
			end.drainAt = time.Now()
			c.opts.log.Info("herald: server draining", "retry_after", end.retry)
			// Keep receiving from the draining node until retryAfter has
			// passed (it still delivers; leaving at once would miss that
			// much), then leave and dial again at once.
			t := time.NewTimer(end.retry)
			defer t.Stop()
			leave = t.C
		case <-leave:
			_ = cn.ws.Close(websocket.StatusGoingAway, "server shutdown")
			return end
		case now := <-tick:
			if now.Sub(time.Unix(0, cn.lastSeen.Load())) > 2*hb {
				c.opts.log.Warn("herald: no ping from the server for two heartbeats; reconnecting")
				cn.fail(errors.New("herald/client: server silent for two heartbeats"))
				_ = cn.ws.CloseNow()
			}
		}
	}
}

// rejoin joins every remembered room on a new connection, all requests at
// once, and reports whether the connection is still usable. A join the
// server refused for now (broker_unavailable while its broker or session
// store is slow, rate_limited) is asked again on the same connection
// after a backoff, until the handshake timeout: dropping a connection the
// server has just admitted and resumed would make it do all that again,
// which in a reconnect storm is the load that slowed the join.
func (c *Client) rejoin(cn *conn) bool {
	c.mu.Lock()
	rooms := make([]string, 0, len(c.rooms))
	for r := range c.rooms {
		rooms = append(rooms, r)
	}
	c.mu.Unlock()
	slices.Sort(rooms)

	ctx, cancel := context.WithTimeout(c.ctx, c.opts.handshakeTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		again, ok := c.joinAll(ctx, cn, rooms)
		if !ok || ctx.Err() != nil {
			return false
		}
		if len(again) == 0 {
			return true
		}
		wait := c.backoff(attempt)
		c.opts.log.Info("herald: re-join refused for now; asking again on this connection", "rooms", len(again), "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		case <-cn.done:
			t.Stop()
			return false
		}
		rooms = again
	}
}

// joinAll sends a join of each room at once and waits for the replies. It
// returns the rooms the server refused for now, to ask again, and false
// when the connection is no longer usable (a request could not be sent or
// got no answer).
func (c *Client) joinAll(ctx context.Context, cn *conn, rooms []string) (again []string, ok bool) {
	type join struct {
		room string
		wait func() (json.RawMessage, error)
	}
	joins := make([]join, 0, len(rooms))
	for _, room := range rooms {
		// With a position, the server replays what this Client missed of
		// the room before live delivery resumes.
		c.mu.Lock()
		p := c.positions[room]
		c.mu.Unlock()
		wait, err := c.start(ctx, cn, protocol.Request{Type: protocol.TypeJoin, Room: room, Offset: p.offset, Epoch: p.epoch, MsgID: p.msgID})
		if err != nil {
			return nil, false
		}
		joins = append(joins, join{room, wait})
	}
	ok = true
	for _, j := range joins {
		reply, err := j.wait()
		var se *ServerError
		switch {
		case err == nil:
			if recovered := c.joined(j.room, reply); recovered != nil {
				if !*recovered {
					c.opts.log.Warn("herald: room not recovered: messages were missed", "room", j.room)
				}
				select {
				case c.queue <- item{note: &roomNote{room: j.room, recovered: *recovered}}:
				case <-c.ctx.Done():
				}
			}
		case errors.As(err, &se) && permanentJoinError[se.Code]:
			// The server no longer lets us in: forget the room.
			c.opts.log.Warn("herald: re-join refused", "room", j.room, "code", se.Code, "message", se.Message)
			c.forget(j.room)
		case errors.As(err, &se):
			// Refused for now (broker_unavailable, rate_limited): asked
			// again rather than miss the room's events.
			c.opts.log.Warn("herald: re-join failed", "room", j.room, "err", err)
			again = append(again, j.room)
		default:
			// A cut, or no answer in time: try again on a new connection.
			c.opts.log.Warn("herald: re-join failed", "room", j.room, "err", err)
			ok = false
		}
	}
	return again, ok
}

// maxAuthRefusals is how many reconnects in a row a server may refuse with
// 401 or 403 before a Client with a token provider gives up: the provider
// gets that many chances to come up with a token the server accepts.
const maxAuthRefusals = 3

// refusedForGood reports whether a refused reconnect would be refused
// again: 400 and 404 (the request itself is wrong), and 401 and 403 (the
// credentials) unless a token provider may supply better ones, which it
// gets maxAuthRefusals tries to do. Other refusals (429, 503 while
// draining, 5xx) are retried with backoff.
func (c *Client) refusedForGood(he *HandshakeError, refusals *int) bool {
	switch he.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound:
		return true
	case http.StatusUnauthorized, http.StatusForbidden:
		*refusals++
		return c.opts.token == nil || *refusals >= maxAuthRefusals
	}
	return false
}

// permanentJoinError are the error codes for which joining again cannot
// succeed.
var permanentJoinError = map[string]bool{
	"forbidden":      true,
	"too_many_rooms": true,
	"bad_request":    true,
}

// backoff returns the delay before reconnect attempt n: full jitter over an
// exponential ceiling.
func (c *Client) backoff(n int) time.Duration {
	return rand.N(c.ceiling(n) + 1)
}

// ceiling is the backoff ceiling of attempt n: min·2ⁿ, capped at max.
func (c *Client) ceiling(n int) time.Duration {
	ceil := c.opts.maxBackoff
	if n < 32 {
		if d := c.opts.minBackoff << n; d > 0 && d < ceil {
			ceil = d
		}
	}
	return ceil
}

// retryDelay returns the delay before reconnect attempt n after a failed
// one; he is the refusal, if the server answered with one. A server that
// said when to come back (Retry-After, as a 503 overloaded or draining
// does) is not asked again sooner: the delay is its Retry-After plus a
// random part as long again or, from the attempt whose backoff ceiling
// exceeds it, over that ceiling, so that the clients it refused at the
// same moment do not all come back at the same moment.
func (c *Client) retryDelay(n int, he *HandshakeError) time.Duration {
	if he == nil || he.RetryAfter <= 0 {
		return c.backoff(n)
	}
	return he.RetryAfter + rand.N(max(he.RetryAfter, c.ceiling(n))+1)
}

// sleep waits d and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
