package herald

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldrt/herald/auth"
)

// Admission: the checks every client passes before it becomes a
// connection, whatever its protocol: the drain, loopback-only anonymous
// service, revocations loaded, the per-IP upgrade rate, the
// Authenticator, revocation, the origin, OnUpgrade, and the connection
// limits (per user and per IP on the node, per user in the cluster). v1
// runs them on the WebSocket upgrade and answers a refusal with an HTTP
// status; Socket.IO runs them on a CONNECT and answers with a
// CONNECT_ERROR.

// admission is what the checks decided for a client they let in. The
// client holds a connection slot (limiter.acquire) from then on: the
// adapter releases it (limits.release(ident.UserID, ip)) unless it hands
// the client over to a conn, whose cleanup releases it.
type admission struct {
	ident *auth.Identity
	ip    string         // the address per-IP limits count
	up    *UpgradeResult // OnUpgrade's answer; nil without the hook or when it kept the identity
}

// rooms returns the rooms OnUpgrade named.
func (a *admission) rooms() []string {
	if a.up == nil {
		return nil
	}
	return a.up.Rooms
}

// refusal is a check's no: an HTTP status, a short code (the JSON error
// body's "error", also a metric label for most) and a message for the
// client. It is counted and logged when made.
type refusal struct {
	status     int
	code       string
	message    string
	retryAfter string // the Retry-After header, when the client may retry
	bearer     bool   // answer with WWW-Authenticate: Bearer
}

// writeHTTP answers an HTTP request with r.
func (r *refusal) writeHTTP(w http.ResponseWriter) {
	if r.retryAfter != "" {
		w.Header().Set("Retry-After", r.retryAfter)
	}
	if r.bearer {
		w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
	}
	writeJSONError(w, r.status, r.code, r.message)
}

// admit runs the admission checks for the client of request r, which
// will have connection id connID and correlation id cid; rated says the
// per-IP upgrade rate was already spent on it (a Socket.IO handshake). A
// nil refusal
// admits it (returned by value: the connect path allocates no more).
func (s *Server) admit(ctx context.Context, r *http.Request, connID, cid string, rated bool) (admission, *refusal) {
	if s.draining.Load() {
		s.metrics.UpgradesRejected.WithLabelValues("draining").Inc()
		return admission{}, &refusal{status: http.StatusServiceUnavailable, code: "draining",
			message:    "server is shutting down; reconnect to another node",
			retryAfter: strconv.Itoa(int((s.cfg.DrainRetryAfter + time.Second - 1) / time.Second))}
	}
	if s.localOnly && !onLoopback(r) {
		return admission{}, s.refuseRemoteAnonymous(ctx, r)
	}
	if !s.revLoaded.Load() {
		s.metrics.UpgradesRejected.WithLabelValues("starting").Inc()
		return admission{}, &refusal{status: http.StatusServiceUnavailable, code: "starting",
			message: "revocations not loaded yet; retry shortly or reconnect to another node", retryAfter: "1"}
	}
	// The address per-IP limits count and OnUpgrade is told; none is
	// worked out for a server that has neither.
	ip := ""
	if cfg := &s.cfg; cfg.UpgradeRatePerIP > 0 || cfg.MaxConnsPerIP > 0 || cfg.Hooks.OnUpgrade != nil {
		ip = s.clientIP(r)
	}
	if !rated && s.cfg.UpgradeRatePerIP > 0 && !s.limits.allowUpgrade(ip, time.Now()) {
		return admission{}, s.refuse(ctx, http.StatusTooManyRequests, string(limitUpgradeRate), "too many connection attempts from your address; retry later")
	}
	ident, err := s.auth.Authenticate(r)
	if err != nil {
		return admission{}, s.rejectAuth(ctx, err)
	}
	if s.revoked.revoked(ident, time.Time{}) {
		return admission{}, s.rejectAuth(ctx, &auth.Error{Status: http.StatusUnauthorized, Reason: "revoked", Message: "credential revoked"})
	}
	if !s.originAllowed(r, ident.Source == "cookie") {
		return admission{}, s.refuse(ctx, http.StatusForbidden, "origin_not_allowed", "cross-origin WebSocket refused for origin "+strconv.Quote(r.Header.Get("Origin")))
	}
	var up *UpgradeResult
	if s.cfg.Hooks.OnUpgrade != nil {
		if up, err = s.upgradeHook(ctx, r, ident, ip, connID, cid); err != nil {
			return admission{}, s.refuseUpgradeHook(ctx, err)
		}
		if up != nil && up.UserID != "" && up.UserID != ident.UserID {
			changed := *ident
			changed.UserID = up.UserID
			ident = &changed
			if s.revoked.revoked(ident, time.Time{}) {
				return admission{}, s.rejectAuth(ctx, &auth.Error{Status: http.StatusUnauthorized, Reason: "revoked", Message: "credential revoked"})
			}
		}
	}
	if which := s.limits.acquire(ident.UserID, ip); which != "" {
		return admission{}, s.refuse(ctx, http.StatusTooManyRequests, string(which), "connection limit reached ("+string(which)+")")
	}
	if n := s.cfg.MaxConnsPerUser; n > 0 {
		// The node-local count above is exact; this one spans the cluster
		// (through the presence registry) and is best effort.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		have, err := s.userConnections(pctx, ident.UserID)
		cancel()
		if err == nil && have >= n {
			s.limits.release(ident.UserID, ip)
			return admission{}, s.refuse(ctx, http.StatusTooManyRequests, string(limitConnsPerUser), "connection limit reached (conns_per_user, cluster-wide)")
		}
	}
	return admission{ident: ident, ip: ip, up: up}, nil
}

