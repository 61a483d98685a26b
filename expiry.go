package herald

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/protocol"
)

// identity returns the connection's current identity (a refresh may
// replace it from the read loop while timers and control messages read it).
// The caller must not change it.
func (c *conn) identity() *auth.Identity {
	return c.currentIdentity(new(auth.Identity))
}

// The checks below are what most paths need of the identity; for a plain
// anonymous connection they build it on the stack instead of allocating
// it as identity does.

// canJoin reports whether the connection's identity may join room.
func (c *conn) canJoin(room string) bool {
	var anon auth.Identity
	return c.currentIdentity(&anon).CanJoin(room)
}

// canPublish reports whether the connection's identity may publish to room.
func (c *conn) canPublish(room string) bool {
	var anon auth.Identity
	return c.currentIdentity(&anon).CanPublish(room)
}

// revokedAt reports whether the connection's credential is revoked at
// now (zero: the present, see revocations.revoked).
func (c *conn) revokedAt(now time.Time) bool {
	var anon auth.Identity
	return c.s.revoked.revoked(c.currentIdentity(&anon), now)
}

// currentIdentity returns the connection's identity, filling in anon for a
// plain anonymous one.
func (c *conn) currentIdentity(anon *auth.Identity) *auth.Identity {
	c.identMu.Lock()
	id := c.ident
	c.identMu.Unlock()
	if id == nil {
		*anon = auth.Identity{UserID: c.info.UserID, Anonymous: true}
		id = anon
	}
	return id
}

// keptIdentity returns what a connection keeps of id: nil for a plain
// anonymous identity (a user id and nothing else), which identity
// rebuilds, else id.
func keptIdentity(id *auth.Identity) *auth.Identity {
	if id.Anonymous && id.TokenID == "" && id.IssuedAt.IsZero() && id.ExpiresAt.IsZero() &&
		id.Source == "" && id.Permissions == nil {
		return nil
	}
	return id
}

// expiresAtLocked returns when the connection's credential expires; zero
// for never. c.identMu must be held.
func (c *conn) expiresAtLocked() time.Time {
	if c.ident == nil {
		return time.Time{}
	}
	return c.ident.ExpiresAt
}

// scheduleExpiry arms the connection's token clock: token_expiring at
// Config.TokenExpiryNotice before exp, close 4001 at exp. It is a no-op for
// credentials without expiry.
func (c *conn) scheduleExpiry() {
	c.identMu.Lock()
	defer c.identMu.Unlock()
	exp := c.expiresAtLocked()
	if exp.IsZero() {
		c.s.expiries.remove(c)
		return
	}
	notice := c.s.cfg.TokenExpiryNotice
	left := time.Until(exp)
	if notice > left/2 {
		notice = left / 2
	}
	c.flags.And(^uint32(flagWarned))
	c.s.expiries.schedule(c, left-notice)
}

// onExpiry runs when the connection's token clock is due: it warns the
// client (token_expiring) and schedules the close at exp, or closes with
// 4001 once exp has passed.
func (c *conn) onExpiry() {
	c.identMu.Lock()
	if c.s.expiries.scheduled(c) {
		// A refresh scheduled it again after the clock took it out
		// (see expiryClock.fire): that schedule decides.
		c.identMu.Unlock()
		return
	}
	exp := c.expiresAtLocked()
	if exp.IsZero() {
		c.identMu.Unlock()
		return
	}
	left := time.Until(exp)
	if left > 0 && c.flags.Load()&flagWarned == 0 {
		c.flags.Or(flagWarned)
		c.s.expiries.schedule(c, left)
		c.identMu.Unlock()
		c.link.tokenExpiring(c, exp, left)
		c.s.log.InfoContext(c.ctx(), "token expiring", "in_ms", left.Milliseconds())
		return
	}
	if left > 0 { // warned, and the clock ran early (it never does): again at exp
		c.s.expiries.schedule(c, left)
		c.identMu.Unlock()
		return
	}
	c.identMu.Unlock()
	c.s.log.InfoContext(c.ctx(), "token expired: closing")
	c.closeWith(protocol.CloseTokenExpired, "token expired")
}

func (c *conn) stopExpiry() {
	c.identMu.Lock()
	defer c.identMu.Unlock()
	c.s.expiries.remove(c)
}

// expiryClock runs the token clocks of a Server's connections: one
// min-heap of due times and one runtime timer for the whole server,
// instead of a timer (and its callback's closure) per connection, which
// every connect made and every disconnect stopped, and which every idle
// connection with an expiring token held (≈ 130 B). A connection is in
// the heap at most once (conn.expSlot). The timer's callback takes out
// what is due and runs those connections' onExpiry one after the other
// (they only queue a frame or start a close); it ends with the Server:
// the timer is stopped whenever the heap is empty, and every connection
// leaves the heap in its cleanup.
//
// Lock order: conn.identMu, then expiryClock.mu.
type expiryClock struct {
	mu   sync.Mutex
	due  []expiryEntry
	base time.Time // the zero of expiryEntry.at (monotonic)
	// timer fires at armed (clock time) for due[0] or earlier: a
	// due[0] later than armed (the earlier one left) costs one early
	// wake-up that finds nothing due, not a Reset per disconnect.
	timer *time.Timer
	armed int64
}

// expiryEntry is a connection's place in expiryClock.due.
type expiryEntry struct {
	at int64 // clock time the connection's onExpiry is due
	c  *conn
}

// newExpiryClock returns an empty clock.
func newExpiryClock() *expiryClock { return &expiryClock{base: time.Now()} }

// now returns the clock's time: nanoseconds since base, monotonic.
func (k *expiryClock) now() int64 { return int64(time.Since(k.base)) }

