package engineio

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
	"unsafe"

	eio "github.com/heraldrt/herald/protocol/engineio"
	"github.com/heraldrt/herald/transport"
)

// Handler receives a socket's messages. Its methods for one socket never
// run concurrently, and OnClose runs once, after the last OnMessage.
type Handler interface {
	// OnMessage is one message from the client, in order; data belongs
	// to the callee. It runs on the goroutine that read the message (a
	// POST's, or the WebSocket's reader): a slow handler delays that
	// client only.
	OnMessage(s *Socket, data []byte, binary bool)
	// OnClose tells why the session ended: one of the Err* values.
	OnClose(s *Socket, reason error)
}

type nopHandler struct{}

func (nopHandler) OnMessage(*Socket, []byte, bool) {}
func (nopHandler) OnClose(*Socket, error)          {}

// Socket states.
const (
	stateOpen    = iota
	stateClosing // Close called: the client is being told
	stateClosed
)

// Socket is one Engine.IO session, over HTTP long-polling or WebSocket.
// Its methods are safe for concurrent use.
type Socket struct {
	srv *Server
	id  sid

	// mu guards the fields from state to flags (but mapped), and from
	// handler to tp, and those of the *pollState. It is held only for field updates,
	// never across I/O or a callback. Lock order: mu, then clock.mu (or
	// Server.donesMu).
	state  uint8
	ws     bool  // the transport is WebSocket (from the start, or upgraded)
	mapped bool  // in the sid map: the session began on polling (set before add, then constant; read without mu)
	errIdx uint8 // why the session closed (or is closing): 1 + its index in reasons; 0 while open
	flags  sflag // fUpgrading, fInHandler, fNotified, fAwaitPong, fWaited, fProbing

	// Where the server's clock keeps the socket; guarded by clock.mu,
	// like hbAt.
	hbIdx int32

	mu sync.Mutex

	handler Handler
	pingDue int64
	// tp is the transport: a *transport.Conn when ws, else the
	// *pollState of the polling transport (nil until the handshake made
	// it). One word for both, read through wsConn and pstate: a session
	// is on one at a time (an upgrade swaps them under mu), and 8 B less
	// keeps Socket in the 80 B size class.
	tp unsafe.Pointer

	hbAt int64
}

// sflag is a bit of Socket.flags, guarded by Socket.mu.
type sflag uint8

const (
	fUpgrading sflag = 1 << iota // a probe WebSocket answered "2probe"
	fInHandler                   // OnMessage (or OnConnection) is running
	fNotified                    // OnClose has been called (or is about to be)
	fAwaitPong                   // a ping was sent and no pong has come
	fWaited                      // Done made a channel for it, in Server.dones
	fProbing                     // a probe WebSocket's handshake is in progress (upgradeRequest)
)

// is reports whether flag f is set. s.mu must be held.
func (s *Socket) is(f sflag) bool { return s.flags&f != 0 }

// set sets or clears flag f. s.mu must be held.
func (s *Socket) set(f sflag, on bool) {
	if on {
		s.flags |= f
	} else {
		s.flags &^= f
	}
}

// wsConn returns the WebSocket transport, nil while on polling. s.mu
// must be held (or the session not yet shared).
func (s *Socket) wsConn() *transport.Conn {
	if s.ws {
		return (*transport.Conn)(s.tp)
	}
	return nil
}

// pstate returns the polling transport's state, nil on WebSocket (and
// before a polling handshake made it). s.mu must be held (or the session
// not yet shared).
func (s *Socket) pstate() *pollState {
	if s.ws {
		return nil
	}
	return (*pollState)(s.tp)
}

// setWS makes c the session's transport: WebSocket from now on. The
// polling state, if any, is dropped. s.mu must be held (or the session
// not yet shared).
func (s *Socket) setWS(c *transport.Conn) { s.tp, s.ws = unsafe.Pointer(c), true }

// setPoll makes p the session's transport. The session must be new.
func (s *Socket) setPoll(p *pollState) { s.tp = unsafe.Pointer(p) }

// err returns why the session closed (or is closing), nil while it is
// open. s.mu must be held.
func (s *Socket) errLocked() error {
	if s.errIdx == 0 {
		return nil
	}
	return reasons[s.errIdx-1]
}

// setErrLocked records reason, one of reasons. s.mu must be held.
func (s *Socket) setErrLocked(reason error) { s.errIdx = reasonIndex(reason) }

