package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	sio "github.com/heraldrt/herald/protocol/socketio"
	"github.com/heraldrt/herald/transport"
)

// EngineConn is what the adapter needs of an Engine.IO connection. Its
// send methods queue one Engine.IO message each and must not block (a
// connection whose queue is full is the Engine.IO layer's to close, as a
// slow client); they return an error once the connection is closed.
type EngineConn interface {
	// SendText queues a text message: one encoded Socket.IO packet.
	SendText(msg []byte) error
	// SendBinary queues a binary message: one attachment of the binary
	// packet queued just before it.
	SendBinary(msg []byte) error
	// Close closes the connection; reason says why, for logs.
	Close(reason string)
}

// PreparedConn is an EngineConn that can send a Prepared event framed
// once for all its recipients (see Prepared.Engine) rather than copying
// its text into a frame per connection. Socket.Send uses it when the
// connection implements it.
type PreparedConn interface {
	EngineConn
	// SendPrepared queues p's text message and its attachments, in order.
	SendPrepared(p *Prepared) error
}

// FrameConn is an EngineConn that also queues engine messages framed
// once by the caller for many connections (a broadcast encoded once per
// namespace, such as Herald's room messages). Socket.SendFrame needs it.
type FrameConn interface {
	EngineConn
	// SendFrame queues m, an engine message frame, without copying it.
	SendFrame(m *transport.Prepared) error
}

// ErrNoFrames is returned by Socket.SendFrame when the connection is no
// FrameConn.
var ErrNoFrames = errors.New("socketio: the engine connection takes no prepared frames")

// Errors reported by Socket and Client methods.
var (
	// ErrDisconnected is returned when sending on a socket that has left
	// its namespace, or whose connection is closed; a pending ack's
	// callback gets it when its socket goes away first.
	ErrDisconnected = errors.New("socketio: socket disconnected")
	// ErrAckTimeout is what an ack callback gets when the client has not
	// answered within the timeout.
	ErrAckTimeout = errors.New("socketio: ack timed out")
	// ErrTooManyAcks is returned by EmitWithAck when the socket already
	// waits for Config.MaxPendingAcks acks.
	ErrTooManyAcks = errors.New("socketio: too many pending acks")
	// ErrConnectRefusals is wrapped by the error OnProtocolError gets for
	// a connection closed after Config.MaxConnectRefusals refused
	// CONNECTs.
	ErrConnectRefusals = errors.New("socketio: too many refused CONNECTs")
	// ErrWrongNamespace is returned by Socket.Send for an event prepared
	// for another namespace.
	ErrWrongNamespace = errors.New("socketio: event prepared for another namespace")
)

// The reasons a socket leaves its namespace, as the reference server names
// them; an Engine.IO close passes its own reason through.
const (
	ReasonClientDisconnect = "client namespace disconnect"
	ReasonServerDisconnect = "server namespace disconnect"
	ReasonParseError       = "parse error"
	ReasonInvalidState     = "invalid state"
	ReasonConnectTimeout   = "connect timeout"
	ReasonConnectRefusals  = "too many refused connects"
	ReasonServerClose      = "server shutting down"
	// ReasonServerBusy: the binary packet being received did not fit in
	// Config.Reading.
	ReasonServerBusy = "server busy"
)

// ConnectRequest is a client's CONNECT to a namespace the server serves.
type ConnectRequest struct {
	// Namespace is the namespace asked for, such as "/" or "/admin".
	Namespace string
	// Auth is the CONNECT payload, a JSON object (the client's auth
	// option), or nil when the packet had none.
	Auth json.RawMessage
	// PID and Offset are the auth payload's "pid" and "offset" strings: a
	// client with connection state recovery reconnecting, with the pid
	// its previous CONNECT reply gave it and the offset (last argument) of
	// the last event it received. Empty when absent.
	PID, Offset string
}

// ConnectResult is OnConnect's answer for a CONNECT it accepts.
type ConnectResult struct {
	// SID is the socket's id, sent in the CONNECT reply; empty draws a
	// random one. A recovered session keeps its previous id.
	SID string
	// PID, when not empty, turns connection state recovery on for this
	// socket: the CONNECT reply is {"sid":…,"pid":…} instead of
	// {"sid":…}, and the client sends it back (with the last offset it
	// saw) when it reconnects. A PID equal to the request's tells the
	// client its state was recovered.
	PID string
	// Data is kept with the socket for the embedding code (Socket.Data).
	Data any
}

// ConnectError is an error OnConnect returns to refuse a CONNECT with a
// chosen CONNECT_ERROR payload: {"message":Message} and, when Data is
// set (valid JSON), "data":Data. Any other error refuses with its text as
// the message.
type ConnectError struct {
	Message string
	Data    json.RawMessage
}

func (e *ConnectError) Error() string { return "socketio: connect refused: " + e.Message }

// AckFunc answers a client's event that asked for an ack. Only its first
// call sends; later calls, and calls after the socket left, return
// ErrDisconnected or an error saying it was already answered. The JSON
// arguments are encoded before it returns: it keeps neither them nor
// their slice, which the caller may reuse (binary attachments are queued
// as they are).
type AckFunc func(Args) error

