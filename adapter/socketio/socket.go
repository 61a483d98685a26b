package socketio

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	sio "github.com/heraldrt/herald/protocol/socketio"
	"github.com/heraldrt/herald/transport"
)

type socketState uint8

const (
	stateConnecting socketState = iota // OnConnect runs; sends are held in pre
	stateConnected
	stateLeft
)

// errPreConnectFull is returned by a send while OnConnect runs once
// Config.MaxPreConnect packets wait.
var errPreConnectFull = errors.New("socketio: too many packets emitted before the CONNECT reply")

// errAcked is returned by an AckFunc called a second time.
var errAcked = errors.New("socketio: ack already sent")

// errConnecting is returned by Disconnect from within OnConnect.
var errConnecting = errors.New("socketio: socket still connecting: refuse it by returning an error from OnConnect")

// Socket is a client's membership of one namespace.
type Socket struct {
	client *Client
	id     string
	data   any

	// state is a socketState. It changes under the client's mu (and,
	// from connecting to connected, under its sendMu too), and is read
	// without a lock where a send needs no more than that (queueOut).
	state atomic.Uint32
	nsIdx uint16       // the namespace's index in Server.nsNames (constant): 16 B less than its name
	x     *socketExtra // nil until the socket has any of it: most never do
}

// socketExtra is what a socket holds only when it uses it: the CONNECT's
// auth payload (made with the socket when it has one), the pid of
// connection state recovery, the packets emitted while OnConnect runs,
// and the acks awaited. A socket without any of it is 56 B instead of
// 120. Guarded by the client's mu.
type socketExtra struct {
	auth   json.RawMessage
	pid    string
	pre    []outPacket // sent after the CONNECT reply
	acks   map[uint64]*pendingAck
	nextID uint32 // of the next EmitWithAck: ids wrap after 2³² (at most MaxPendingAcks wait)
}

func (s *Socket) loadState() socketState { return socketState(s.state.Load()) }

// setStateLocked sets the state; the client's mu must be held.
func (s *Socket) setStateLocked(st socketState) { s.state.Store(uint32(st)) }

// extraLocked returns s.x, made if need be; the client's mu must be held.
func (s *Socket) extraLocked() *socketExtra {
	if s.x == nil {
		s.x = new(socketExtra)
	}
	return s.x
}

// outPacket is a packet to send: text and its attachments, or a prepared
// event for a PreparedConn.
type outPacket struct {
	text     []byte
	bin      [][]byte
	prepared *Prepared
	frame    *transport.Prepared
	// answer: frame is an answer the client waits for (a CONNECT reply,
	// an ack; encodeOut), written at once on the caller's goroutine
	// (engineio.Socket.SendNow) rather than by a flush worker.
	answer bool
}

type pendingAck struct {
	cb    func(Args, error)
	timer *time.Timer
}

// ID returns the socket's id, sent in the CONNECT reply ("" while
// OnConnect runs).
func (s *Socket) ID() string { return s.id }

// PID returns the private session id given in the CONNECT reply, ""
// when connection state recovery is off for the socket.
func (s *Socket) PID() string {
	s.client.mu.Lock()
	defer s.client.mu.Unlock()
	if s.x == nil {
		return ""
	}
	return s.x.pid
}

// Namespace returns the socket's namespace.
func (s *Socket) Namespace() string { return s.client.srv.nsNames[s.nsIdx] }

// Auth returns the client's CONNECT payload (the handshake's auth
// object), nil when it sent none.
func (s *Socket) Auth() json.RawMessage {
	s.client.mu.Lock()
	defer s.client.mu.Unlock()
	if s.x == nil {
		return nil
	}
	return s.x.auth
}

// Data returns ConnectResult.Data.
func (s *Socket) Data() any { return s.data }

// Client returns the connection's client.
func (s *Socket) Client() *Client { return s.client }

// Connected reports whether the socket is in its namespace.
func (s *Socket) Connected() bool {
	s.client.mu.Lock()
	defer s.client.mu.Unlock()
	return s.loadState() == stateConnected
}

// Emit sends the event name with args to the socket.
func (s *Socket) Emit(name string, args Args) error {
	p, err := Prepare(s.Namespace(), Event{Name: name, Args: args})
	if err != nil {
		return err
	}
	return s.queue(p.text, p.bin)
}