// reasonIndex returns 1 + the index of reason in reasons: every close
// reason a session gets is one of them.
func reasonIndex(reason error) uint8 {
	for i, r := range reasons {
		if r == reason {
			return uint8(i + 1)
		}
	}
	panic("engineio: close reason not in reasons: " + reason.Error())
}

// pollState is what a session on the polling transport holds, dropped
// when it upgrades to WebSocket. Guarded by Socket.mu.
type pollState struct {
	probedAt   int64                 // clock time "3probe" was sent
	lastSeen   int64                 // clock time of the client's last request
	lingering  bool                  // closed by the client: the next poll gets the noop
	pingUnread bool                  // a ping waits in buf: the client cannot have answered it
	remote     string                // the handshake's RemoteAddr
	buf        []*transport.Prepared // packets for the next GET
	bufBytes   int32
	posting    bool            // a POST is being read (and its packets handled)
	postDone   chan struct{}   // closed when that POST is done; made by an upgrade that waits for it
	pollCh     chan struct{}   // the pending GET waits on it; closed to wake it
	probe      *transport.Conn // WebSocket upgrading the session
	upgradeDue *time.Timer     // ends an upgrade that takes too long
}

// newSocket makes a session. When there is an OnConnection, the session
// counts as in its handler from the start, before Server.add makes it
// visible: a Shutdown that ends it between add and connect then leaves
// the OnClose to connect, which tells the Handler OnConnection returned
// (it told the placeholder, and the real Handler never heard).
//
// With Config.NewOwner, the session is the Owner's Socket, and the Owner
// is returned for connect.
func (s *Server) newSocket(r *http.Request) (*Socket, Owner) {
	var o Owner
	var so *Socket
	if s.cfg.NewOwner != nil {
		o = s.cfg.NewOwner(r)
		so = o.EngineSocket()
		*so = Socket{srv: s, id: newSID(), hbIdx: -1, handler: nopHandler{}}
	} else {
		so = &Socket{srv: s, id: newSID(), hbIdx: -1, handler: nopHandler{}}
	}
	if o != nil || s.cfg.OnConnection != nil {
		so.set(fInHandler, true)
	}
	return so, o
}

// An Owner is an object of the application's that holds a session's
// Socket inside it, with what the application keeps for the session
// (Config.NewOwner).
type Owner interface {
	// EngineSocket returns the zero Socket inside the Owner that the
	// session is made in. It is called once; that Socket is the
	// session's and nothing else's.
	EngineSocket() *Socket
	// OnConnection is called as Config.OnConnection is, and returns the
	// session's Handler (nil drops its messages).
	OnConnection(s *Socket, r *http.Request) Handler
}

// connect runs Config.OnConnection for a new session (which newSocket
// marked as in its handler) and installs the Handler it returns. A
// session that ends meanwhile (Shutdown) tells that Handler, not the
// placeholder, once OnConnection has returned.
func (s *Server) connect(so *Socket, o Owner, r *http.Request) {
	if o == nil && s.cfg.OnConnection == nil {
		return
	}
	var h Handler
	defer func() {
		so.mu.Lock()
		if h != nil {
			so.handler = h
		}
		so.leaveHandlerAndUnlock()
	}()
	if o != nil {
		h = o.OnConnection(so, r)
	} else {
		h = s.cfg.OnConnection(so, r)
	}
}

// ID returns the session id (the handshake's sid).
func (s *Socket) ID() string { return s.id.String() }

// RemoteAddr returns the client's address ("host:port"): that of the
// handshake request while on polling, of the WebSocket's socket after.
func (s *Socket) RemoteAddr() string {
	s.mu.Lock()
	p, c := s.pstate(), s.wsConn()
	s.mu.Unlock()
	if p != nil {
		return p.remote
	}
	if c != nil {
		if a := c.RemoteAddr(); a != nil {
			return a.String()
		}
	}
	return ""
}

// Transport returns "websocket" or "polling": the transport in use.
func (s *Socket) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ws {
		return "websocket"
	}
	return "polling"
}

// Err returns why the session closed, or is closing: nil while it is
// open.
func (s *Socket) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errLocked()
}

// LastSeen returns when the client was last heard from: its last
// WebSocket frame of any kind (pongs included), or its last request
// while on polling.
func (s *Socket) LastSeen() time.Time {
	s.mu.Lock()
	p, c := s.pstate(), s.wsConn()
	var at int64
	if p != nil {
		at = p.lastSeen
	}
	s.mu.Unlock()
	if p == nil && c != nil {
		return c.LastSeen()
	}
	return s.srv.clock.base.Add(time.Duration(at))
}