// schedule makes c's onExpiry due after d (at once for d <= 0),
// replacing its earlier schedule. The caller holds c.identMu.
func (k *expiryClock) schedule(c *conn, d time.Duration) {
	at := k.now() + int64(max(d, 0))
	k.mu.Lock()
	defer k.mu.Unlock()
	if i := int(c.expSlot) - 1; i >= 0 {
		k.due[i].at = at
		if !k.up(i) {
			k.down(i)
		}
	} else {
		k.due = append(k.due, expiryEntry{at: at, c: c})
		c.expSlot = int32(len(k.due))
		k.up(len(k.due) - 1)
	}
	if top := k.due[0].at; k.timer == nil || top < k.armed {
		k.armLocked(top)
	}
}

// remove takes c's schedule out, if it has one. The caller holds
// c.identMu.
func (k *expiryClock) remove(c *conn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.expSlot > 0 {
		k.removeLocked(int(c.expSlot) - 1)
	}
	if len(k.due) == 0 && k.timer != nil {
		k.timer.Stop()
		k.armed = math.MaxInt64
	}
}

// scheduled reports whether c has a schedule in the clock.
func (k *expiryClock) scheduled(c *conn) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return c.expSlot > 0
}

// armLocked sets the timer to fire at at (clock time).
func (k *expiryClock) armLocked(at int64) {
	k.armed = at
	d := time.Duration(max(at-k.now(), 0))
	if k.timer == nil {
		k.timer = time.AfterFunc(d, k.fire)
		return
	}
	k.timer.Reset(d)
}

// fire takes out the connections that are due, arms the timer for the
// next one and runs their onExpiry.
func (k *expiryClock) fire() {
	k.mu.Lock()
	now := k.now()
	var ready []*conn
	for len(k.due) > 0 && k.due[0].at <= now {
		ready = append(ready, k.due[0].c)
		k.removeLocked(0)
	}
	k.armed = math.MaxInt64
	if len(k.due) > 0 {
		k.armLocked(k.due[0].at)
	}
	k.mu.Unlock()
	for _, c := range ready {
		c.onExpiry()
	}
}

// removeLocked takes out the entry at i.
func (k *expiryClock) removeLocked(i int) {
	k.due[i].c.expSlot = 0
	last := len(k.due) - 1
	if i != last {
		k.due[i] = k.due[last]
		k.due[i].c.expSlot = int32(i + 1)
	}
	k.due[last] = expiryEntry{}
	k.due = k.due[:last]
	if i != last && !k.up(i) {
		k.down(i)
	}
}

// up moves the entry at i towards the root while it is due before its
// parent, and reports whether it moved.
func (k *expiryClock) up(i int) bool {
	moved := false
	for i > 0 {
		p := (i - 1) / 2
		if k.due[p].at <= k.due[i].at {
			break
		}
		k.swap(i, p)
		i, moved = p, true
	}
	return moved
}

// down moves the entry at i towards the leaves while a child is due
// before it.
func (k *expiryClock) down(i int) {
	n := len(k.due)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && k.due[r].at < k.due[l].at {
			m = r
		}
		if k.due[i].at <= k.due[m].at {
			return
		}
		k.swap(i, m)
		i = m
	}
}

func (k *expiryClock) swap(i, j int) {
	k.due[i], k.due[j] = k.due[j], k.due[i]
	k.due[i].c.expSlot = int32(i + 1)
	k.due[j].c.expSlot = int32(j + 1)
}

// refresh handles a refresh request: a new token for the same user extends
// the connection's life and replaces its permissions.
func (c *conn) refresh(ref json.RawMessage, token string) {
	r, ok := c.s.auth.(auth.Refresher)
	if !ok {
		c.sendError(ref, protocol.CodeBadRequest, "this server uses no expiring tokens; nothing to refresh")
		return
	}
	id, err := r.Refresh(token)
	if err != nil {
		msg := "token rejected"
		var ae *auth.Error
		if errors.As(err, &ae) {
			msg = ae.Message
		}
		c.sendError(ref, protocol.CodeTokenInvalid, msg)
		return
	}
	cur := c.identity()
	switch {
	case id.UserID != cur.UserID:
		c.sendError(ref, protocol.CodeTokenInvalid, "the new token is for another user")
		return
	case c.s.revoked.revoked(id, time.Time{}):
		c.sendError(ref, protocol.CodeTokenInvalid, "the new token is revoked")
		return
	}
	id.Source = cur.Source
	c.s.setIdentity(c, id)
	c.scheduleExpiry()
	left := c.leaveForbiddenRooms(id)
	c.s.log.InfoContext(c.ctx(), "token refreshed", "expires_at", id.ExpiresAt, "rooms_left", left)
	c.reply(ref, mustJSON(refreshReply{ExpiresAt: id.ExpiresAt.UnixMilli(), Left: left}))
}

// refreshReply is the data of a refresh's reply.
type refreshReply struct {
	ExpiresAt int64    `json:"expiresAt"`
	Left      []string `json:"left,omitempty"` // rooms the new token may not join, left
}

// leaveForbiddenRooms makes the connection leave the rooms id may not
// join, since permissions follow the newest token, and returns them.
func (c *conn) leaveForbiddenRooms(id *auth.Identity) []string {
	var left []string
	ctx := c.backendCtx()
	defer ctx.cancel()
	for _, room := range slices.Clone(c.rooms) {
		if id.CanJoin(room) {
			continue
		}
		c.leaveRoom(ctx, room)
		left = append(left, room)
	}
	if len(left) > 0 {
		c.saveSession(ctx)
	}
	return left
}
