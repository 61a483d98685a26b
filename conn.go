package herald

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldrt/herald/auth"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/internal/id"
	"github.com/heraldrt/herald/internal/logctx"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
)

// conn is the core's side of one client connection, whatever protocol it
// speaks: its identity, rooms, acks, session and limits. It reaches its
// client only through its link (see adapter.go): protocol v1 over a
// WebSocket today. Its read side (the adapter's request handling, one
// request at a time) owns rooms; other goroutines only call Deliver (via
// the hub) and closeWith.
type conn struct {
	s    *Server
	link link
	info ConnInfo
	// extra holds what only some connections need; nil for the others.
	extra *connExtra

	rooms roomSet // joined rooms, own user room excluded; changed by the read side only (see addRoom)
	// The session's token and start in Unix nanoseconds (its id is
	// info.SessionID), set by run before the read loop; saveSession
	// writes them back.
	resumeToken  string
	sessionStart int64

	identMu sync.Mutex // guards ident, flagWarned; rooms change under it
	// ident is replaced by refresh. It is nil for a plain anonymous
	// identity (see keptIdentity), which identity rebuilds from the user
	// id: such a connection need not hold 128 bytes for its user id alone.
	ident *auth.Identity
	// expSlot is 1 + the connection's index in Server.expiries' heap, 0
	// when it has no token clock (guarded by expiryClock.mu; changed
	// only with identMu held too, except when the clock takes it out to
	// run it).
	expSlot int32

	// limited counts the frames the message bucket refused since the last
	// one it let through (read loop only).
	limited uint32
	// flags holds flagSession, stored once run has set info.SessionID
	// (other goroutines, log lines and the session refresh, read the id
	// after loading it; see sessionID), flagFeeds, stored once the
	// connection has feeds in Server.feeds (see recover.go), the close
	// the server decided (flagClosing, flagGaveUp; see claimClose) and
	// flagWarned (see expiry.go). Bits, not fields: conn stays in its
	// 256 B size class.
	flags     atomic.Uint32
	msgBucket tokenBucket // read loop only

	acks acks
}

// Bits of conn.flags.
const (
	flagSession = 1 << iota
	flagFeeds
	// flagClosing is set once, by the first claimClose, before the
	// socket goes away: the server closed the connection.
	flagClosing
	// flagGaveUp marks a connection the server gave up on (with
	// flagClosing): its frames are no longer handled while the close
	// runs.
	flagGaveUp
	// flagWarned: the client was told its token expires (under identMu).
	flagWarned
)

// connExtra is what a connection keeps only when a feature needs it, so
// that the others do not carry the fields.
type connExtra struct {
	// base is the upgrade request's context without its cancellation:
	// hooks get its values (set only when hooks are).
	base context.Context
	// ip is the address counted against MaxConnsPerIP (set only when
	// it is).
	ip string
	// holdPresence is set while run joins rooms before the welcome: the
	// OnPresence calls of those joins wait in heldPresence until
	// OnConnect has run, so that the application hears of the connection
	// before its rooms (run's goroutine only).
	holdPresence bool
	heldPresence []string
}

// Subprotocol is the WebSocket subprotocol Herald's protocol v1 answers to.
// Clients need not offer it; a browser that passes its token in
// Sec-WebSocket-Protocol must offer it too, since the server echoes it.
const Subprotocol = "herald.v1"

// maxRequestIDLen bounds an X-Request-ID we are willing to reuse.
const maxRequestIDLen = 128

// requestIDKey is X-Request-ID as the keys of an http.Header spell it:
// looked up and set with it, the name is not canonicalized (and copied)
// on every request.
const requestIDKey = "X-Request-Id"

// requestID returns the request's X-Request-ID when it is one we can
// reuse (printable ASCII, at most maxRequestIDLen bytes), else made.
func requestID(r *http.Request, made string) string {
	v := ""
	if vs := r.Header[requestIDKey]; len(vs) > 0 {
		v = vs[0]
	}
	if v == "" || len(v) > maxRequestIDLen {
		return made
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return made
		}
	}
	return v
}

