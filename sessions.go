package herald

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/id"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/session"
)

// resumeRequest returns the session id and resume token a reconnecting
// client presents: headers X-Herald-Session-Id and X-Herald-Resume-Token,
// or query parameters sessionId and resumeToken (browsers). recover is
// set by X-Herald-Recover: 1 or the query parameter recover=1: the client
// joins its rooms that keep history itself, with its position, so the
// resume must not restore them (see restorable).
func resumeRequest(r *http.Request) (sessionID, token string, recover bool) {
	sessionID, token = r.Header.Get("X-Herald-Session-Id"), r.Header.Get("X-Herald-Resume-Token")
	recover = r.Header.Get("X-Herald-Recover") == "1"
	if sessionID == "" && r.URL.RawQuery != "" {
		q := r.URL.Query()
		sessionID, token = q.Get("sessionId"), q.Get("resumeToken")
		recover = recover || q.Get("recover") == "1"
	}
	return sessionID, token, recover
}

// secretBytes is the randomness of a session id and a resume token: 120
// bits, 24 characters, which fill a 24-byte allocation exactly (16
// bytes made 26 characters in a 32-byte one, kept by every connection).
const secretBytes = 15

// openSession resumes the session the client asked for when it exists,
// the token matches and it belongs to the same user; otherwise it starts a
// new one. A refused resume is not an error: the client learns it from
// welcome.resumed and starts afresh.
func (c *conn) openSession(ctx context.Context, wantID, token string) (session.Session, bool) {
	s := c.s
	now := c.info.ConnectedAt // moments ago (newConn): a clock read less
	if wantID != "" && token != "" {
		// Resume checks the token and swaps it in one step: of concurrent
		// resumes with one token, exactly one gets the session.
		next := id.New(secretBytes)
		if c.link.protocol() == protocolSocketIO {
			// A Socket.IO client sends its pid (session id and token)
			// back unchanged and sees its state as recovered only when
			// the reply's pid is the same: its token is kept.
			next = token
		}
		old, err := s.sessions.Resume(ctx, wantID, c.info.UserID, token, next)
		switch {
		case errors.Is(err, session.ErrNotFound):
			s.log.InfoContext(ctx, "resume refused: session unknown or expired", "session_id", wantID)
		case errors.Is(err, session.ErrMismatch):
			s.log.InfoContext(ctx, "resume refused: wrong resume token or another user's session", "session_id", wantID)
		case err != nil:
			s.log.WarnContext(ctx, "resume failed: session store", "err", err)
		default:
			old.Node, old.Conn, old.LastSeen = s.cfg.NodeID, c.info.ID, now
			return *old, true
		}
	}
	sid, token := id.NewPair(secretBytes)
	return session.Session{
		ID: sid, UserID: c.info.UserID, Node: s.cfg.NodeID, Conn: c.info.ID,
		ResumeToken: token, ConnectedAt: now, LastSeen: now,
	}, false
}

// restorable returns the rooms of a resumed session that the identity may
// still join, within the per-connection limit. For a client that
// recovers (see resumeRequest) it leaves out the rooms that keep
// history: restored here, their live messages would reach the client
// before the replay of what it missed, which its join with its position
// sends in order.
func (c *conn) restorable(rooms []string, recover bool) []string {
	var out []string
	for _, room := range rooms {
		if len(out) >= c.s.cfg.MaxRoomsPerConn || protocol.ValidateRoom(room) != nil || !c.canJoin(room) {
			continue
		}
		if recover && c.s.keepsHistory(room) {
			continue
		}
		out = append(out, room)
	}
	return out
}

// gapAway tells the client of a resumed session that it may have missed
// messages while it was away: a gap frame for each room it is back in
// without a replay (away: rooms without history, and rooms with history
// when it did not ask to recover them) and for its user room. Nothing
// held messages for the session between its last connection's end and
// this one; only history replays them, and the client's join with its
// position asks for that. Rooms gapLost already named (lost; "" for all)
// are not named twice. The frames follow the welcome.
func (c *conn) gapAway(ctx context.Context, away, lost []string) {
	if slices.Contains(lost, "") {
		return
	}
	rooms := make([]string, 0, len(away)+1)
	for _, room := range append(away, c.userRoom()) {
		if !slices.Contains(lost, room) && !slices.Contains(rooms, room) {
			rooms = append(rooms, room)
		}
	}
	for _, room := range rooms {
		c.link.gap(c, room)
	}
	c.s.metrics.Gaps.Add(float64(len(rooms)))
	c.s.log.InfoContext(ctx, "session resumed: the client is told it may have missed messages of the rooms it is back in without a replay (gap)",
		"rooms", rooms[:min(len(rooms), maxLoggedIDs)])
}

