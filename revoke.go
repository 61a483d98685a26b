package herald

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/session"
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

// add records a revocation of c's jti and/or user; a revocation of a
// user applies to tokens issued up to c.At (default now). It reports
// whether the list changed.
func (rv *revocations) add(c *broker.Control, now time.Time) bool {
	at := now
	if c.At != 0 {
		at = time.Unix(c.At, 0)
	}
	return rv.put(c.TokenID, c.User, at, time.Unix(c.Until, 0))
}

// put records a revocation of jti and/or user, made at at, until until.
// Sub-second iat values are rounded down by JWT, hence at is rounded down
// to its second. It reports whether the list changed.
func (rv *revocations) put(jti, user string, at, until time.Time) bool {
	at = at.Truncate(time.Second)
	rv.mu.Lock()
	defer rv.mu.Unlock()
	changed := false
	if jti != "" {
		if old, ok := rv.jtis[jti]; !ok || !old.Equal(until) {
			rv.jtis[jti], changed = until, true
		}
	}
	if user != "" {
		// A later revocation of the user replaces an earlier one; an
		// earlier one (read late from the store) changes nothing.
		old, ok := rv.subs[user]
		if !ok || at.After(old.at) || at.Equal(old.at) && !until.Equal(old.until) {
			rv.subs[user], changed = subRevocation{at: at, until: until}, true
		}
	}
	return changed
}