// handshakeErrorCode is the error code of a refused handshake's JSON body.
func handshakeErrorCode(status int) string {
	switch status {
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusUpgradeRequired:
		return "unsupported_version"
	}
	return "bad_handshake"
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	// Without an X-Request-ID of its own, the connection's id serves as
	// its correlation id: one string fewer kept per connection.
	connID := id.New(10)
	cid := requestID(r, connID)
	ctx := logctx.WithString(r.Context(), "correlation_id", cid)
	// Every answer carries X-Request-ID: the 101 (respHeader below), and
	// a refusal, which sets it on w's header when it is written. An
	// upgrade through Serve's accept path never writes w's header: a map
	// made for it up front would be made for nothing.
	tell := func() { w.Header()[requestIDKey] = []string{cid} }

	// A request that is no WebSocket upgrade at all is told so first,
	// before authentication or limits are spent on it.
	hs, herr := transport.ValidHandshake(r)
	if herr != nil {
		s.metrics.UpgradesRejected.WithLabelValues("bad_handshake").Inc()
		tell()
		herr.SetHeaders(w.Header())
		writeJSONError(w, herr.Status, handshakeErrorCode(herr.Status), herr.Message)
		return
	}
	if !s.limits.enterUpgrade() {
		tell()
		s.refuseOverloaded(ctx, w)
		return
	}
	admitting := true
	leave := func() {
		if admitting {
			admitting = false
			s.limits.leaveUpgrade()
		}
	}
	defer leave()
	adm, no := s.admit(ctx, r, connID, cid, false)
	if no != nil {
		tell()
		no.writeHTTP(w)
		return
	}
	handedOver := false // once c runs, its cleanup releases the slot
	defer func() {
		if !handedOver {
			s.limits.release(adm.ident.UserID, adm.ip)
		}
	}()

	// The 101's X-Request-ID, from a pooled header: the transport only
	// copies it into the response.
	rh := respHeaders.Get().(*respHeader)
	defer rh.put()
	rh.id[0] = cid
	respHeader := rh.h
	if _, taker := w.(transport.ConnTaker); !taker {
		// net/http's hijack can still fail, answered on w. A ConnTaker
		// hands its connection over once the handshake checked above
		// passes, and answers nothing.
		tell()
	}
	// Held: the 101 goes out with the welcome, in one write (run sends
	// it once the session is open and the rooms are joined).
	// The handshake checked above is not checked again.
	ws, err := s.upgrader.UpgradeHeldHandshake(w, hs, respHeader)
	if err != nil {
		s.metrics.UpgradesRejected.WithLabelValues("bad_handshake").Inc()
		s.log.InfoContext(ctx, "upgrade failed", "err", err, "remote", r.RemoteAddr, "conn_id", connID, "user", adm.ident.UserID)
		return
	}
	c := s.newConn(&adm, r, v1Link{ws}, connID, cid)
	resumeID, resumeToken, recover := resumeRequest(r)
	if !s.addConn(c) {
		// Shutdown began between the check above and now.
		_ = ws.Close(protocol.CloseGoingAway, "server shutdown")
		<-ws.Done()
		return
	}
	// The handler returns once the welcome is sent; the connection lives
	// on (see serveReads) and removes itself in cleanup.
	handedOver = true
	c.open(resumeID, resumeToken, recover, adm.rooms())
	leave() // admitted: the welcome is out
	c.startReads()
}

// respHeader is the header of a 101 that carries X-Request-ID: a map
// made once per pooled value, whose one value is set per upgrade.
type respHeader struct {
	h  http.Header
	id [1]string
}

var respHeaders = sync.Pool{New: func() any {
	rh := new(respHeader)
	rh.h = http.Header{requestIDKey: rh.id[:]}
	return rh
}}

