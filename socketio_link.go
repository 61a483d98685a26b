package herald

import (
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/heraldrt/herald/adapter/socketio"
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
	"github.com/heraldrt/herald/transport/engineio"
)

// protocolSocketIO is Socket.IO's name in metrics and logs.
const protocolSocketIO = "socketio"

// sioLink is the link of a Socket.IO socket (one namespace of an
// Engine.IO connection): the socket is the transport, and the core's
// answers become acks and its notices herald:* events. Room messages are
// frames of sioCodec, queued through the socket so that they keep their
// place among its other packets.
type sioLink struct {
	sock *socketio.Socket
	srv  *sioServer

	mu    sync.Mutex
	acks  *sioAcks // requests waiting for the core's answer; nil when none
	ended *sioEnd  // made when the socket is closed, goes or Done is asked for: nil on an idle socket
}

// sioEnd is how a link ends: apart from it, so that a socket that is
// there and that nobody waits for (an idle connection) holds neither
// (sioClient 48 B, not 64). Guarded by sioLink.mu.
type sioEnd struct {
	// err is what the server closed the socket with, until it went; then
	// why it went, set once (end), when done becomes sioGone.
	err  error
	done chan struct{} // made by Done while the socket is there; sioGone once it went
}

// endLocked returns l.ended, made if need be. l.mu must be held.
func (l *sioLink) endLocked() *sioEnd {
	if l.ended == nil {
		l.ended = new(sioEnd)
	}
	return l.ended
}

// errLocked returns what the server closed the socket with, or why it
// went. l.mu must be held.
func (l *sioLink) errLocked() error {
	if l.ended == nil {
		return nil
	}
	return l.ended.err
}

// setErrLocked records err unless an error is recorded already. l.mu
// must be held.
func (l *sioLink) setErrLocked(err error) {
	if e := l.endLocked(); e.err == nil {
		e.err = err
	}
}

// sioAcks are a link's requests waiting for the core's answer, in
// request order, which is the order the core answers them in: the one
// answered is nearly always the first. They exist while some wait (refs
// start again from 1 after none did), in one allocation for the first
// two. Two, not one: 64 B rather than 48 B, a size class no idle
// connection keeps anything in, where this garbage of every request
// (a Socket.IO client's herald:join among them) leaves no room between
// live objects when it is collected (48 B holds two of each connection's).
type sioAcks struct {
	next uint64
	refs []sioRef
	two  [2]sioRef
}

// sioRef is a request waiting for the core's answer.
type sioRef struct {
	n   uint64
	ack socketio.AckFunc
}

var _ link = (*sioLink)(nil)

// Send queues a frame of l's codec, in order with the socket's other
// packets (and after its CONNECT reply).
func (l *sioLink) Send(p *transport.Prepared) error {
	if err := l.sock.SendFrame(p); err != nil {
		if errors.Is(err, engineio.ErrBufferFull) {
			l.closeWith(transport.ErrSlowConsumer)
		}
		return transport.ErrClosed
	}
	return nil
}

// Hold and Release: the adapter holds what is sent while the socket
// connects and sends it after the CONNECT reply, which is the welcome.
func (l *sioLink) Hold()                             {}
func (l *sioLink) Release(*transport.Prepared) error { return nil }

// Close closes with code and reason and waits (5 s at most) for the
// socket to go. A drain or an overloaded node closes the Engine.IO
// connection, which the client reconnects after (to another node); any
// other code, such as a revocation, makes the socket leave its namespace
// after a herald:close event, and the client does not reconnect on its
// own.
func (l *sioLink) Close(code int, reason string) error {
	l.close(code, reason, nil)
	select {
	case <-l.Done():
	case <-time.After(5 * time.Second):
	}
	return nil
}

// Abort closes at once with code and reason and reports whether this
// call closed the socket.
func (l *sioLink) Abort(code int, reason string, cause error) bool {
	return l.close(code, reason, cause)
}

// Terminate drops the Engine.IO connection.
func (l *sioLink) Terminate(cause error) { l.closeWith(cause) }

func (l *sioLink) close(code int, reason string, cause error) bool {
	l.mu.Lock()
	first := l.errLocked() == nil
	if first {
		if cause == nil {
			cause = &transport.CloseError{Code: code, Reason: reason}
		}
		l.setErrLocked(cause)
	}
	l.mu.Unlock()
	if !first {
		return false
	}
	if !l.sock.Connected() {
		// Still connecting (OnConnect runs): the CONNECT is refused
		// instead (sioOpened).
		return true
	}
	switch code {
	case protocol.CloseGoingAway, protocol.CloseTryAgainLater, protocol.CloseSlowConsumer, protocol.CloseInternalError:
		l.es().Close()
	default:
		l.emit("herald:close", mustJSON(map[string]any{"code": code, "reason": reason}))
		if err := l.sock.Disconnect(); err != nil {
			l.es().Close()
		}
	}
	return true
}

// closeWith drops the Engine.IO connection, recording cause.
func (l *sioLink) closeWith(cause error) {
	l.mu.Lock()
	l.setErrLocked(cause)
	l.mu.Unlock()
	l.es().Close()
}

