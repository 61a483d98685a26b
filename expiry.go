package herald

import (
	"encoding/json"
	"errors"
	"slices"
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

// scheduleExpiry arms the connection's token timer: token_expiring at
// Config.TokenExpiryNotice before exp, close 4001 at exp. It is a no-op for
// credentials without expiry.
func (c *conn) scheduleExpiry() {
	c.identMu.Lock()
	defer c.identMu.Unlock()
	if c.expiry != nil {
		c.expiry.Stop()
		c.expiry = nil
	}
	exp := c.expiresAtLocked()
	if exp.IsZero() {
		return
	}
	notice := c.s.cfg.TokenExpiryNotice
	left := time.Until(exp)
	if notice > left/2 {
		notice = left / 2
	}
	c.flags.And(^uint32(flagWarned))
	c.expiry = time.AfterFunc(left-notice, c.onExpiryTimer)
}

func (c *conn) onExpiryTimer() {
	c.identMu.Lock()
	exp := c.expiresAtLocked()
	left := time.Until(exp)
	if left > 0 && c.flags.Load()&flagWarned == 0 {
		c.flags.Or(flagWarned)
		c.expiry = time.AfterFunc(left, c.onExpiryTimer)
		c.identMu.Unlock()
		c.link.tokenExpiring(c, exp, left)
		c.s.log.InfoContext(c.ctx(), "token expiring", "in_ms", left.Milliseconds())
		return
	}
	if left > 0 { // refreshed meanwhile to a later exp; a new timer is armed
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
	if c.expiry != nil {
		c.expiry.Stop()
	}
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