func (rh *respHeader) put() {
	rh.id[0] = ""
	respHeaders.Put(rh)
}

// countOverloaded counts a connection refused over
// Config.MaxUpgradesInFlight, by either protocol.
func (s *Server) countOverloaded() {
	s.metrics.UpgradesRejected.WithLabelValues("overloaded").Inc()
	s.countLimit(limitUpgradesInFlight)
}

// refuseOverloaded answers an upgrade over Config.MaxUpgradesInFlight:
// 503 at once, with a Retry-After the clients' own jitter spreads.
func (s *Server) refuseOverloaded(ctx context.Context, w http.ResponseWriter) {
	s.countOverloaded()
	s.log.DebugContext(ctx, "upgrade refused", "reason", "overloaded", "status", http.StatusServiceUnavailable)
	w.Header().Set("Retry-After", "1")
	writeJSONError(w, http.StatusServiceUnavailable, "overloaded", "too many connections being admitted on this node; retry shortly")
}

// onLoopback reports whether r reached the server on a loopback address
// (or a Unix socket): the local address of its connection, not the
// client's, so that a listener on all interfaces still serves local tools.
func onLoopback(r *http.Request) bool {
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	case net.Addr:
		host, _, err := net.SplitHostPort(a.String())
		ip := net.ParseIP(host)
		return err == nil && ip != nil && ip.IsLoopback()
	}
	return false
}

// open sets the connection up once its adapter admitted it and made its
// link: it resumes the session resumeID when resumeToken matches
// (recover: see resumeRequest), joins the rooms OnUpgrade named, sends
// the welcome through the link and runs OnConnect. The adapter then
// serves the client's requests; cleanup runs when the link is done. It
// returns the rooms of the session it resumed (nil for a new one): with
// recover, those that keep history are the adapter's to join.
func (c *conn) open(resumeID, resumeToken string, recover bool, rooms []string) (resumedRooms []string) {
	s := c.s
	s.metrics.ConnectionsOpened.Inc()
	s.metrics.Connections.Inc()
	pm := s.cm.proto(c.link.protocol())
	pm.opened.Inc()
	pm.conns.Inc()
	if s.log.Enabled(c.ctx(), slog.LevelInfo) { // not even its arguments boxed when off
		s.log.InfoContext(c.ctx(), "connected", "remote", c.info.RemoteAddr, "protocol", c.link.protocol(), "compression", c.link.Compressed())
	}

	// A stalled store or broker delays the welcome by BackendTimeout at
	// most: what has not finished by then is logged and left undone.
	// Counted from ConnectedAt, read just before (one clock read less).
	bctx := &storeCtx{parent: c.ctx(), deadline: c.info.ConnectedAt.Add(s.cfg.BackendTimeout)}
	sess, resumed := c.openSession(bctx, resumeID, resumeToken)
	c.resumeToken = sess.ResumeToken
	if sess.ConnectedAt.IsZero() {
		c.sessionStart = time.Now().UnixNano()
	} else {
		c.sessionStart = sess.ConnectedAt.UnixNano()
	}
	c.info.SessionID = sess.ID // written once, before it is published
	c.flags.Or(flagSession)
	// Rooms are joined before welcome, so that once a client has its
	// welcome, messages to it and to its rooms reach it; deliveries that
	// come first are held in the send queue behind the welcome.
	c.link.Hold()
	if c.extra != nil && s.cfg.Hooks.OnPresence != nil {
		c.extra.holdPresence = true
	}
	s.hub.JoinUser(c.info.UserID, c) // keyed by the id string c holds
	var restored []string
	if resumed {
		resumedRooms = sess.Rooms
		restored = c.restoreRooms(bctx, c.restorable(sess.Rooms, recover))
		s.log.InfoContext(c.ctx(), "session resumed", "rooms", len(restored))
	}
	away := restored[:len(restored):len(restored)] // the session's rooms, joined again without a replay
	if len(rooms) > 0 {
		restored = append(restored, c.restoreRooms(bctx, c.unjoined(rooms))...)
	}
	// The session, the presence entries and, for a resume, what the
	// session carried: one round trip with a session.Opener, however many
	// rooms. The take comes after the save, which makes the session this
	// connection's (see carry.go); the redelivery is queued behind the
	// welcome.
	carried := c.storeOpened(bctx, restored, resumed)
	var lost []string
	if len(carried) > 0 {
		lost = c.redeliver(bctx, carried)
	}
	c.gapLost(bctx, lost)
	if resumed {
		c.gapAway(bctx, away, lost)
	}
	bctx.cancel()
	hb := s.cfg.HeartbeatInterval
	if hb < 0 {
		hb = 0
	}
	c.link.welcome(c, &welcome{Rooms: restored, Resumed: resumed, Heartbeat: hb})
	c.scheduleExpiry()
	// A revocation recorded after admission checked the credential but
	// before addConn put the connection in the index found nothing to
	// close: it is seen here. (One recorded later finds the connection
	// in the index: Revocations.add comes before the index lookup, and
	// addConn before this check.)
	if c.revokedAt(time.Time{}) { // now
		s.log.InfoContext(c.ctx(), "credential revoked while connecting")
		c.closeWith(protocol.CloseRevoked, "token revoked")
	}
	if h := s.cfg.Hooks.OnConnect; h != nil {
		err := s.callHook(c.ctx(), "on_connect", func() error { return h(c.ctx(), &c.info) })
		if err != nil {
			reason := err.Error()
			if _, ok := err.(errHookPanic); ok {
				reason = "internal error"
			}
			s.log.InfoContext(c.ctx(), "connection refused by on_connect hook", "err", err)
			c.closeWith(protocol.ClosePolicyViolation, reason)
		}
	}
	if c.extra != nil && c.extra.holdPresence {
		c.extra.holdPresence = false
		held := c.extra.heldPresence
		c.extra.heldPresence = nil
		for _, room := range held {
			s.callPresenceHook(c.ctx(), c, room, true)
		}
	}
	return resumedRooms
}