// Server returns the server the session belongs to.
func (s *Socket) Server() *Server { return s.srv }

// Done is closed when the session has closed. Sessions keep no channel
// of their own (8 B each, which few would use): the server keeps those
// that Done made.
func (s *Socket) Done() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateClosed {
		return closedChan
	}
	d := &s.srv.dones
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := d.m[s]
	if ch == nil {
		if d.m == nil {
			d.m = make(map[*Socket]chan struct{})
		}
		ch = make(chan struct{})
		d.m[s] = ch
		s.set(fWaited, true)
	}
	return ch
}

// closedChan is Done's answer for a closed session.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// doneChans are the channels Done made, for the sessions still open.
type doneChans struct {
	mu sync.Mutex
	m  map[*Socket]chan struct{}
}

// closeDoneLocked closes the channel Done made for s, if it made one.
// s.mu must be held.
func (s *Socket) closeDoneLocked() {
	if !s.is(fWaited) {
		return
	}
	d := &s.srv.dones
	d.mu.Lock()
	close(d.m[s])
	delete(d.m, s)
	d.mu.Unlock()
}

// Buffered returns the bytes waiting to be sent to the client: the
// polling buffer, or the WebSocket's send queue. Config.MaxBufferedBytes
// bounds it; a sender with much to say (a history replay) paces itself
// by it rather than have the session closed as a slow client.
func (s *Socket) Buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ws:
		return max(s.srv.cfg.MaxBufferedBytes-s.wsConn().QueueRoom(), 0)
	case s.pstate() != nil:
		return int(s.pstate().bufBytes)
	}
	return 0
}

// Queued returns how many messages wait to be sent to the client. Over
// WebSocket it is also bounded in messages (Config.WebSocket's
// SendQueueSize, when the client does not read).
func (s *Socket) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ws:
		return s.wsConn().Queued()
	case s.pstate() != nil:
		return len(s.pstate().buf)
	}
	return 0
}

// SendText sends a text message to this socket only.
func (s *Socket) SendText(data []byte) error { return s.Send(s.srv.NewMessage(data, false)) }

// SendBinary sends a binary message to this socket only.
func (s *Socket) SendBinary(data []byte) error { return s.Send(s.srv.NewMessage(data, true)) }

// Send queues m, made by Server.NewMessage, without blocking. Over
// Config.MaxBufferedBytes it returns ErrBufferFull and closes the session;
// once the session is closing it returns ErrClosed.
func (s *Socket) Send(m *transport.Prepared) error { return s.send(m, false) }

// SendNow is Send for a message the client is waiting for (an answer to
// one of its own): over WebSocket it is written on the caller's
// goroutine when no write is in progress (transport.Conn.SendNow), not
// by a flush worker. Over polling it is Send.
func (s *Socket) SendNow(m *transport.Prepared) error { return s.send(m, true) }

func (s *Socket) send(m *transport.Prepared, now bool) error {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.ws {
		c := s.wsConn()
		s.mu.Unlock()
		var err error
		if now {
			err = c.SendNow(m)
		} else {
			err = c.Send(m)
		}
		if err != nil {
			if err == transport.ErrClosed {
				return ErrClosed
			}
			s.finish(ErrBufferFull)
			return ErrBufferFull
		}
		return nil
	}
	err := s.bufferLocked(m)
	for evictions := 0; err == errBudgetFull && evictions < maxEvictions; evictions++ {
		// The node's budget is full: close a session or connection
		// holding more whose client is not reading, rather than this one.
		s.mu.Unlock()
		if !s.srv.queues().MakeRoom((*pollHolder)(s), int64(pollSize(m))) {
			s.mu.Lock()
			break
		}
		s.mu.Lock()
		if s.state != stateOpen || s.ws {
			s.mu.Unlock()
			return s.send(m, now) // closed, or upgraded meanwhile
		}
		err = s.bufferLocked(m)
	}
	s.mu.Unlock()
	if err != nil {
		err = ErrBufferFull
		s.finish(err)
	}
	return err
}

// maxEvictions bounds the holders Send closes to make room for one
// message in the node's full budget.
const maxEvictions = 4

// errBudgetFull is bufferLocked's: the message does not fit in the
// node's budget (Config.WebSocket.Queues).
var errBudgetFull = errors.New("engineio: queue budget full")

