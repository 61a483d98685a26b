package herald

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/heraldrt/herald/adapter/socketio"
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/internal/id"
	"github.com/heraldrt/herald/internal/logctx"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
	"github.com/heraldrt/herald/transport/engineio"
)

// Socket.IO as the core's second protocol adapter (see adapter.go): an
// Engine.IO server (transport/engineio) carries the connections, the
// Socket.IO adapter (adapter/socketio) their namespaces, and this file
// plugs each socket into the core as a conn whose link is a sioLink.
//
//   - A CONNECT is the upgrade: the handshake request, with the CONNECT's
//     auth.token as its bearer token when it has one, goes through the
//     same admission as a v1 upgrade (admit), and a refusal is a
//     CONNECT_ERROR {"message":…,"data":{"code":…,"status":…}}.
//   - The socket's herald:join, herald:leave, herald:publish,
//     herald:ack, herald:refresh and herald:ping events are the core's
//     operations, answered through the client's ack as v1 answers them
//     (the reply's data, or {"error":{"code":…,"message":…}}); other
//     events go to SocketIOConfig.OnEvent or Hooks.OnEvent.
//   - Room messages and direct messages reach the socket as events of
//     its namespace, encoded once per broadcast (sioCodec, one hub codec
//     slot per namespace).

// sioServer is a Server's Socket.IO endpoint.
type sioServer struct {
	eng         *engineio.Server
	sio         *socketio.Server
	codecs      map[string]*sioCodec // namespace → its codec (and hub codec slot)
	mainCodec   *sioCodec            // codecs["/"]
	maxBuffered int                  // bytes an Engine.IO socket holds for its client at most
	maxQueued   int                  // messages a history replay lets wait (Config.SendQueueSize)
	pending     sioPending           // what polling sessions in no namespace hold (MaxPendingBytes)
	srv         *Server
}

// sioClient is one Engine.IO connection: what its sockets' admission
// needs of the handshake request, kept until its first socket is
// accepted (or for good when several namespaces are served), and the
// link of its first socket. It is also the context the adapter passes
// to the connection's hooks (Value(sioClientKey{}) is the client), so
// that an idle connection holds one object here: no context.WithValue,
// no link allocated apart.
//
// It is the Engine.IO session's Owner too (engineio.Config.NewOwner):
// the session, the adapter's client with its first socket, and the
// link are one 256 B object for each connection, where they were a
// 176 B and an 80 B one. The server is not kept here: the link holds it.
type sioClient struct {
	req *http.Request // the handshake request: headers, URL, context values

	first sioLink // the link of the first socket accepted (its sock is set once used)

	// client is the adapter's Client of the connection
	// (socketio.Server.ServeEngineIn), with its first Socket inside.
	client socketio.Client

	// es is the Engine.IO session (the adapter client's connection).
	es engineio.Socket
}

// EngineSocket and OnConnection make a sioClient the Owner of its
// Engine.IO session. Until a socket is accepted, the first link's srv is
// the only place the client keeps its server (sioServer.newOwner).
func (cl *sioClient) EngineSocket() *engineio.Socket { return &cl.es }

func (cl *sioClient) OnConnection(es *engineio.Socket, r *http.Request) engineio.Handler {
	so := cl.first.srv
	if es.Transport() == "polling" {
		so.pending.bind(cl, so.srv.clientIP(r), sioPendingCharge(r)) // taken by sioAllow
	}
	return so.sio.ServeEngineIn(&cl.client, cl, so.eng, es)
}

// newOwner makes the client of a new Engine.IO session (its Owner).
func (so *sioServer) newOwner(r *http.Request) engineio.Owner {
	// The request (its headers, URL and context values) is kept for
	// admission until a CONNECT is accepted; the adapter's context holds
	// only the client, so that an idle connection does not keep the
	// handshake's context chain (hooks get the connection's context, with
	// the request's values when hooks are set: newConn). A shallow copy:
	// net/http changes neither its headers nor its URL once the handler
	// returned, and a deep one (Clone) cost about 0.9 KB per connection.
	// A request whose context is never cancelled (Serve's accept path) is
	// kept as it is: no copy.
	req := r
	if r.Context().Done() != nil {
		req = r.WithContext(context.WithoutCancel(r.Context()))
	}
	cl := &sioClient{req: req}
	cl.first.srv = so
	return cl
}