// ctx is the connection's context: never cancelled, the upgrade
// request's values when hooks are set, and log lines that carry the
// connection's attributes. It is c itself: no allocation.
func (c *conn) ctx() context.Context { return (*connContext)(c) }

// connContext is a conn as its context.Context (see conn.ctx).
type connContext conn

// Deadline implements context.Context: none.
func (*connContext) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context: never cancelled.
func (*connContext) Done() <-chan struct{} { return nil }

// Err implements context.Context.
func (*connContext) Err() error { return nil }

// Value implements context.Context: the connection is the logctx.Source
// of its log lines; other keys are looked up in the upgrade request's
// context when hooks are set.
func (c *connContext) Value(key any) any {
	if key == (logctx.Key{}) {
		return (*conn)(c)
	}
	if key == (sioSocketKey{}) {
		if l, ok := c.link.(*sioLink); ok {
			return l.sock
		}
		return nil
	}
	if c.extra != nil && c.extra.base != nil {
		return c.extra.base.Value(key)
	}
	return nil
}

// sessionID returns the connection's session id once run has set it.
func (c *conn) sessionID() (string, bool) {
	if c.flags.Load()&flagSession == 0 {
		return "", false
	}
	return c.info.SessionID, true
}

// userRoom returns the name of the connection's own user room, built
// when needed (presence) rather than kept: the hub keeps the user room
// by the user id (Hub.JoinUser).
func (c *conn) userRoom() string { return protocol.UserRoom(c.info.UserID) }

// isUserRoom reports whether room is the connection's own user room,
// without building its name.
func (c *conn) isUserRoom(room string) bool {
	return protocol.IsUserRoomOf(room, c.info.UserID)
}