// EmitWithAck sends the event name with args and asks the client for an
// ack: cb gets its arguments, or ErrAckTimeout when none came within
// timeout (zero waits as long as the socket lives), or ErrDisconnected
// when the socket left first. cb is called exactly once, on any
// goroutine, unless EmitWithAck returns an error. At most
// Config.MaxPendingAcks acks are awaited at a time (ErrTooManyAcks).
func (s *Socket) EmitWithAck(name string, args Args, timeout time.Duration, cb func(Args, error)) error {
	s.client.mu.Lock()
	if s.loadState() == stateLeft {
		s.client.mu.Unlock()
		return ErrDisconnected
	}
	x := s.extraLocked()
	if len(x.acks) >= s.client.srv.cfg.MaxPendingAcks {
		s.client.mu.Unlock()
		return ErrTooManyAcks
	}
	id := uint64(x.nextID)
	x.nextID++
	if x.acks[id] != nil {
		// 2³² acks later, the one that got this id still waits.
		s.client.mu.Unlock()
		return ErrTooManyAcks
	}
	if x.acks == nil {
		x.acks = make(map[uint64]*pendingAck)
	}
	pa := &pendingAck{cb: cb}
	x.acks[id] = pa
	s.client.mu.Unlock()

	p, err := prepare(s.Namespace(), Event{Name: name, Args: args}, true, id)
	if err == nil {
		err = s.queue(p.text, p.bin)
	}
	if err != nil {
		s.client.mu.Lock()
		if s.x != nil {
			delete(s.x.acks, id)
		}
		s.client.mu.Unlock()
		return err
	}
	if timeout > 0 {
		s.client.mu.Lock()
		if s.x != nil && s.x.acks[id] == pa {
			pa.timer = time.AfterFunc(timeout, func() { s.settleAck(id, Args{}, ErrAckTimeout) })
		}
		s.client.mu.Unlock()
	}
	return nil
}

// Send queues an event prepared for the socket's namespace.
func (s *Socket) Send(p *Prepared) error {
	if p.ns != s.Namespace() {
		return ErrWrongNamespace
	}
	return s.queuePrepared(p)
}

// SendFrame queues m, an engine message already framed for the socket's
// namespace (made once for many sockets), like Send: in order with the
// socket's other packets, after the CONNECT reply, ErrDisconnected once
// the socket left. The connection must be a FrameConn.
func (s *Socket) SendFrame(m *transport.Prepared) error {
	c := s.client
	fc, ok := c.conn.(FrameConn)
	if !ok {
		return ErrNoFrames
	}
	// queueOut, with the assertion above made once: this is every room
	// message's way to a Socket.IO client on Herald.
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	switch s.loadState() {
	case stateConnected:
		return fc.SendFrame(m)
	case stateLeft:
		return ErrDisconnected
	}
	return s.hold(outPacket{frame: m})
}

// Disconnect makes the socket leave its namespace: the client is sent a
// DISCONNECT and OnDisconnect runs with ReasonServerDisconnect. The
// connection stays open for its other namespaces (Client.Close closes it).
func (s *Socket) Disconnect() error {
	c := s.client
	c.sendMu.Lock()
	s.client.mu.Lock()
	switch s.loadState() {
	case stateConnecting:
		s.client.mu.Unlock()
		c.sendMu.Unlock()
		return errConnecting
	case stateLeft:
		s.client.mu.Unlock()
		c.sendMu.Unlock()
		return ErrDisconnected
	}
	s.client.mu.Unlock()
	_ = c.write(s.disconnectPacket(), nil)
	c.sendMu.Unlock()
	c.remove(s)
	s.end(ReasonServerDisconnect)
	return nil
}

func (s *Socket) disconnectPacket() []byte {
	text, _ := sio.Encode(sio.Packet{Type: sio.Disconnect, Namespace: s.Namespace()})
	return text
}

// queue sends a packet, or holds it while OnConnect runs.
func (s *Socket) queue(text []byte, bin [][]byte) error {
	return s.queueOut(outPacket{text: text, bin: bin})
}

// queuePrepared sends a prepared event, framed once by the engine when it
// can.
func (s *Socket) queuePrepared(p *Prepared) error {
	if _, ok := s.client.conn.(PreparedConn); ok {
		return s.queueOut(outPacket{prepared: p})
	}
	return s.queueOut(outPacket{text: p.text, bin: p.bin})
}