type sioClientKey struct{}

// Deadline, Done, Err and Value make a sioClient the context.Context of
// its connection in the adapter: never cancelled, with no values but the
// client itself.
func (*sioClient) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*sioClient) Done() <-chan struct{}       { return nil }
func (*sioClient) Err() error                  { return nil }
func (cl *sioClient) Value(key any) any {
	if key == (sioClientKey{}) {
		return cl
	}
	return nil
}

// newLink returns the link of a socket of cl, served by so: its first
// one inline (a connection usually has one socket), any later one
// apart.
func (cl *sioClient) newLink(so *sioServer, sock *socketio.Socket) *sioLink {
	l := &cl.first
	if l.sock != nil {
		l = new(sioLink)
	}
	l.sock, l.srv = sock, so
	return l
}

// codec returns the codec of namespace ns: looked up rather than held by
// each link (8 B less a connection), without a map lookup for "/".
func (so *sioServer) codec(ns string) *sioCodec {
	if ns == "/" {
		return so.mainCodec
	}
	return so.codecs[ns]
}

// sioSocketKey is the context key under which a Socket.IO connection's
// hooks find its socket (SocketIOSocket).
type sioSocketKey struct{}

// SocketIOSocket returns the Socket.IO socket of the connection whose
// hook got ctx, or nil for a v1 connection: hooks use it to emit to the
// client (s.Emit) or read the CONNECT's auth object (s.Auth).
func SocketIOSocket(ctx context.Context) *socketio.Socket {
	s, _ := ctx.Value(sioSocketKey{}).(*socketio.Socket)
	return s
}

// startSocketIO builds the Socket.IO endpoint and mounts it on s.mux.
func (s *Server) startSocketIO() error {
	cfg := &s.cfg.SocketIO
	recovery := cfg.Recovery
	so := &sioServer{srv: s, mainCodec: &sioCodec{ns: "/", slot: 1, recovery: recovery}, pending: sioPending{limit: cfg.MaxPendingBytes, perIP: cfg.MaxPendingBytesPerIP}}
	so.codecs = map[string]*sioCodec{"/": so.mainCodec}
	for i, ns := range cfg.Namespaces {
		so.codecs[ns] = &sioCodec{ns: ns, slot: 2 + i, recovery: recovery}
	}
	sioSrv, err := socketio.New(socketio.Config{
		Namespaces:     cfg.Namespaces,
		ConnectTimeout: cfg.ConnectTimeout,
		OnConnect:      s.sioConnect,
		OnEvent:        s.sioEvent,
		OnDisconnect:   s.sioDisconnect,
		OnProtocolError: func(ctx context.Context, err error) {
			if errors.Is(err, socketio.ErrConnectRefusals) {
				s.countLimit(limitSocketIOConnectRefusals)
			}
			s.log.InfoContext(ctx, "socket.io connection closed for a protocol error", "err", err)
		},
		OnClose: func(ctx context.Context) { so.pending.release(ctx.Value(sioClientKey{}).(*sioClient)) },
		Reading: s.reading, // binary packets waiting for their attachments
	})
	if err != nil {
		return err
	}
	so.sio = sioSrv
	ecfg := engineio.Config{
		PingInterval: cfg.PingInterval,
		PingTimeout:  cfg.PingTimeout,
		MaxPayload:   cfg.MaxPayload,
		WebSocket: transport.Options{
			Compression:          !s.cfg.DisableCompression,
			CompressionThreshold: s.cfg.CompressionThreshold,
			CompressionLevel:     s.cfg.CompressionLevel,
			ContextTakeover:      s.cfg.CompressionContextTakeover,
			SendQueueSize:        s.cfg.SendQueueSize,
			Queues:               s.queues,  // one budget with v1's connections
			Reading:              s.reading, // likewise
			Takeover:             s.takeover,
			WriteTimeout:         s.cfg.WriteTimeout,
		},
		MaxBufferedBytes: int(s.cfg.SendQueueBytes),
		Cookie:           cfg.Cookie,
		CORS:             engineio.CORS{Origins: cfg.CORSOrigins},
		AllowRequest:     s.sioAllow,
		MaxPolling:       max(cfg.MaxPollingSessions, 0), // -1: no cap
		PollingFull:      s.sioPollingFull,
		Logger:           s.log,
		NewOwner:         so.newOwner,
	}
	so.maxBuffered, so.maxQueued = ecfg.MaxBufferedBytes, s.cfg.SendQueueSize
	if so.eng, err = engineio.New(ecfg); err != nil {
		return err
	}
	s.sio = so
	s.mux.Handle(cfg.Path, so.eng)
	return nil
}