// LogAttrs implements logctx.Source: every log line about the connection
// carries its ids, put together when the line is logged.
func (c *conn) LogAttrs() []slog.Attr {
	a := make([]slog.Attr, 3, 4)
	a[0] = slog.String("correlation_id", c.info.CorrelationID)
	a[1] = slog.String("conn_id", c.info.ID)
	a[2] = slog.String("user", c.info.UserID)
	if sid, ok := c.sessionID(); ok {
		a = append(a, slog.String("session_id", sid))
	}
	if p := c.link.protocol(); p != protocolV1 {
		a = append(a, slog.String("protocol", p))
	}
	return a
}

// cleanup runs once the socket is gone: leave rooms, drop the session,
// count and log the close, tell the application.
func (c *conn) cleanup() {
	s := c.s
	defer s.removeConn(c)
	defer s.limits.release(c.info.UserID, c.ip())
	// Publications the client sent before it went are still given to
	// the broker; nothing queues any more.
	c.awaitPublishes()
	c.forgetPipeline()
	<-c.link.Done()
	c.stopExpiry()
	// Rooms are left with a context of their own (c's is never
	// cancelled).
	ctx := newStoreCtx(c.ctx(), 5*time.Second)
	defer ctx.cancel()
	_ = s.hub.LeaveUser(c.info.UserID, c) // not a member only if it never joined
	c.userRoomPresence(ctx, false)
	for _, room := range c.rooms {
		if err := s.hub.Leave(ctx, room, c.member(room)); err != nil {
			s.log.WarnContext(ctx, "leave failed", "room", room, "err", err)
		}
		s.presenceRemove(ctx, c, room)
	}
	c.dropFeeds()
	code, reason, label := c.closeStatus()
	byServer := c.closing()
	c.endSession(ctx, code, byServer || s.draining.Load())
	if s.draining.Load() && label == "client_close" {
		label = "server_shutdown" // the client left because the drain told it to
	}
	// What the client had not acknowledged goes with its session to the
	// connection that resumes it, on any node; unless the client ended
	// the session (a clean close), or the store cannot keep it.
	// A connection given up for its unacknowledged messages or as a slow
	// consumer hands nothing on: its next connection would choke on it.
	sessionKept := (code != protocol.CloseNormal || byServer || s.draining.Load()) &&
		label != "slow_consumer" && !c.gaveUp()
	if ids, msgs := c.dropPending(); len(ids) > 0 {
		if sessionKept && s.carryPending(ctx, c, msgs) {
			s.metrics.AcksCarried.Add(float64(len(ids)))
			s.log.InfoContext(ctx, "connection ended with unacknowledged messages; kept with the session for the connection that resumes it",
				"messages", len(ids))
		} else {
			s.metrics.AcksDropped.Add(float64(len(ids)))
			s.log.WarnContext(ctx, "connection ended with unacknowledged messages; they are not redelivered",
				"messages", len(ids), "msg_ids", ids[:min(len(ids), maxLoggedIDs)])
		}
	}

	s.metrics.Connections.Dec()
	s.cm.closed.get(label).Inc()
	pm := s.cm.proto(c.link.protocol())
	pm.conns.Dec()
	pm.closed.get(label).Inc()
	switch label {
	case "heartbeat_timeout":
		s.metrics.HeartbeatTerminated.Inc()
		s.log.WarnContext(ctx, "connection terminated: no pong within heartbeat timeout", "code", code, "reason", reason)
	case "slow_consumer":
		s.metrics.SlowConsumers.Inc()
		s.log.WarnContext(ctx, "connection closed: slow consumer", "code", code, "reason", reason)
	default:
		if s.log.Enabled(ctx, slog.LevelInfo) {
			s.log.InfoContext(ctx, "disconnected", "code", code, "reason", reason, "cause", label,
				"duration_ms", time.Since(c.info.ConnectedAt).Milliseconds())
		}
	}
	if h := s.cfg.Hooks.OnDisconnect; h != nil {
		_ = s.callHook(ctx, "on_disconnect", func() error { h(ctx, &c.info, code, reason); return nil })
	}
}