// refused ends a socket whose CONNECT was refused after the core opened
// it (OnConnect hooks): the connection ends with a 1008 close.
func (l *sioLink) refused(err error) {
	l.mu.Lock()
	if l.errLocked() == nil {
		l.setErrLocked(&transport.CloseError{Code: protocol.ClosePolicyViolation, Reason: err.Error()})
	}
	l.mu.Unlock()
	l.end("")
}

// end records that the socket went, for reason (the adapter's), and
// closes done.
func (l *sioLink) end(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gone() {
		return
	}
	e := l.endLocked()
	switch {
	case e.err != nil:
		// What the server closed it with.
	case reason == socketio.ReasonClientDisconnect:
		// The client's socket.disconnect(): a clean close, which ends
		// the session.
		e.err = &transport.CloseError{Code: protocol.CloseNormal, Reason: "client disconnect"}
	case reason == engineio.ErrPingTimeout.Error():
		e.err = transport.ErrHeartbeatTimeout
	case reason == engineio.ErrBufferFull.Error():
		e.err = transport.ErrSlowConsumer
	default:
		e.err = io.EOF // the connection went away: its session is kept
	}
	if e.done != nil {
		close(e.done)
	}
	e.done = sioGone
}

// gone reports whether the socket went (end ran). l.mu must be held.
func (l *sioLink) gone() bool { return l.ended != nil && l.ended.done == sioGone }

// Done is closed once the socket has gone (end). The channel is made
// when first asked for, so that an idle connection does not hold one.
func (l *sioLink) Done() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.endLocked()
	if e.done == nil {
		e.done = make(chan struct{})
	}
	return e.done
}

// sioGone is Done's answer once the socket has gone.
var sioGone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (l *sioLink) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.gone() {
		return nil
	}
	return l.ended.err
}

// es returns the Engine.IO session of the link's socket: the adapter's
// client holds it as its connection (ServeEngine), so the link need
// not (8 B a connection).
func (l *sioLink) es() *engineio.Socket {
	return l.sock.Client().EngineSocket()
}

// LastSeen is when the client was last heard from on the Engine.IO
// connection (any frame, pongs included, as for v1; or its last poll).
func (l *sioLink) LastSeen() time.Time { return l.es().LastSeen() }
func (l *sioLink) Compressed() bool    { return false }

// Queued, QueueLimit and QueueRoom describe what the Engine.IO socket
// holds for the client (its polling buffer or WebSocket send queue),
// which it bounds by MaxBufferedBytes (Config.SendQueueBytes) and closes
// a client over: a history replay waits for room in it.
func (l *sioLink) Queued() int     { return l.es().Queued() }
func (l *sioLink) QueueLimit() int { return l.srv.maxQueued }
func (l *sioLink) QueueRoom() int  { return l.srv.maxBuffered - l.es().Buffered() }

func (l *sioLink) protocol() string { return protocolSocketIO }

func (l *sioLink) direct() (hub.Sender, hub.Codec) { return l, l.srv.codec(l.sock.Namespace()) }

// welcome: the CONNECT reply, which the adapter sends once OnConnect
// returns, is the welcome.
func (l *sioLink) welcome(*conn, *welcome) {}

// ref registers ack, the client's callback of a request, and returns the
// reference the core answers it by; nil (no answer) without an ack.
func (l *sioLink) ref(ack socketio.AckFunc) json.RawMessage {
	if ack == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.acks
	if a == nil {
		a = new(sioAcks)
		a.refs = a.two[:0]
		l.acks = a
	}
	a.next++
	a.refs = append(a.refs, sioRef{a.next, ack})
	if a.next < uint64(len(sioRefTexts)) {
		return sioRefTexts[a.next]
	}
	return strconv.AppendUint(nil, a.next, 10)
}

// sioRefTexts are the texts of the first refs, which are nearly all
// there are (refs start again from 1 once none wait): a request's ref
// allocates nothing. Never modified.
var sioRefTexts = func() []json.RawMessage {
	t := make([]json.RawMessage, 64)
	for i := range t {
		b := strconv.AppendUint(nil, uint64(i), 10)
		t[i] = b[:len(b):len(b)] // an append to one copies it
	}
	return t
}()

// takeAck returns and forgets the callback of ref.
func (l *sioLink) takeAck(ref json.RawMessage) socketio.AckFunc {
	n, err := strconv.ParseUint(string(ref), 10, 64)
	if err != nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.acks
	if a == nil {
		return nil
	}
	i := slices.IndexFunc(a.refs, func(r sioRef) bool { return r.n == n })
	if i < 0 {
		return nil
	}
	ack := a.refs[i].ack
	a.refs = slices.Delete(a.refs, i, i+1)
	if len(a.refs) == 0 {
		l.acks = nil
	}
	return ack
}

func (l *sioLink) reply(c *conn, ref json.RawMessage, data json.RawMessage) {
	if ack := l.takeAck(ref); ack != nil {
		c.s.countOut(protocol.TypeReply, len(data))
		ackWith(ack, data)
	}
}