// revoked reports whether id's credential is revoked at now. A zero now
// is the present moment, read only when a revocation names id's token
// or user (a connect, which has none, reads no clock for it).
func (rv *revocations) revoked(id *auth.Identity, now time.Time) bool {
	clock := func() time.Time {
		if now.IsZero() {
			now = time.Now()
		}
		return now
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if id.TokenID != "" {
		if until, ok := rv.jtis[id.TokenID]; ok && clock().Before(until) {
			return true
		}
	}
	if s, ok := rv.subs[id.UserID]; ok && clock().Before(s.until) && !id.IssuedAt.After(s.at) {
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

// Errors of Revoke.
var (
	// ErrRevokeInvalid: neither a jti nor a sub, or an Until already past.
	ErrRevokeInvalid = errors.New("herald: invalid revocation")
	// ErrRevokeNotStored: Config.Revocations could not record it; nothing
	// was revoked.
	ErrRevokeNotStored = errors.New("herald: revocation not recorded")
	// ErrRevokeNotPropagated: without Config.Revocations, the revocation
	// was applied on this node but the broker did not take the message to
	// the other nodes; a retry is harmless. (With Config.Revocations such
	// a revocation is not an error: the other nodes read it from the
	// store after their next resubscribe, within RevocationResync at most.)
	ErrRevokeNotPropagated = errors.New("herald: revocation applied on this node but not sent to the others")
)

// Revoke closes every connection, on every node, whose token has req.TokenID
// or whose user is req.User (code 4003), and refuses those credentials at
// the upgrade until req.Until. A revocation of a user covers the tokens
// issued up to now; a new login after it works.
//
// In order: it records the revocation in Config.Revocations (so that
// nodes that start later, or missed the message, still refuse it),
// applies it on this node, then sends it to the others. It returns nil
// once it is recorded and applied here; then every node applies it at
// once or, if the message does not reach it, when it re-reads the store
// (after its next resubscribe, within RevocationResync at most).
func (s *Server) Revoke(ctx context.Context, req RevokeRequest) error {
	now := time.Now()
	if req.TokenID == "" && req.User == "" {
		return fmt.Errorf(`%w: "jti" or "sub" is required`, ErrRevokeInvalid)
	}
	if req.Until == 0 {
		req.Until = now.Add(s.cfg.RevocationTTL).Unix()
	}
	if req.Until <= now.Unix() {
		return fmt.Errorf(`%w: "until" (%d) is not in the future: such a revocation would do nothing`, ErrRevokeInvalid, req.Until)
	}
	c := &broker.Control{
		Kind: broker.ControlRevoke, TokenID: req.TokenID, User: req.User,
		Until: req.Until, At: now.Unix(), Reason: req.Reason,
	}
	if store := s.cfg.Revocations; store != nil {
		sctx, cancel := context.WithTimeout(ctx, s.cfg.BackendTimeout)
		err := store.Add(sctx, session.Revocation{
			TokenID: c.TokenID, User: c.User, At: time.Unix(c.At, 0), Until: time.Unix(c.Until, 0),
		})
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRevokeNotStored, err)
		}
	}
	s.applyRevocation(c)
	pctx, cancel := context.WithTimeout(ctx, s.cfg.BackendTimeout)
	defer cancel()
	if err := s.broker.PublishControl(pctx, c); err != nil {
		if s.cfg.Revocations == nil {
			return fmt.Errorf("%w: %w", ErrRevokeNotPropagated, err)
		}
		// Recorded and applied here: the other nodes read it from the
		// store when their control subscription is back (a broker that
		// refuses a publish has usually broken theirs too) or within
		// RevocationResync.
		s.log.WarnContext(ctx, "revocation recorded and applied on this node; not sent to the others, which read it from the store",
			"jti", c.TokenID, "sub", c.User, "err", err)
	}
	return nil
}

// applyRevocation runs on every node for a ControlRevoke (and on the node
// that made it, before it is sent).
func (s *Server) applyRevocation(c *broker.Control) {
	if !s.revoked.add(c, time.Now()) {
		return // known already: applied when it was recorded or loaded
	}
	n := s.closeRevoked(nonEmpty(c.Reason, "token revoked"), s.connsOf(c.User, c.TokenID))
	s.log.Info("revocation applied", "jti", c.TokenID, "sub", c.User, "closed", n)
}

// closeRevoked closes those of cands (found through the connection
// index, see connsOf) whose credential is revoked, with 4003 and reason,
// and returns how many it closed (a connection closing already, or listed
// twice, counts once at most).
func (s *Server) closeRevoked(reason string, cands []*conn) int {
	now := time.Now()
	n := 0
	for _, cn := range cands {
		if cn.revokedAt(now) && cn.closeWith(protocol.CloseRevoked, reason) {
			n++
		}
	}
	return n
}

// RevocationResync is how often a node re-reads Config.Revocations
// besides after every resubscribe of its control channel: the bound on how
// long a revocation whose message reached no one (ErrRevokeNotPropagated)
// takes to apply everywhere.
const RevocationResync = 30 * time.Second

// loadRevocations reads Config.Revocations into this node's list and
// closes the connections that a revocation it did not know covers.
func (s *Server) loadRevocations(ctx context.Context) error {
	list, err := s.cfg.Revocations.List(ctx)
	if err != nil {
		return err
	}
	changed := 0
	var cands []*conn
	for _, r := range list {
		if s.revoked.put(r.TokenID, r.User, r.At, r.Until) {
			changed++
			cands = append(cands, s.connsOf(r.User, r.TokenID)...)
		}
	}
	if changed > 0 {
		n := s.closeRevoked("token revoked", cands)
		s.log.Info("revocations loaded", "new", changed, "total", len(list), "closed", n)
	}
	s.revLoaded.Store(true)
	return nil
}

// requestRevocationReload asks syncRevocations to re-read the store; it
// never blocks (the broker calls it, see broker.ControlGapHandler).
func (s *Server) requestRevocationReload() {
	select {
	case s.revReload <- struct{}{}:
	default: // one is pending already
	}
}

// syncRevocations keeps this node's revocations in step with
// Config.Revocations: until the first load succeeds (the node is not
// ready and refuses upgrades until then) it retries every second; then it
// re-reads after every control-channel resubscribe and every
// RevocationResync.
func (s *Server) syncRevocations() {
	defer s.bgWG.Done()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	resync := time.NewTicker(RevocationResync)
	defer resync.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-retry.C:
			if s.revLoaded.Load() {
				continue
			}
		case <-s.revReload:
		case <-resync.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.BackendTimeout)
		err := s.loadRevocations(ctx)
		cancel()
		if err != nil {
			s.log.Warn("revocations not loaded; retrying", "err", err, "ready", s.revLoaded.Load())
		}
	}
}

func (s *Server) serveAPIRevoke(a *apiRequest) {
	var req RevokeRequest
	if err := decodeJSONBody(a.w, a.r, &req); err != nil {
		a.failBody(err)
		return
	}
	err := s.Revoke(a.ctx, req)
	switch {
	case errors.Is(err, ErrRevokeInvalid):
		a.fail(http.StatusBadRequest, "bad_request", strings.TrimPrefix(err.Error(), ErrRevokeInvalid.Error()+": "))
		return
	case errors.Is(err, ErrRevokeNotStored):
		s.log.WarnContext(a.ctx, "revoke failed", "err", err)
		a.fail(http.StatusServiceUnavailable, protocol.CodeBrokerUnavailable, fmt.Sprintf("revocation not recorded, nothing revoked: %v; retry", err))
		return
	case err != nil:
		s.log.WarnContext(a.ctx, "revoke not propagated", "err", err)
		a.fail(http.StatusServiceUnavailable, protocol.CodeBrokerUnavailable, fmt.Sprintf("%v; retry (a revocation may be repeated)", err))
		return
	}
	s.log.InfoContext(a.ctx, "api revoke", "jti", req.TokenID, "sub", req.User)
	a.ok(map[string]any{"revoked": true, "jti": req.TokenID, "sub": req.User})
}