// bufferLocked appends m to the polling buffer and wakes the pending
// GET. It returns ErrBufferFull over MaxBufferedBytes and errBudgetFull
// when the node's budget is full. A session with packets waiting is a
// holder the budget may close to make room (pollHolder). s.mu must be
// held.
func (s *Socket) bufferLocked(m *transport.Prepared) error {
	n := pollSize(m)
	p := s.pstate()
	if len(p.buf) > 0 && int(p.bufBytes)+n > s.srv.cfg.MaxBufferedBytes {
		return ErrBufferFull
	}
	if !s.srv.queues().Take(int64(n)) {
		return errBudgetFull
	}
	p.bufBytes += int32(n)
	p.buf = append(p.buf, m)
	if len(p.buf) == 1 {
		s.srv.queues().Track((*pollHolder)(s))
	}
	s.wakePollLocked()
	return nil
}

// pollHolder is a polling session as a holder of bytes in the node's
// queue budget, tracked while packets wait in its buffer: when the
// budget is full, the holder with the most is closed to make room.
type pollHolder Socket

// QueuedBytes returns what the buffer holds, -1 once the session is
// closing or upgraded.
func (h *pollHolder) QueuedBytes() int64 {
	s := (*Socket)(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateOpen || s.ws || s.pstate() == nil {
		return -1
	}
	return int64(s.pstate().bufBytes)
}

// Evict drops the buffer, giving its bytes back at once, and closes the
// session with ErrBufferFull (its client is not reading) on another
// goroutine: the caller may be a broadcast, which must not run the
// session's OnClose.
func (h *pollHolder) Evict() bool {
	s := (*Socket)(h)
	s.mu.Lock()
	p := s.pstate()
	if s.state != stateOpen || s.ws || p == nil {
		s.mu.Unlock()
		return false
	}
	s.srv.queues().Give(int64(p.bufBytes))
	clear(p.buf)
	p.buf, p.bufBytes = nil, 0
	s.mu.Unlock()
	s.srv.goFinish(s, ErrBufferFull)
	return true
}

// wakePollLocked ends the pending GET's wait. s.mu must be held.
func (s *Socket) wakePollLocked() {
	if p := s.pstate(); p != nil && p.pollCh != nil {
		close(p.pollCh)
		p.pollCh = nil
	}
}

// Close ends the session after what is already queued has been sent:
// the client is told (a close packet on its next poll, or a WebSocket
// close frame) and the reason is ErrForcedClose.
func (s *Socket) Close() { s.closeWith(ErrForcedClose) }

func (s *Socket) closeWith(reason error) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	s.state = stateClosing
	s.setErrLocked(reason)
	if s.ws {
		// The closing handshake (queued data first, then the close
		// frame, up to 5 s for the reply) goes on in the background;
		// the session ends now.
		c := s.wsConn()
		s.mu.Unlock()
		s.srv.wg.Add(1)
		go func() {
			defer s.srv.wg.Done()
			_ = c.Close(closeCode(reason), reason.Error())
		}()
		s.finish(reason)
		return
	}
	waiting := s.pstate().pollCh != nil
	s.wakePollLocked()
	s.mu.Unlock()
	if reason == ErrServerShutdown && !waiting {
		// No poll will come that could be answered.
		s.finish(reason)
		return
	}
	if !waiting {
		// The close packet waits for the next GET, for as long as a
		// client that answers pings may take to come back.
		s.srv.clock.scheduleAt(s, s.srv.clock.now()+int64(s.srv.cfg.PingInterval+s.srv.cfg.PingTimeout))
	}
}

// finish closes the session for reason (unless Close already gave one):
// the session is forgotten, a pending GET is answered, the WebSocket is
// closed and the handler told. It runs once; later calls do nothing.
func (s *Socket) finish(reason error) {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	if s.errIdx != 0 {
		reason = s.errLocked()
	}
	// A WebSocket that closeWith is closing gracefully is left to it.
	graceful := s.state == stateClosing && s.ws
	s.state = stateClosed
	s.setErrLocked(reason)
	conn := s.wsConn()
	var probe *transport.Conn
	linger := false
	if p := s.pstate(); p != nil {
		// The client's own close, with no poll pending to take the noop
		// that answers it: the poll may be on its way (sent with the
		// close, as the suite does), so keep the sid for it.
		linger = reason == ErrTransportClose && p.pollCh == nil
		p.lingering = linger
		probe = p.probe
		s.stopUpgradeLocked()
		s.srv.queues().Give(int64(p.bufBytes))
		s.srv.queues().Untrack((*pollHolder)(s))
		p.buf, p.bufBytes = nil, 0
		s.wakePollLocked()
	}
	s.closeDoneLocked()
	notify := !s.is(fInHandler) && !s.is(fNotified)
	if notify {
		s.set(fNotified, true)
	}
	wasPolling := !s.ws
	s.mu.Unlock()

	s.srv.remove(s, reason, linger)
	if linger {
		s.srv.wg.Add(1)
		time.AfterFunc(closeLinger, func() {
			defer s.srv.wg.Done()
			s.srv.unmap(s)
		})
	}
	if wasPolling {
		s.srv.stats.polling.Add(-1)
	}
	if conn != nil && !graceful {
		conn.Abort(closeCode(reason), reason.Error(), nil)
	}
	if probe != nil {
		probe.Abort(transport.CloseNormal, "", nil)
	}
	if notify {
		s.handler.OnClose(s, reason)
	}
}