// sioFastPath returns the path whose Engine.IO WebSocket handshakes
// Serve's accept path reads and serves itself: SocketIO.Path when
// Socket.IO is on and the Server's routes send that path to the
// Engine.IO server (they do; checked so that the accept path can never
// serve a request the routes would give another handler), else "".
func (s *Server) sioFastPath() string {
	if s.sio == nil {
		return ""
	}
	p := s.cfg.SocketIO.Path
	_, pattern := s.mux.Handler(&http.Request{Method: http.MethodGet, URL: &url.URL{Path: p}, Host: "herald"})
	if pattern != p {
		return ""
	}
	return p
}

// sioAllow vets an Engine.IO handshake: none while the node drains, the
// per-IP upgrade rate, spent here rather than at each CONNECT, and, for a
// polling one, the bytes of the sessions in no namespace (sioPending),
// charged here and bound to the session by OnConnection, which follows
// at once (a handshake refused in between, only by Shutdown, leaves its
// charge behind).
func (s *Server) sioAllow(r *http.Request) error {
	if s.draining.Load() {
		s.metrics.UpgradesRejected.WithLabelValues("draining").Inc()
		return errors.New("server is shutting down; reconnect to another node")
	}
	if !s.limits.allowUpgrade(s.clientIP(r), time.Now()) {
		s.metrics.UpgradesRejected.WithLabelValues(string(limitUpgradeRate)).Inc()
		s.countLimit(limitUpgradeRate)
		return errors.New("too many connection attempts from your address; retry later")
	}
	if !isPollingHandshake(r) {
		return nil
	}
	switch s.sio.pending.take(s.clientIP(r), sioPendingCharge(r)) {
	case limitSocketIOPendingBytes:
		s.metrics.UpgradesRejected.WithLabelValues(string(limitSocketIOPendingBytes)).Inc()
		s.countLimit(limitSocketIOPendingBytes)
		return errors.New("too many Socket.IO connections waiting to join a namespace on this node; retry shortly")
	case limitSocketIOPendingBytesPerIP:
		s.metrics.UpgradesRejected.WithLabelValues(string(limitSocketIOPendingBytesPerIP)).Inc()
		s.countLimit(limitSocketIOPendingBytesPerIP)
		return errors.New("too many Socket.IO connections from your address waiting to join a namespace; retry shortly")
	}
	return nil
}

// sioPollingFull counts a polling handshake refused by
// SocketIOConfig.MaxPollingSessions, which the Engine.IO server checks
// before sioAllow (each handshake reserves its place atomically there,
// so that a burst of handshakes cannot all find the last place free),
// and gives the refusal's message: a draining node's, as sioAllow would
// have, while it drains.
func (s *Server) sioPollingFull(*http.Request) error {
	if s.draining.Load() {
		s.metrics.UpgradesRejected.WithLabelValues("draining").Inc()
		return errors.New("server is shutting down; reconnect to another node")
	}
	s.metrics.UpgradesRejected.WithLabelValues(string(limitSocketIOPollingSessions)).Inc()
	s.countLimit(limitSocketIOPollingSessions)
	return errors.New("too many Socket.IO long-polling sessions on this node; retry shortly")
}