// closeStatus derives the close code, reason and metric label from how the
// transport ended.
func (c *conn) closeStatus() (code int, reason, label string) {
	err := c.link.Err()
	if ce, ok := err.(*transport.CloseError); ok {
		// The usual end (the peer's close, or the server's), which the
		// sentinels below never are: what errors.As would find, without
		// walking the chain once per sentinel.
		return ce.Code, ce.Reason, closeLabel(ce.Code, c.closing())
	}
	return c.wrappedCloseStatus(err)
}

// wrappedCloseStatus is closeStatus for an err that is not a bare
// *transport.CloseError.
func (c *conn) wrappedCloseStatus(err error) (code int, reason, label string) {
	var ce *transport.CloseError
	switch {
	case errors.Is(err, transport.ErrHeartbeatTimeout):
		return protocol.CloseAbnormal, "heartbeat timeout", "heartbeat_timeout"
	case errors.Is(err, transport.ErrSlowConsumer):
		reason = "slow consumer"
		if errors.As(err, &ce) {
			reason = ce.Reason // which bound
		}
		return protocol.CloseSlowConsumer, reason, "slow_consumer"
	case errors.Is(err, errInternal):
		return protocol.CloseInternalError, "internal error", "internal_error"
	case errors.As(err, &ce):
		byServer := c.closing()
		return ce.Code, ce.Reason, closeLabel(ce.Code, byServer)
	case errors.Is(err, errDrainTerminated):
		return protocol.CloseAbnormal, "drain timeout", "server_shutdown"
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return protocol.CloseAbnormal, "connection lost", "connection_lost"
	default:
		return protocol.CloseAbnormal, "connection lost", "connection_lost"
	}
}

func closeLabel(code int, byServer bool) string {
	switch code {
	case protocol.CloseNormal, protocol.CloseGoingAway, transport.CloseNoStatus:
		if byServer {
			if code == protocol.CloseGoingAway {
				return "server_shutdown"
			}
			return "server_close"
		}
		return "client_close"
	case protocol.CloseProtocolError:
		return "protocol_error"
	case protocol.CloseInvalidPayload:
		return "invalid_payload"
	case protocol.CloseMessageTooBig:
		return "message_too_big"
	case protocol.ClosePolicyViolation:
		return "policy_violation"
	case protocol.CloseDisconnected:
		return "disconnected"
	case protocol.CloseTryAgainLater:
		return "try_again_later"
	case protocol.CloseSlowConsumer:
		return "slow_consumer"
	}
	if byServer {
		return "server_close"
	}
	return "client_close"
}

var (
	errDrainTerminated = errors.New("herald: drain timeout")
	errInternal        = errors.New("herald: internal error")
)

// closeWith starts a graceful close with code and reason and returns at
// once. The handshake (up to the transport's 5 s grace) runs on a goroutine
// that ends with the connection, before the connection's handler returns.
// It reports whether this call started the close (false when one was
// already under way).
func (c *conn) closeWith(code int, reason string) (first bool) {
	if first = c.claimClose(code); first {
		c.startClose(code, reason)
	}
	return first
}

// claimClose records that the server closes the connection (with
// code, or closeGaveUp); it reports false when a close was already
// decided. The caller that wins then calls startClose.
func (c *conn) claimClose(code int) bool {
	bits := uint32(flagClosing)
	if code == closeGaveUp {
		bits |= flagGaveUp
	}
	for {
		old := c.flags.Load()
		if old&flagClosing != 0 {
			return false
		}
		if c.flags.CompareAndSwap(old, old|bits) {
			return true
		}
	}
}

// closing reports whether the server decided to close the connection.
func (c *conn) closing() bool { return c.flags.Load()&flagClosing != 0 }

// gaveUp reports whether the server gave up on the connection (see
// closeGaveUp).
func (c *conn) gaveUp() bool { return c.flags.Load()&flagGaveUp != 0 }