// restoreRooms joins the restorable rooms in the hub and returns those
// joined; their presence entries are the caller's to write (see
// storeOpened). A room the broker cannot subscribe to now is logged and
// left out; clients re-join their rooms after a reconnect anyway.
func (c *conn) restoreRooms(ctx context.Context, rooms []string) []string {
	var joined []string
	for _, room := range rooms {
		if _, err := c.s.hub.Join(ctx, room, c); err != nil {
			c.s.log.WarnContext(ctx, "resume: join failed", "room", room, "err", err)
			continue
		}
		c.addRoom(room)
		joined = append(joined, room)
	}
	return joined
}

// storeOpened writes what the store keeps of a connection that opens:
// its session, with its rooms, and its presence in its user room and in
// rooms (those it was put in before the welcome). For a resumed session
// it also takes what the session's previous connection carried (see
// carry.go) and returns it. With a session.Opener that is one round trip
// to the store whatever the number of rooms; without, one per write.
func (c *conn) storeOpened(ctx context.Context, rooms []string, resumed bool) (carried []session.Pending) {
	s := c.s
	if s.opener == nil {
		c.userRoomPresence(ctx, true)
		for _, room := range rooms {
			s.presenceAdd(ctx, c, room)
		}
		c.saveSession(ctx)
		if resumed {
			carried = c.takeCarried(ctx)
		}
		return carried
	}
	all := make([]string, 0, 1+len(rooms))
	all = append(append(all, c.userRoom()), rooms...)
	var err error
	rec := c.sessionRecord(c.rooms)
	if resumed {
		carried, err = s.opener.Reopen(ctx, rec, s.cfg.SessionTTL, all, s.presenceNode)
	} else {
		err = s.opener.Open(ctx, rec, s.cfg.SessionTTL, all, s.presenceNode)
	}
	putRecord(rec)
	if err != nil {
		s.log.WarnContext(ctx, "session save and presence add failed", "err", err)
	}
	for _, room := range all {
		s.announce(c, room, "join")
		s.reportPresence(ctx, c, room, true)
	}
	return carried
}

// storeJoined records that the connection joined room: its presence
// entry and its session with the room, in one round trip with a
// session.Opener. The read side calls it.
func (c *conn) storeJoined(ctx context.Context, room string) {
	s := c.s
	if s.opener == nil {
		s.presenceAdd(ctx, c, room)
		c.saveSession(ctx)
		return
	}
	rec := c.sessionRecord(c.rooms)
	err := s.opener.Open(ctx, rec, s.cfg.SessionTTL, []string{room}, s.presenceNode)
	putRecord(rec)
	if err != nil {
		s.log.WarnContext(ctx, "session save and presence add failed", "room", room, "err", err)
	}
	s.announce(c, room, "join")
	s.reportPresence(ctx, c, room, true)
}

// saveSession writes the connection's session with its current rooms.
// The read side calls it; others (the session refresh) hold identMu.
func (c *conn) saveSession(ctx context.Context) {
	if err := c.writeSession(ctx); err != nil {
		c.s.log.WarnContext(ctx, "session save failed", "err", err)
	}
}

func (c *conn) writeSession(ctx context.Context) error {
	rec := c.sessionRecord(c.rooms)
	defer putRecord(rec)
	return c.s.sessions.Save(ctx, rec, c.s.cfg.SessionTTL)
}

// sessionRecords are the records of sessions handed to the store, which
// keeps none of them (session.Store.Save, session.Opener): one serves
// save after save.
var sessionRecords = sync.Pool{New: func() any { return new(session.Session) }}

// sessionRecord returns the connection's session with rooms, in a record
// of sessionRecords that the caller gives back with putRecord once the
// store is done with it.
func (c *conn) sessionRecord(rooms []string) *session.Session {
	rec := sessionRecords.Get().(*session.Session)
	*rec = session.Session{
		ID: c.info.SessionID, UserID: c.info.UserID, Node: c.s.cfg.NodeID, Conn: c.info.ID,
		ResumeToken: c.resumeToken, Rooms: rooms, ConnectedAt: time.Unix(0, c.sessionStart), LastSeen: c.link.LastSeen(),
	}
	return rec
}

// putRecord gives rec back to sessionRecords, holding nothing.
func putRecord(rec *session.Session) {
	*rec = session.Session{}
	sessionRecords.Put(rec)
}

// endSession deletes the session after a clean, client-initiated close
// (1000), unless another connection resumed it meanwhile. Any other end
// (network loss, drain, going away) keeps it until its TTL so the client
// can resume on any node.
func (c *conn) endSession(ctx context.Context, code int, byServer bool) {
	s := c.s
	if code != protocol.CloseNormal || byServer {
		return
	}
	if cd, ok := s.sessions.(session.ConnDeleter); ok {
		if _, err := cd.DeleteConn(ctx, c.info.SessionID, c.info.ID); err != nil {
			s.log.WarnContext(ctx, "session delete failed", "err", err)
		}
		return
	}
	cur, err := s.sessions.Get(ctx, c.info.SessionID)
	if err != nil || cur.Conn != c.info.ID {
		return
	}
	if err := s.sessions.Delete(ctx, c.info.SessionID); err != nil {
		s.log.WarnContext(ctx, "session delete failed", "err", err)
	}
}