// sioArgs hold the one argument of the core's acks: the adapter's
// AckFunc encodes its arguments before it returns and keeps none of
// them, so the slice serves ack after ack instead of being 24 B of
// garbage per request, in the size class of a live object of every
// connection.
var sioArgs = sync.Pool{New: func() any { return new([1]json.RawMessage) }}

// ackWith calls ack, an AckFunc of the adapter's, with the one argument
// data.
func ackWith(ack socketio.AckFunc, data json.RawMessage) {
	a := sioArgs.Get().(*[1]json.RawMessage)
	a[0] = data
	_ = ack(socketio.Args{JSON: a[:]})
	a[0] = nil
	sioArgs.Put(a)
}

// sioError is an error answer: the ack's argument {"error":{…}}, or the
// herald:error event's data.
type sioError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (l *sioLink) fail(c *conn, ref json.RawMessage, code, message string) {
	var e sioError
	e.Error.Code, e.Error.Message = code, message
	data := mustJSON(e)
	if ack := l.takeAck(ref); ack != nil {
		c.s.countOut(protocol.TypeError, len(data))
		ackWith(ack, data)
		return
	}
	c.s.countOut(protocol.TypeError, len(data))
	l.emit("herald:error", data)
}

func (l *sioLink) gap(c *conn, room string) {
	c.s.countOut(protocol.TypeGap, 0)
	l.emit("herald:gap", mustJSON(map[string]string{"room": room}))
}

func (l *sioLink) tokenExpiring(c *conn, exp time.Time, left time.Duration) {
	c.s.countOut(protocol.TypeTokenExpiring, 0)
	l.emit("herald:token_expiring", mustJSON(map[string]int64{"expiresAt": exp.UnixMilli(), "inMs": left.Milliseconds()}))
}

func (l *sioLink) shutdown(c *conn, retryAfter time.Duration) {
	c.s.countOut(protocol.TypeServerShutdown, 0)
	l.emit("herald:shutdown", mustJSON(map[string]any{"retryAfterMs": retryAfter.Milliseconds(), "reason": "server shutdown"}))
}

// emit sends event with data to this socket only.
func (l *sioLink) emit(event string, data json.RawMessage) {
	_ = l.sock.Emit(event, socketio.Args{JSON: []json.RawMessage{data}})
}

// sioCodec encodes room messages as Socket.IO EVENT packets of one
// namespace inside an Engine.IO message: 42["event",data] on "/",
// 42/ns,["event",data] on another, with the message's offset as the last
// argument when recovery is on. It is built once per broadcast and
// namespace, and the same frame is queued to every socket of that
// namespace.
type sioCodec struct {
	ns       string
	slot     int
	recovery bool
}

func (c sioCodec) Slot() int { return c.slot }

func (c sioCodec) Encode(m *broker.Message) (transport.MessageType, []byte) {
	var off string
	if c.recovery && m.Offset != 0 {
		off = encodeSioOffset(m.Room, broker.Position{Offset: m.Offset, Epoch: m.Epoch, MsgID: m.MsgID})
	}
	b := make([]byte, transport.FrameHeadroom, transport.FrameHeadroom+8+len(c.ns)+len(m.Event)+len(m.Data)+len(off)+8)
	b = append(b, '4', '2')
	if c.ns != "/" {
		b = append(b, c.ns...)
		b = append(b, ',')
	}
	b = append(b, '[')
	b = protocol.AppendString(b, m.Event)
	if len(m.Data) > 0 {
		b = append(b, ',')
		b = append(b, m.Data...)
	}
	if off != "" {
		b = append(b, ',')
		b = protocol.AppendString(b, off)
	}
	b = append(b, ']')
	return transport.Text, b
}

// encodeSioOffset is the Socket.IO offset of a message of room at pos:
// the room and its position there, which a reconnecting client sends
// back (Socket.IO keeps one offset, the last message's; Herald keeps a
// position per room), and the message's msgId, which the history checks
// (an offset without it, of an older server's, is taken on trust).
func encodeSioOffset(room string, pos broker.Position) string {
	s := "o=" + strconv.FormatUint(pos.Offset, 10) + "&e=" + url.QueryEscape(pos.Epoch) + "&r=" + url.QueryEscape(room)
	if pos.MsgID != "" {
		s += "&i=" + url.QueryEscape(pos.MsgID)
	}
	return s
}

// decodeSioOffset parses what encodeSioOffset made.
func decodeSioOffset(s string) (room string, pos broker.Position, ok bool) {
	if len(s) > protocol.MaxRoomLen*3+protocol.MaxEpochLen*3+protocol.MaxMsgIDLen*3+32 {
		return "", pos, false
	}
	q, err := url.ParseQuery(s)
	if err != nil {
		return "", pos, false
	}
	n, err := strconv.ParseUint(q.Get("o"), 10, 64)
	room = q.Get("r")
	if err != nil || n == 0 || protocol.ValidateRoom(room) != nil {
		return "", pos, false
	}
	return room, broker.Position{Offset: n, Epoch: q.Get("e"), MsgID: q.Get("i")}, true
}