// closeLinger is how long the sid of a polling session closed by the
// client stays known, for a poll sent together with the close packet:
// it gets the noop a pending poll would have got (the reference server,
// reading request bodies asynchronously, sees such a poll first).
const closeLinger = 100 * time.Millisecond

// stopUpgradeLocked forgets the probe and its timeout. s.mu must be
// held and s.pstate() set.
func (s *Socket) stopUpgradeLocked() {
	p := s.pstate()
	p.probe = nil
	s.set(fUpgrading, false)
	if p.upgradeDue != nil {
		if p.upgradeDue.Stop() {
			s.srv.wg.Done()
		}
		p.upgradeDue = nil
	}
}

// tick is the socket's heartbeat, run by the server's clock: a ping, or
// the end of a session whose pong or whose closing is overdue.
func (s *Socket) tick() {
	s.mu.Lock()
	switch {
	case s.state == stateClosed, s.state == stateClosing && s.ws:
		// A WebSocket's closing handshake ends the session itself. The
		// clock keeps a socket parked until its tick reschedules it: drop
		// it (its end removed it already, unless a reschedule raced).
		s.mu.Unlock()
		s.srv.clock.remove(s)
	case s.state == stateClosing:
		// The close packet waited for a poll that did not come.
		s.mu.Unlock()
		s.srv.goFinish(s, ErrForcedClose)
	case s.overdueLocked() && s.ws && s.wsConn().UnreadBytes() > 0:
		// What the client sent waits unread, in the socket or in the
		// connection's read buffer behind a message the handler still
		// holds (a server short of CPU, or a slow handler): it is alive,
		// and its pong may be there. Ask again a timeout later; its pong
		// reschedules before that once it is read. A client that sent
		// nothing has nothing unread, and times out. Scheduled under
		// s.mu, as a pong schedules: released first, this could replace
		// the time a pong read meanwhile had set.
		s.srv.clock.scheduleAt(s, s.srv.clock.now()+int64(s.srv.cfg.PingTimeout))
		s.mu.Unlock()
	case s.overdueLocked():
		s.mu.Unlock()
		s.srv.goFinish(s, ErrPingTimeout)
	case s.is(fAwaitPong):
		// pingDue is read under s.mu (a pong or a message sets it), and
		// the time scheduled before s.mu is released, for the same reason.
		s.srv.clock.scheduleAt(s, s.pingDue+int64(s.srv.cfg.PingTimeout))
		s.mu.Unlock()
	default:
		s.set(fAwaitPong, true)
		var err error
		// c and ws are read under s.mu: an upgrade may change both as
		// soon as it is released.
		c, ws := s.wsConn(), s.ws
		if !ws {
			err = s.bufferLocked(s.srv.ping)
			s.pstate().pingUnread = err == nil
		}
		// The pong's deadline is scheduled before s.mu is released, so
		// before the ping can be answered: scheduled after the send, it
		// could replace the next ping's time a quick pong had just set
		// (the ping then came PingTimeout after the last, not
		// PingInterval after its pong).
		s.srv.clock.scheduleAt(s, s.pingDue+int64(s.srv.cfg.PingTimeout))
		s.mu.Unlock()
		if ws {
			err = c.Send(s.srv.ping)
		}
		if ws && errors.Is(err, transport.ErrClosed) {
			// The connection is ending (the client's close, a frame
			// over MaxPayload, a dead peer): its reader finishes the
			// session with why, which a ping that lost the race must
			// not replace with ErrBufferFull.
			return
		}
		if err != nil {
			s.srv.goFinish(s, ErrBufferFull)
		}
	}
}