// authRequest returns the request a CONNECT is admitted with: the
// handshake's, with the CONNECT's auth.token as its bearer token when it
// has one (a token in the handshake's Authorization header, cookie or
// query works too).
func (cl *sioClient) authRequest(authObj json.RawMessage) *http.Request {
	r := cl.req
	if len(authObj) == 0 {
		return r // nothing to decode into (which would be allocated)
	}
	if tok := authToken(authObj); tok != "" {
		r = r.Clone(r.Context())
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

// authToken returns the "token" string of a CONNECT's auth object.
func authToken(authObj json.RawMessage) string {
	var a struct {
		Token string `json:"token"`
	}
	if json.Unmarshal(authObj, &a) != nil {
		return ""
	}
	return a.Token
}

// sioConnect admits a CONNECT and sets its socket up as a core
// connection.
func (s *Server) sioConnect(ctx context.Context, sock *socketio.Socket, req *socketio.ConnectRequest) (socketio.ConnectResult, error) {
	cl := ctx.Value(sioClientKey{}).(*sioClient)
	if cl.req == nil {
		return socketio.ConnectResult{}, &socketio.ConnectError{Message: "connect to one namespace per connection"}
	}
	if !s.limits.enterUpgrade() {
		s.countOverloaded()
		return socketio.ConnectResult{}, &socketio.ConnectError{Message: "too many connections being admitted on this node; retry shortly",
			Data: mustJSON(map[string]any{"code": "overloaded", "status": http.StatusServiceUnavailable})}
	}
	defer s.limits.leaveUpgrade()
	r := cl.authRequest(req.Auth)
	connID := id.New(10)
	cid := requestID(r, connID)
	lctx := logctx.WithString(ctx, "correlation_id", cid) // one object, as v1's upgrade
	adm, no := s.admit(lctx, r, connID, cid, true)
	if no != nil {
		return socketio.ConnectResult{}, &socketio.ConnectError{Message: no.message,
			Data: mustJSON(map[string]any{"code": no.code, "status": no.status})}
	}
	l := cl.newLink(s.sio, sock)
	c := s.newConn(&adm, r, l, connID, cid)
	s.sio.pending.release(cl) // admitted: a connection, bounded as every other is
	if len(s.cfg.SocketIO.Namespaces) == 0 {
		cl.req = nil // one namespace: nothing else will be admitted
	}
	if !s.addConn(c) {
		s.limits.release(adm.ident.UserID, adm.ip)
		return socketio.ConnectResult{}, &socketio.ConnectError{Message: "server is shutting down; reconnect to another node",
			Data: mustJSON(map[string]any{"code": "draining", "status": http.StatusServiceUnavailable})}
	}
	var resumeID, resumeToken string
	var rec *sioRecovery
	if s.cfg.SocketIO.Recovery && req.PID != "" {
		resumeID, resumeToken, _ = strings.Cut(req.PID, ".")
		resumeToken, _, _ = strings.Cut(resumeToken, ".")
		rec = &sioRecovery{offset: req.Offset}
	}
	rooms := c.open(resumeID, resumeToken, rec != nil, adm.rooms())
	if rec != nil {
		rec.resumed, rec.rooms = rooms != nil || c.info.SessionID == resumeID, rooms
	}
	if err := c.sioOpened(ctx, rec); err != nil {
		// Refused: the socket never joins its namespace, the Engine.IO
		// connection stays for the client's next CONNECT.
		l.refused(err)
		c.cleanup()
		var ce *socketio.ConnectError
		if errors.As(err, &ce) {
			return socketio.ConnectResult{}, ce
		}
		return socketio.ConnectResult{}, &socketio.ConnectError{Message: err.Error()}
	}
	// The socket's id is the connection's (conn_id in logs): no other
	// string to keep.
	res := socketio.ConnectResult{SID: connID, Data: c}
	if s.cfg.SocketIO.Recovery {
		res.PID = c.info.SessionID + "." + c.resumeToken
		if rec != nil && rec.resumed {
			// The client sees its state as recovered when the pid is
			// the one it sent; a pid with another suffix (ignored when
			// it comes back) tells it what it missed is not all there.
			res.PID = req.PID
			if !rec.complete {
				res.PID = c.info.SessionID + "." + c.resumeToken + "." + id.New(3)
			}
		}
	}
	return res, nil
}

// sioRecovery is what a reconnecting Socket.IO client said it last saw,
// and how its recovery went.
type sioRecovery struct {
	offset   string
	resumed  bool     // its session was resumed
	rooms    []string // the session's rooms
	complete bool     // every room with history was recovered from the client's position
}

// sioOpened finishes a Socket.IO connection the core opened: the
// recovery of its rooms with history, then SocketIOConfig.OnConnect. A
// non-nil error refuses the CONNECT.
func (c *conn) sioOpened(ctx context.Context, rec *sioRecovery) error {
	if c.closing() {
		return errors.New("connection refused")
	}
	s := c.s
	if rec != nil && rec.resumed {
		rec.complete = c.sioRecover(rec)
	}
	if h := s.cfg.SocketIO.OnConnect; h != nil {
		l := c.link.(*sioLink)
		var herr error
		err := s.callHook(c.ctx(), "on_socketio_connect", func() error { herr = h(c.ctx(), &c.info, l.sock); return nil })
		if err != nil {
			return errors.New("internal error")
		}
		return herr
	}
	return nil
}

// sioRecover joins again the rooms with history of the resumed session:
// the room of the client's offset from that position, with the replay of
// what followed it, the others from their position now (a Socket.IO
// client keeps one offset, the last message's; see docs/socketio.md). It
// reports whether every room of the session was recovered from the
// client's position: a room without history that the resume joined
// again never is.
func (c *conn) sioRecover(rec *sioRecovery) bool {
	l := c.link.(*sioLink)
	room, pos, ok := decodeSioOffset(rec.offset)
	// A room without history the session was in is back without what
	// was published to it meanwhile (its gap event went out with the
	// resume): not recovered.
	complete := true
	for _, r := range rec.rooms {
		if !c.s.keepsHistory(r) && c.rooms.has(r) {
			complete = false
		}
	}
	for _, r := range c.restorableHistory(rec.rooms) {
		var from *broker.Position
		if ok && r == room {
			from = &pos
		}
		recovered := false
		ref := l.ref(func(a socketio.Args) error {
			var jr protocol.JoinReply
			if len(a.JSON) == 1 && json.Unmarshal(a.JSON[0], &jr) == nil && jr.Recovered != nil {
				recovered = *jr.Recovered
			}
			return nil
		})
		c.join(ref, r, from)
		l.takeAck(ref) // unanswered when the join failed (its error went to the client)
		complete = complete && recovered
	}
	return complete
}

// restorableHistory returns the rooms of rooms that keep history, that
// the connection may join and is not in.
func (c *conn) restorableHistory(rooms []string) []string {
	var out []string
	for _, room := range rooms {
		if !c.s.keepsHistory(room) || c.rooms.has(room) || protocol.ValidateRoom(room) != nil || !c.canJoin(room) {
			continue
		}
		out = append(out, room)
	}
	return out
}

// sioConn returns the conn of an accepted socket.
func sioConn(sock *socketio.Socket) *conn {
	c, _ := sock.Data().(*conn)
	return c
}

// sioDisconnect ends a socket's connection: the core cleans up.
func (s *Server) sioDisconnect(_ context.Context, sock *socketio.Socket, reason string) {
	c := sioConn(sock)
	if c == nil {
		return
	}
	c.link.(*sioLink).end(reason)
	go c.cleanup()
}

// Socket.IO events that are the core's operations.
const (
	sioJoin    = "herald:join"
	sioLeave   = "herald:leave"
	sioPublish = "herald:publish"
	sioAck     = "herald:ack"
	sioRefresh = "herald:refresh"
	sioPing    = "herald:ping"
)

// sioOps maps the herald:* events to v1 request types.
var sioOps = map[string]string{
	sioJoin: protocol.TypeJoin, sioLeave: protocol.TypeLeave, sioPublish: protocol.TypePublish,
	sioAck: protocol.TypeAck, sioRefresh: protocol.TypeRefresh, sioPing: protocol.TypePing,
}

// sioEvent serves a client's event, on the connection's read side.
func (s *Server) sioEvent(_ context.Context, sock *socketio.Socket, event string, args socketio.Args, ack socketio.AckFunc) {
	c := sioConn(sock)
	if c == nil {
		return
	}
	l := c.link.(*sioLink)
	n := len(event)
	for _, a := range args.JSON {
		n += len(a)
	}
	for _, b := range args.Binary {
		n += len(b)
	}
	ref := l.ref(ack)
	if !c.admit(n, ref) {
		return
	}
	typ, op := sioOps[event]
	if !op {
		s.countIn(protocolSocketIO, protocol.TypeEmit)
		c.awaitPublishes()
		if h := s.cfg.SocketIO.OnEvent; h != nil {
			l.takeAck(ref) // the hook answers the client's ack itself
			_ = s.callHook(c.ctx(), "on_socketio_event", func() error { h(c.ctx(), &c.info, sock, event, args, ack); return nil })
			return
		}
		if len(args.Binary) > 0 {
			c.sendError(ref, protocol.CodeBinaryUnsupported, "binary arguments need a SocketIOConfig.OnEvent hook; Hooks.OnEvent takes JSON")
			return
		}
		if err := protocol.ValidateEvent(event); err != nil {
			c.sendError(ref, protocol.CodeBadRequest, err.Error())
			return
		}
		c.emit(ref, event, sioEventData(args.JSON))
		return
	}
	req, err := sioRequest(typ, args)
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			pe = &protocol.Error{Code: protocol.CodeBadMessage, Message: err.Error()}
		}
		s.countIn(protocolSocketIO, "invalid")
		c.awaitPublishes()
		c.sendError(ref, pe.Code, pe.Message)
		return
	}
	s.countIn(protocolSocketIO, req.Type)
	if req.Type != protocol.TypePublish {
		c.awaitPublishes()
	}
	switch req.Type {
	case protocol.TypeJoin:
		var from *broker.Position
		if req.Recovering() {
			from = &broker.Position{Offset: req.Offset, Epoch: req.Epoch, MsgID: req.MsgID}
		}
		c.join(ref, req.Room, from)
	case protocol.TypeLeave:
		c.leave(ref, req.Room)
	case protocol.TypePublish:
		c.publish(ref, req.Room, req.Event, req.Data, req.Ack, req.IdempotencyKey)
	case protocol.TypeAck:
		c.ack(ref, req.MsgIDs)
	case protocol.TypeRefresh:
		c.refresh(ref, req.Token)
	case protocol.TypePing:
		c.ping(ref)
	}
}

