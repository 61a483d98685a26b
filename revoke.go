package herald

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
)

// revocations is this node's list of revoked tokens (by jti) and users (by
// sub: tokens issued before the revocation). Every node builds the same list
// from ControlRevoke messages; entries expire when the tokens they name
// would have.
type revocations struct {
	mu   sync.Mutex
	jtis map[string]time.Time // jti → until
	subs map[string]subRevocation
}

type subRevocation struct{ at, until time.Time }

func newRevocations() *revocations {
	return &revocations{jtis: map[string]time.Time{}, subs: map[string]subRevocation{}}
}

func (rv *revocations) add(c *broker.Control, now time.Time) {
	until := time.Unix(c.Until, 0)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if c.TokenID != "" {
		rv.jtis[c.TokenID] = until
	}
	if c.User != "" {
		// A revocation of a user applies to tokens issued up to now; a new
		// login after it works. Sub-second iat values are rounded down by
		// JWT, hence the second of slack.
		rv.subs[c.User] = subRevocation{at: now.Truncate(time.Second), until: until}
	}
}

// revoked reports whether id's credential is revoked.
func (rv *revocations) revoked(id *auth.Identity, now time.Time) bool {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if id.TokenID != "" {
		if until, ok := rv.jtis[id.TokenID]; ok && now.Before(until) {
			return true
		}
	}
	if s, ok := rv.subs[id.UserID]; ok && now.Before(s.until) && !id.IssuedAt.After(s.at) {
		return true
	}
	return false
}

func (rv *revocations) sweep(now time.Time) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	for k, until := range rv.jtis {
		if now.After(until) {
			delete(rv.jtis, k)
		}
	}
	for k, s := range rv.subs {
		if now.After(s.until) {
			delete(rv.subs, k)
		}
	}
}

// RevokeRequest is the body of POST /api/v1/revoke: a token id, a user, or
// both. Until (Unix seconds) is when the revocation may be forgotten,
// normally the token's exp; default now + Config.RevocationTTL.
type RevokeRequest struct {
	TokenID string `json:"jti,omitempty"`
	User    string `json:"sub,omitempty"`
	Until   int64  `json:"until,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Revoke closes every connection, on every node, whose token has req.TokenID
// or whose user is req.User (code 4003), and refuses those credentials at
// the upgrade until req.Until.
func (s *Server) Revoke(ctx context.Context, req RevokeRequest) error {
	if req.TokenID == "" && req.User == "" {
		return errors.New(`herald: revoke needs "jti" or "sub"`)
	}
	if req.Until == 0 {
		req.Until = time.Now().Add(s.cfg.RevocationTTL).Unix()
	}
	return s.broker.PublishControl(ctx, &broker.Control{
		Kind: broker.ControlRevoke, TokenID: req.TokenID, User: req.User, Until: req.Until, Reason: req.Reason,
	})
}

// applyRevocation runs on every node for a ControlRevoke.
func (s *Server) applyRevocation(c *broker.Control) {
	now := time.Now()
	s.revoked.add(c, now)
	n := 0
	for _, cn := range s.snapshot() {
		if cn.revokedAt(now) {
			cn.closeWith(protocol.CloseRevoked, nonEmpty(c.Reason, "token revoked"))
			n++
		}
	}
	s.log.Info("revocation applied", "jti", c.TokenID, "sub", c.User, "closed", n)
}

func (s *Server) serveAPIRevoke(a *apiRequest) {
	var req RevokeRequest
	if err := decodeJSONBody(a.w, a.r, &req); err != nil {
		a.failBody(err)
		return
	}
	if req.TokenID == "" && req.User == "" {
		a.fail(http.StatusBadRequest, "bad_request", `one of "jti" or "sub" is required`)
		return
	}
	if err := s.Revoke(a.ctx, req); err != nil {
		s.log.WarnContext(a.ctx, "revoke failed", "err", err)
		a.fail(http.StatusServiceUnavailable, protocol.CodeBrokerUnavailable, fmt.Sprintf("revocation not propagated: %v", err))
		return
	}
	s.log.InfoContext(a.ctx, "api revoke", "jti", req.TokenID, "sub", req.User)
	a.ok(map[string]any{"revoked": true, "jti": req.TokenID, "sub": req.User})
}