// newConn makes the conn of an admitted client that link reaches; r is
// the request that admitted it (its headers and context values are kept
// for hooks when hooks are set).
func (s *Server) newConn(adm *admission, r *http.Request, l link, connID, cid string) *conn {
	c := &conn{
		s:     s,
		link:  l,
		ident: keptIdentity(adm.ident),
		info: ConnInfo{
			ID:            connID,
			CorrelationID: cid,
			UserID:        adm.ident.UserID,
			RemoteAddr:    r.RemoteAddr,
			ConnectedAt:   time.Now(),
		},
	}
	// The connection outlives the request (the handler returns after the
	// welcome). Hooks get the request's headers and values, not its
	// cancellation; without hooks nothing of the request is kept, which
	// is most of an idle connection's memory.
	if s.cfg.Hooks.set() || s.cfg.MaxConnsPerIP > 0 {
		c.extra = &connExtra{}
		if s.cfg.Hooks.set() {
			c.extra.base = context.WithoutCancel(r.Context())
			c.info.Header = r.Header.Clone()
		}
		if adm.up != nil && len(adm.up.Data) > 0 {
			c.extra.base = context.WithValue(c.extra.base, connDataKey{}, adm.up.Data)
		}
		if s.cfg.MaxConnsPerIP > 0 {
			c.extra.ip = adm.ip
		}
	}
	return c
}

// refuseRemoteAnonymous refuses an anonymous client that came through an
// address other than loopback, and says once, loudly, how to allow it.
func (s *Server) refuseRemoteAnonymous(ctx context.Context, r *http.Request) *refusal {
	s.remoteRefusalLog.Do(func() {
		s.log.ErrorContext(ctx, "anonymous client refused on a non-loopback address: without authentication Herald "+
			"serves clients that connect over loopback only; set Config.Authenticator (e.g. auth/jwt), or "+
			"Config.InsecureNoAuth to accept anonymous clients from anywhere (herald serve: --jwt-secret or --insecure-no-auth)",
			"local_addr", fmt.Sprint(r.Context().Value(http.LocalAddrContextKey)), "remote_addr", r.RemoteAddr)
	})
	return s.refuse(ctx, http.StatusForbidden, "auth_required",
		"this server has no authentication configured and accepts anonymous clients on loopback only")
}

// refuse counts and logs a policy's refusal and returns it.
func (s *Server) refuse(ctx context.Context, status int, reason, msg string) *refusal {
	s.metrics.UpgradesRejected.WithLabelValues(reason).Inc()
	rf := &refusal{status: status, code: reason, message: msg}
	if status == http.StatusTooManyRequests {
		s.countLimit(limitName(reason)) // the 429s are refused by a bound: reason is its limitName
		rf.retryAfter = "1"
	}
	s.log.InfoContext(ctx, "upgrade refused", "reason", reason, "status", status)
	return rf
}

// rejectAuth counts and logs an authentication failure and returns its
// refusal.
func (s *Server) rejectAuth(ctx context.Context, err error) *refusal {
	status, reason, msg := http.StatusUnauthorized, "unauthorized", "authentication failed"
	var ae *auth.Error
	if errors.As(err, &ae) {
		if ae.Status != 0 {
			status = ae.Status
		}
		reason, msg = nonEmpty(ae.Reason, reason), nonEmpty(ae.Message, msg)
	}
	s.metrics.UpgradesRejected.WithLabelValues(reason).Inc()
	s.log.InfoContext(ctx, "upgrade refused", "reason", reason, "status", status)
	return &refusal{status: status, code: reason, message: msg, bearer: status == http.StatusUnauthorized}
}

// refuseUpgradeHook counts and logs a client OnUpgrade refused and
// returns its refusal.
func (s *Server) refuseUpgradeHook(ctx context.Context, err error) *refusal {
	status, code, msg := http.StatusForbidden, "connect_refused", err.Error()
	var ue *UpgradeError
	var hp errHookPanic
	switch {
	case errors.As(err, &ue):
		status, code, msg = nonZero(ue.Status, http.StatusForbidden), nonEmpty(ue.Code, code), nonEmpty(ue.Message, "connection refused")
	case errors.As(err, &hp):
		status, code, msg = http.StatusInternalServerError, "internal", "internal error"
	}
	rf := &refusal{status: status, code: code, message: msg}
	if status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout {
		rf.retryAfter = "1"
	}
	s.metrics.UpgradesRejected.WithLabelValues("on_upgrade").Inc() // codes are the application's: not a label
	s.log.InfoContext(ctx, "upgrade refused by on_upgrade hook", "reason", code, "status", status, "err", err)
	return rf
}