// startHeartbeat schedules the first ping. s.mu must not be held.
func (s *Socket) startHeartbeat() {
	s.mu.Lock()
	s.pingDue = s.srv.clock.now() + int64(s.srv.cfg.PingInterval)
	due := s.pingDue
	s.mu.Unlock()
	s.srv.clock.scheduleAt(s, due)
}

// pingUnreadLocked reports whether the last ping waits in the polling
// buffer, not yet taken by a poll. s.mu must be held.
func (s *Socket) pingUnreadLocked() bool { return s.pstate() != nil && s.pstate().pingUnread }

// overdueLocked reports whether the pong is overdue: the session has
// timed out even if the clock has not yet got round to closing it, so a
// request that comes just after the deadline gets the same answer
// whatever the timer's latency. s.mu must be held.
func (s *Socket) overdueLocked() bool {
	return s.state == stateOpen && s.srv.clock.now() >= s.pingDue+int64(s.srv.cfg.PingTimeout)
}

// goFinish runs finish on a goroutine of its own, so that the clock does
// not wait for a handler's OnClose.
func (s *Server) goFinish(so *Socket, reason error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		so.finish(reason)
	}()
}

// onPacket handles a packet from the client, over either transport. It
// reports whether the session is still open.
func (s *Socket) onPacket(p eio.Packet) bool {
	switch p.Type {
	case eio.Message:
		s.dispatch(p.Data, p.Binary)
	case eio.Pong:
		s.mu.Lock()
		// A pong is accepted until the clock has closed the session,
		// even a little after its deadline: it proves the client alive,
		// unless it answers a ping still waiting for a poll.
		open := s.state == stateOpen && s.is(fAwaitPong) && !s.pingUnreadLocked()
		if open {
			s.set(fAwaitPong, false)
			s.pingDue = s.srv.clock.now() + int64(s.srv.cfg.PingInterval)
			// Under s.mu, as the tick schedules: the later of the two
			// to take s.mu sets the time (lock order: Socket.mu, then
			// the clock's).
			s.srv.clock.scheduleAt(s, s.pingDue)
		}
		s.mu.Unlock()
	case eio.Ping:
		// In revision 4 only the server pings.
		s.finish(ErrTransportError)
		return false
	case eio.Close:
		s.finish(ErrTransportClose)
		return false
	}
	// Open, upgrade and noop packets from a client mean nothing here.
	return true
}

// dispatch hands one message to the handler, unless the session is no
// longer open.
//
// Its calls never overlap: a session's messages come from one WebSocket
// reader, or from one POST at a time (a second closes the session), and
// an upgrade waits for the POST in progress before the WebSocket's
// messages are handled (onProbeFrame).
func (s *Socket) dispatch(data []byte, binary bool) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	if s.is(fAwaitPong) {
		if !s.ws && s.overdueLocked() {
			// A POST that comes after the deadline gets the answer the
			// clock would have given, whatever its latency. A WebSocket
			// message is taken, as its pong is, until the clock has
			// closed the session: it may have waited unread behind one
			// the handler held (the clock spares such a session).
			s.mu.Unlock()
			s.finish(ErrPingTimeout)
			return
		}
		// A message shows the client alive, as a pong does: like the
		// reference server, give its pong PingInterval+PingTimeout from
		// now (the clock finds the later deadline when it wakes). Not
		// while the ping waits for a poll: a client that posts and never
		// polls would keep its session, and what it does not read, for
		// good.
		if !s.pingUnreadLocked() {
			s.pingDue = max(s.pingDue, s.srv.clock.now()+int64(s.srv.cfg.PingInterval))
		}
	}
	s.set(fInHandler, true)
	s.mu.Unlock()
	defer func() {
		// A bug in a handler costs its session, not the process.
		if v := recover(); v != nil {
			s.srv.log.Error("engineio: panic in Handler.OnMessage", "sid", s.id.String(), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.mu.Lock()
			s.set(fInHandler, false)
			s.mu.Unlock()
			s.finish(ErrInternal)
		}
	}()
	s.handler.OnMessage(s, data, binary)
	s.mu.Lock()
	s.leaveHandlerAndUnlock()
}

// leaveHandlerAndUnlock marks the handler's call done, unlocks s.mu (held
// on entry) and calls OnClose if the session closed meanwhile and was
// not yet told.
func (s *Socket) leaveHandlerAndUnlock() {
	s.set(fInHandler, false)
	notify := s.state == stateClosed && !s.is(fNotified)
	if notify {
		s.set(fNotified, true)
	}
	reason := s.errLocked()
	s.mu.Unlock()
	if notify {
		s.handler.OnClose(s, reason)
	}
}