// startClose runs the closing handshake without blocking the caller.
func (c *conn) startClose(code int, reason string) {
	go func() { _ = c.link.Close(code, reason) }()
}

// Deliver implements hub.Member.
// A room that keeps history reaches the connection through its feed
// (roomFeed.Deliver) instead.
func (c *conn) Deliver(d *hub.Delivery) {
	c.deliverNow(d)
}

// deliverNow queues d to the connection, tracking it when it asks for an
// ack.
func (c *conn) deliverNow(d *hub.Delivery) {
	// A full queue makes the transport close the connection as a slow
	// consumer; the cleanup path counts and logs it.
	_, codec := c.link.direct()
	f := d.Frame(codec)
	if d.Msg.Ack && c.link.protocol() == protocolV1 {
		// Socket.IO clients do not acknowledge by msgId: their messages
		// are delivered once (docs/socketio.md).
		if limit := c.track(d.Msg.MsgID, f); limit != "" {
			c.overPendingAcks(limit)
			return
		}
	}
	_ = c.link.Send(f)
}

// closeGaveUp, given to claimClose, marks a connection the server gave
// up on (flagGaveUp): its frames are no longer handled while the close
// runs. It is no code sent on the wire (the transport's error carries
// that).
const closeGaveUp = -1

// overPendingAcks closes a connection whose message could not be tracked
// for its ack: 4008 when the connection itself holds too many, 1013 when
// the node's pending messages as a whole are at their bound. The message
// is not sent; what the connection had pending is dropped (and counted)
// as it ends.
func (c *conn) overPendingAcks(limit limitName) {
	code, reason := protocol.CloseSlowConsumer, "too many unacknowledged messages"
	if limit == limitNodePendingAckBytes {
		code, reason = protocol.CloseTryAgainLater, "server busy: too many unacknowledged messages on this node"
	}
	if c.claimClose(closeGaveUp) {
		c.s.countLimit(limit)
		cfg := &c.s.cfg
		c.s.log.WarnContext(c.ctx(), "closing: too many unacknowledged messages", "limit", string(limit),
			"max_pending_acks", cfg.MaxPendingAcks, "max_pending_ack_bytes", cfg.MaxPendingAckBytes,
			"max_node_pending_ack_bytes", cfg.MaxNodePendingAckBytes)
		// A graceful close: the client still reads, and one that is
		// still sending only sees the close frame if the server waits
		// for its reply (closing at once would make the kernel reset the
		// connection, discarding what the client had not read yet).
		c.startClose(code, reason)
	}
}

// Direct implements hub.DirectMember: messages without acks go straight
// to the socket's queue.
func (c *conn) Direct() (hub.Sender, hub.Codec) { return c.link.direct() }

// retryAfter returns the per-client jittered reconnect delay for a drain.
func (s *Server) retryAfter() time.Duration {
	base := s.cfg.DrainRetryAfter
	return base/2 + time.Duration(rand.Int64N(int64(base)+1))
}

// roomSet is the set of rooms a connection joined, kept sorted: a slice
// costs a fraction of a map for the few rooms a connection usually joins.
// add and remove make a new array rather than change the old one, so a
// roomSet once handed out never changes: the session store keeps the
// one it was saved with (see session.Store.Save).
type roomSet []string

func (rs roomSet) has(room string) bool {
	_, ok := slices.BinarySearch(rs, room)
	return ok
}

// add reports whether room was not in the set yet.
func (rs *roomSet) add(room string) bool {
	i, ok := slices.BinarySearch(*rs, room)
	if !ok {
		*rs = slices.Insert(slices.Clip(*rs), i, room) // a new array
	}
	return !ok
}

// remove reports whether room was in the set.
func (rs *roomSet) remove(room string) bool {
	i, ok := slices.BinarySearch(*rs, room)
	if ok {
		if len(*rs) == 1 {
			*rs = nil
		} else {
			*rs = slices.Concat((*rs)[:i], (*rs)[i+1:]) // a new array
		}
	}
	return ok
}