// Config configures a Server. The zero value serves the main namespace
// "/" to everyone, drops the clients' events and never times out a
// connect.
type Config struct {
	// Namespaces are the namespaces served, besides "/" which always is.
	// A CONNECT to any other is refused with the CONNECT_ERROR
	// {"message":"Invalid namespace"}.
	Namespaces []string
	// ConnectTimeout closes a connection that has joined no namespace
	// that long after Accept, as the reference server's connectTimeout
	// does (its default is 45 s). Zero keeps such connections; the
	// Engine.IO heartbeat still ends dead ones.
	ConnectTimeout time.Duration
	// MaxPendingAcks bounds the acks a socket waits for (EmitWithAck);
	// default 256.
	MaxPendingAcks int
	// MaxPreConnect bounds the packets emitted on a socket while its
	// OnConnect runs, which are sent after the CONNECT reply; default
	// 1024.
	MaxPreConnect int
	// MaxConnectRefusals bounds the CONNECTs one connection may have
	// refused (a namespace not served, or OnConnect's error): the one
	// that reaches it gets its CONNECT_ERROR, then the connection is
	// closed (OnProtocolError is told), so that a client cannot have the
	// server check credentials in a loop over one connection. Default 16;
	// at most 255.
	MaxConnectRefusals int
	// Limits bound what the packet decoder accepts from a client: the
	// size of a packet and of its attachments, their count, the length of
	// a namespace. Zero fields take protocol/socketio's defaults.
	Limits sio.Limits
	// Reading, when set, is the budget a binary packet waiting for its
	// attachments counts in: the packet and the attachments so far (up
	// to Limits.MaxPacketBytes each), held until the last one arrives,
	// for as long as the client likes, even before it joins a namespace.
	// The connection whose packet does not fit is closed
	// (ReasonServerBusy; OnProtocolError gets an error wrapping
	// transport.ErrReadsFull).
	Reading *transport.ReadBudget

	// OnConnect decides a CONNECT to a served namespace: nil error
	// accepts (the CONNECT reply is sent once it returns), an error
	// refuses with a CONNECT_ERROR (see ConnectError). Nil accepts every
	// CONNECT. The socket may be emitted on from within the hook: those
	// packets follow the CONNECT reply.
	OnConnect func(ctx context.Context, s *Socket, r *ConnectRequest) (ConnectResult, error)
	// OnEvent handles a client's event. ack is nil unless the client
	// asked for an ack; it may be called later, from any goroutine.
	OnEvent func(ctx context.Context, s *Socket, event string, args Args, ack AckFunc)
	// OnDisconnect runs once for each socket that was accepted, when it
	// leaves its namespace, with the reason (a Reason* constant or the
	// Engine.IO connection's close reason).
	OnDisconnect func(ctx context.Context, s *Socket, reason string)
	// OnProtocolError is told why the adapter closes a connection for a
	// client's protocol violation, for logs and metrics.
	OnProtocolError func(ctx context.Context, err error)
	// OnClose runs once per connection, when it is gone, after the
	// OnDisconnect of each of its sockets: the end of what the embedding
	// code keeps for a connection rather than a socket (Herald gives back
	// the bytes a connection that joined no namespace was charged).
	OnClose func(ctx context.Context)
}

// Server serves Socket.IO namespaces over Engine.IO connections.
type Server struct {
	cfg        Config
	namespaces map[string]uint16 // namespace → its index in nsNames
	nsNames    []string          // the namespaces served, "/" first: a Socket holds its index
	deadlines  connectDeadlines  // of the clients' first CONNECT (Config.ConnectTimeout)
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.MaxPendingAcks <= 0 {
		cfg.MaxPendingAcks = 256
	}
	if cfg.MaxPreConnect <= 0 {
		cfg.MaxPreConnect = 1024
	}
	if cfg.MaxConnectRefusals <= 0 {
		cfg.MaxConnectRefusals = 16
	}
	cfg.MaxConnectRefusals = min(cfg.MaxConnectRefusals, math.MaxUint8)
	if cfg.ConnectTimeout < 0 {
		return nil, fmt.Errorf("socketio: negative ConnectTimeout %v", cfg.ConnectTimeout)
	}
	if len(cfg.Namespaces) >= math.MaxUint16 {
		return nil, fmt.Errorf("socketio: %d namespaces: too many", len(cfg.Namespaces))
	}
	s := &Server{cfg: cfg, namespaces: map[string]uint16{sio.DefaultNamespace: 0}, nsNames: []string{sio.DefaultNamespace},
		deadlines: connectDeadlines{d: cfg.ConnectTimeout, start: time.Now()}}
	for _, ns := range cfg.Namespaces {
		p := sio.Packet{Type: sio.Connect, Namespace: ns}
		if ns == "" || p.Validate(cfg.Limits) != nil {
			return nil, fmt.Errorf("socketio: invalid namespace %q", ns)
		}
		if _, dup := s.namespaces[ns]; !dup {
			s.namespaces[ns] = uint16(len(s.nsNames))
			s.nsNames = append(s.nsNames, ns)
		}
	}
	return s, nil
}

// Serves reports whether the server serves namespace ns.
func (s *Server) Serves(ns string) bool {
	_, ok := s.namespaces[ns]
	return ok
}

// Accept starts serving Socket.IO on a new Engine.IO connection. ctx is
// passed to the hooks of the connection's sockets (it carries what the
// embedding code attached: the request's values, log attributes); its
// cancellation is not watched.
func (s *Server) Accept(ctx context.Context, conn EngineConn) *Client {
	c := new(Client)
	s.accept(c, ctx, conn)
	return c
}

// accept sets up c, a zero Client that may be part of a larger object
// (see ServeEngine), as Accept's.
func (s *Server) accept(c *Client, ctx context.Context, conn EngineConn) {
	c.srv, c.conn, c.ctx = s, conn, ctx
	if s.cfg.ConnectTimeout > 0 {
		c.waiting = true // before add: its deadline may pass at once
		s.deadlines.add(c)
	}
}