// presenceAdd and presenceRemove keep the presence registry in step with
// room membership, and announce it to the room when PresenceEvents is on.
func (s *Server) presenceAdd(ctx context.Context, c *conn, room string) {
	if err := s.presence.Add(ctx, room, s.presenceNode, c.info.ID, c.info.UserID); err != nil {
		s.log.WarnContext(ctx, "presence add failed", "room", room, "err", err)
	}
	s.announce(c, room, "join")
	s.reportPresence(ctx, c, room, true)
}

// userRoomPresence adds (add) or removes c's presence entry in its user
// room. The default presence (localPresence) records nothing, and a user
// room has no presence events or OnPresence calls: with it there is
// nothing to do, and the room's name is not even built (an allocation
// at each connect and each disconnect).
func (c *conn) userRoomPresence(ctx context.Context, add bool) {
	switch s := c.s; {
	case s.localPresence:
	case add:
		s.presenceAdd(ctx, c, c.userRoom())
	default:
		s.presenceRemove(ctx, c, c.userRoom())
	}
}

func (s *Server) presenceRemove(ctx context.Context, c *conn, room string) {
	if err := s.presence.Remove(ctx, room, s.presenceNode, c.info.ID); err != nil {
		s.log.WarnContext(ctx, "presence remove failed", "room", room, "err", err)
	}
	s.announce(c, room, "leave")
	s.reportPresence(ctx, c, room, false)
}

// reportPresence calls OnPresence when c's join made its user present in
// room (joined) or its leave made the user absent, as the presence
// registry sees it after c's own entry was written.
func (s *Server) reportPresence(ctx context.Context, c *conn, room string, joined bool) {
	if s.cfg.Hooks.OnPresence == nil || c.isUserRoom(room) {
		return
	}
	entries, err := s.presence.List(ctx, room)
	if err != nil {
		s.log.WarnContext(ctx, "presence read failed; presence hook not called", "room", room, "err", err)
		return
	}
	conns := 0
	for _, e := range entries {
		if e.User == c.info.UserID {
			conns = e.Connections
		}
	}
	if (joined && conns == 1) || (!joined && conns == 0) {
		if joined && c.extra != nil && c.extra.holdPresence {
			c.extra.heldPresence = append(c.extra.heldPresence, room)
			return
		}
		s.callPresenceHook(ctx, c, room, joined)
	}
}

func (s *Server) callPresenceHook(ctx context.Context, c *conn, room string, joined bool) {
	h := s.cfg.Hooks.OnPresence
	_ = s.callHook(ctx, "on_presence", func() error { h(ctx, &c.info, room, joined); return nil })
}

// PresenceEvent is the data of the "presence" event sent to a room's
// members when Config.PresenceEvents is on.
type PresenceEvent struct {
	Action       string `json:"action"` // "join" or "leave"
	User         string `json:"user"`
	ConnectionID string `json:"connectionId"`
}

func (s *Server) announce(c *conn, room, action string) {
	if !s.cfg.PresenceEvents || c.isUserRoom(room) {
		return
	}
	data := mustJSON(PresenceEvent{Action: action, User: c.info.UserID, ConnectionID: c.info.ID})
	if _, err := s.publish(context.WithoutCancel(c.ctx()), room, "presence", data, pubMeta{cid: c.info.CorrelationID}); err != nil {
		s.log.WarnContext(c.ctx(), "presence event not published", "room", room, "err", err)
	}
}

// serveAPIPresence answers GET /api/v1/rooms/{room}/presence.
func (s *Server) serveAPIPresence(a *apiRequest) {
	room := a.r.PathValue("room")
	if err := protocol.ValidateRoom(room); err != nil {
		a.fail(http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, 5*time.Second)
	defer cancel()
	users, err := s.presence.List(ctx, room)
	if err != nil {
		a.fail(http.StatusServiceUnavailable, protocol.CodeBrokerUnavailable, "presence store unavailable: "+err.Error())
		return
	}
	total := 0
	for _, u := range users {
		total += u.Connections
	}
	a.ok(map[string]any{"room": room, "users": users, "connections": total})
}

// userConnections counts user's connections on every live node.
func (s *Server) userConnections(ctx context.Context, user string) (int, error) {
	users, err := s.presence.List(ctx, protocol.UserRoom(user))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, u := range users {
		n += u.Connections
	}
	return n, nil
}