// sioRequest decodes the argument of a herald:* event, a JSON object
// with the fields of the v1 request of type typ, with v1's checks.
func sioRequest(typ string, args socketio.Args) (*protocol.Request, error) {
	if len(args.Binary) > 0 || len(args.JSON) > 1 {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: "herald:* events take one JSON object"}
	}
	obj := json.RawMessage(`{}`)
	if len(args.JSON) == 1 {
		obj = bytes.TrimSpace(args.JSON[0])
	}
	if len(obj) < 2 || obj[0] != '{' {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: "herald:* events take one JSON object"}
	}
	// Decoded as the v1 request of type typ, without a copy of the
	// object with the type written in: a "type" of the client's own is
	// kept, and refused below unless it is typ.
	req, err := protocol.DecodeAs(typ, obj)
	if err != nil {
		return nil, err
	}
	if req.Type != typ {
		return nil, &protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("unexpected \"type\" %q", req.Type)}
	}
	req.ID = nil
	return req, nil
}

// sioEventData is the data Hooks.OnEvent gets for an event's arguments:
// the single argument, nothing, or the array of several.
func sioEventData(args []json.RawMessage) json.RawMessage {
	switch len(args) {
	case 0:
		return nil
	case 1:
		if bytes.Equal(bytes.TrimSpace(args[0]), []byte("null")) {
			return nil
		}
		return args[0]
	}
	b := []byte{'['}
	for i, a := range args {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, a...)
	}
	return append(b, ']')
}