// queueOut sends o, or holds it while OnConnect runs. A connected socket
// is sent to under sendMu alone: while it is held the state can only
// change to left, which a send racing with it may miss under any lock.
func (s *Socket) queueOut(o outPacket) error {
	c := s.client
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	switch s.loadState() {
	case stateConnected:
		return c.writeOut(o)
	case stateLeft:
		return ErrDisconnected
	}
	return s.hold(o)
}

// hold keeps o for after the CONNECT reply. The client's sendMu is held:
// the socket cannot become connected meanwhile.
func (s *Socket) hold(o outPacket) error {
	s.client.mu.Lock()
	defer s.client.mu.Unlock()
	if s.loadState() == stateLeft {
		return ErrDisconnected
	}
	x := s.extraLocked()
	if len(x.pre) >= s.client.srv.cfg.MaxPreConnect {
		return errPreConnectFull
	}
	x.pre = append(x.pre, o)
	return nil
}

// handle handles a packet of the socket's namespace from the client.
func (s *Socket) handle(p sio.Packet, attachments [][]byte) {
	c := s.client
	cfg := &c.srv.cfg
	switch p.Type {
	case sio.Event, sio.BinaryEvent:
		name, args, err := splitEvent(p.Data)
		if err != nil {
			c.fail(ReasonParseError, err)
			return
		}
		args.Binary = attachments
		var ack AckFunc
		if p.HasID {
			ack = s.ackFunc(p.ID)
		}
		if cfg.OnEvent != nil {
			cfg.OnEvent(c.ctx, s, name, args, ack)
		}
	case sio.Ack, sio.BinaryAck:
		args, err := splitAck(p.Data)
		if err != nil {
			c.fail(ReasonParseError, err)
			return
		}
		args.Binary = attachments
		s.settleAck(p.ID, args, nil) // an unknown id is ignored, as the reference does
	case sio.Disconnect:
		c.remove(s)
		s.end(ReasonClientDisconnect)
	}
}

// ackFunc answers the client's event id.
func (s *Socket) ackFunc(id uint64) AckFunc {
	var sent atomic.Bool
	return func(a Args) error {
		if !sent.CompareAndSwap(false, true) {
			return errAcked
		}
		typ := sio.Ack
		if len(a.Binary) > 0 {
			typ = sio.BinaryAck
		}
		o, err := s.client.encodeOut(sio.Packet{Type: typ, Namespace: s.Namespace(), HasID: true, ID: id,
			Data: a.array(nil), Attachments: len(a.Binary)}, a.Binary)
		if err != nil {
			return err
		}
		return s.queueOut(o)
	}
}

// settleAck calls the callback of pending ack id, if it still waits.
func (s *Socket) settleAck(id uint64, args Args, err error) {
	s.client.mu.Lock()
	var pa *pendingAck
	if s.x != nil {
		pa = s.x.acks[id]
		delete(s.x.acks, id)
	}
	s.client.mu.Unlock()
	if pa == nil {
		return
	}
	if pa.timer != nil {
		pa.timer.Stop()
	}
	pa.cb(args, err)
}

// end makes the socket leave: it fails its pending acks and runs
// OnDisconnect, once.
func (s *Socket) end(reason string) {
	if !s.leave() {
		return
	}
	if h := s.client.srv.cfg.OnDisconnect; h != nil {
		h(s.client.ctx, s, reason)
	}
}

// refused ends a socket OnConnect refused: what it emitted is dropped and
// the acks it asked for fail; OnDisconnect does not run, as the socket
// never joined.
func (s *Socket) refused() { s.leave() }

// leave marks the socket left, drops what waits for the CONNECT reply and
// fails its pending acks; it reports whether the socket had not left yet.
func (s *Socket) leave() bool {
	s.client.mu.Lock()
	if s.loadState() == stateLeft {
		s.client.mu.Unlock()
		return false
	}
	s.setStateLocked(stateLeft)
	var acks map[uint64]*pendingAck
	if x := s.x; x != nil {
		x.pre = nil
		acks, x.acks = x.acks, nil
	}
	s.client.mu.Unlock()
	for _, pa := range acks {
		if pa.timer != nil {
			pa.timer.Stop()
		}
		pa.cb(Args{}, ErrDisconnected)
	}
	return true
}

// remove takes s out of its client's sockets.
func (c *Client) remove(s *Socket) {
	c.mu.Lock()
	c.removeLocked(s)
	c.mu.Unlock()
}

// newID returns a random socket id: 20 URL-safe characters, as the
// reference server's.
func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
