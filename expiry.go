package herald

import (
	"errors"
	"slices"
	"time"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/protocol"
)

// identity returns the connection's current identity (a refresh may
// replace it from the read loop while timers and control messages read it).
func (c *conn) identity() *auth.Identity {
	c.identMu.Lock()
	defer c.identMu.Unlock()
	return c.ident
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
	exp := c.ident.ExpiresAt
	if exp.IsZero() {
		return
	}
	notice := c.s.cfg.TokenExpiryNotice
	left := time.Until(exp)
	if notice > left/2 {
		notice = left / 2
	}
	c.warned = false
	c.expiry = time.AfterFunc(left-notice, c.onExpiryTimer)
}

func (c *conn) onExpiryTimer() {
	c.identMu.Lock()
	exp := c.ident.ExpiresAt
	left := time.Until(exp)
	if left > 0 && !c.warned {
		c.warned = true
		c.expiry = time.AfterFunc(left, c.onExpiryTimer)
		c.identMu.Unlock()
		c.send(protocol.TypeTokenExpiring, protocol.EncodeTokenExpiring(exp.UnixMilli(), left.Milliseconds()))
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
func (c *conn) refresh(req *protocol.Request) {
	r, ok := c.s.auth.(auth.Refresher)
	if !ok {
		c.sendError(req.ID, protocol.CodeBadRequest, "this server uses no expiring tokens; nothing to refresh")
		return
	}
	id, err := r.Refresh(req.Token)
	if err != nil {
		msg := "token rejected"
		var ae *auth.Error
		if errors.As(err, &ae) {
			msg = ae.Message
		}
		c.sendError(req.ID, protocol.CodeTokenInvalid, msg)
		return
	}
	cur := c.identity()
	switch {
	case id.UserID != cur.UserID:
		c.sendError(req.ID, protocol.CodeTokenInvalid, "the new token is for another user")
		return
	case c.s.revoked.revoked(id, time.Now()):
		c.sendError(req.ID, protocol.CodeTokenInvalid, "the new token is revoked")
		return
	}
	id.Source = cur.Source
	c.identMu.Lock()
	c.ident = id
	c.identMu.Unlock()
	c.scheduleExpiry()
	left := c.leaveForbiddenRooms(id)
	c.s.log.InfoContext(c.ctx(), "token refreshed", "expires_at", id.ExpiresAt, "rooms_left", left)
	c.reply(req.ID, mustJSON(refreshReply{ExpiresAt: id.ExpiresAt.UnixMilli(), Left: left}))
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
	ctx, cancel := c.backendCtx()
	defer cancel()
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
