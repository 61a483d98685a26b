package engineio

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"math"
	"net/http"
	"strings"
	"time"

	eio "github.com/heraldrt/herald/protocol/engineio"
	"github.com/heraldrt/herald/transport"
)

// openPacket returns the open packet of session k: its template (New)
// with k's text written in: no JSON encoding per session.
func (s *Server) openPacket(k sid, polling bool) *transport.Prepared {
	t := &s.openWSTmpl
	if polling {
		t = &s.openPollTmpl
	}
	b := make([]byte, transport.FrameHeadroom+len(t.b))
	copy(b[transport.FrameHeadroom:], t.b)
	base64.RawURLEncoding.Encode(b[transport.FrameHeadroom+t.at:], k[:])
	return transport.NewPreparedInPlace(transport.Text, b, math.MaxInt, 0) // never compressed
}

// openTemplate is an open packet ("0" and the handshake) with a
// placeholder sid at b[at:].
type openTemplate struct {
	b  []byte
	at int
}

// newOpenTemplate builds the open packet template of polling or
// WebSocket sessions.
func (s *Server) newOpenTemplate(polling bool) openTemplate {
	placeholder := strings.Repeat("s", base64.RawURLEncoding.EncodedLen(len(sid{})))
	b := append([]byte{'0'}, s.handshake(placeholder, polling)...)
	return openTemplate{b: b, at: bytes.Index(b, []byte(placeholder))}
}

// openWebSocket answers a WebSocket handshake: a new session on the
// WebSocket transport, whose first frame is the open packet. The 101
// response is held (transport.Upgrader.UpgradeHeld) and written together
// with the open packet, in one write on this goroutine: no system call
// of its own and no turn of a flush worker for the packet, whose
// scratch (about 100 B in the small size classes idle connections live
// in) was garbage per connect, as was the 256 B buffer of a response
// written alone (the size class of the core's connection on Herald).
func (s *Server) openWebSocket(w http.ResponseWriter, r *http.Request) {
	so, owner := s.newSocket(r)
	var hdr http.Header
	if s.cfg.Cookie != "" {
		hdr = make(http.Header)
		s.setCookie(hdr, so.ID())
	}
	c, err := s.upgrader.UpgradeHeld(w, r, hdr)
	if err != nil {
		return // Upgrade answered
	}
	so.setWS(c)
	if !s.add(so) { // its heartbeat starts now
		c.Abort(transport.CloseGoingAway, ErrServerShutdown.Error(), ErrServerShutdown)
		return
	}
	if err := c.Release(s.openPacket(so.id, false)); err != nil {
		so.finish(ErrBufferFull)
		return
	}
	s.stats.handshakesWS.Add(1)
	s.connect(so, owner, r)
	s.wg.Add(1)
	so.serveWS()
}

// upgradeRequest serves a WebSocket that opens with the sid of a polling
// session: the probe of an upgrade. A session that is already on
// WebSocket, or already upgrading, gets the WebSocket closed at once, as
// the reference server does.
//
// The session is marked as probing before the handshake's answer is
// written: a client that opens a second WebSocket as soon as the first is
// open must find the first one there (the reference server, on one
// thread, takes the probe in the same turn as it answers the handshake).
// Marked after, the second could come first and become the probe, and
// the first was closed instead.
func (s *Socket) upgradeRequest(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	first := s.state == stateOpen && !s.ws && s.pstate().probe == nil && !s.is(fProbing)
	if first {
		s.set(fProbing, true)
	}
	s.mu.Unlock()
	c, err := s.srv.upgrader.Upgrade(w, r, nil)
	if first && err == nil && s.srv.probeUpgraded != nil {
		s.srv.probeUpgraded(s)
	}
	s.mu.Lock()
	if first {
		s.set(fProbing, false)
	}
	if err != nil {
		s.mu.Unlock()
		return
	}
	if !first || s.state != stateOpen || s.ws || s.pstate().probe != nil {
		s.mu.Unlock()
		s.settleProbe()
		c.Abort(transport.CloseNormal, "", nil)
		return
	}
	s.pstate().probe = c
	s.srv.wg.Add(1)
	s.pstate().upgradeDue = time.AfterFunc(s.srv.cfg.UpgradeTimeout, func() {
		defer s.srv.wg.Done()
		s.endProbe(c)
	})
	s.mu.Unlock()
	s.srv.startReading(s, c)
}

// settleProbe waits, for up to 100 ms, until the session's probe (if it
// has one, or its handshake is in progress) has answered "2probe" and
// the answer is written. A second WebSocket of an upgrading session is
// closed after that: frames sent on the first before the second was
// opened are then answered first, as a server reading its sockets in
// order would.
func (s *Socket) settleProbe() {
	for i := 0; i < 50; i++ {
		s.mu.Lock()
		c := s.probeLocked()
		settled := c == nil && !s.is(fProbing) || s.is(fUpgrading)
		if s.ws {
			c = s.wsConn()
		}
		s.mu.Unlock()
		if settled {
			awaitWritten(c)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// endProbe closes c if it is still the session's probe, which then goes
// on over polling.
func (s *Socket) endProbe(c *transport.Conn) {
	s.mu.Lock()
	if s.probeLocked() == c {
		s.stopUpgradeLocked()
	}
	s.mu.Unlock()
	c.Abort(transport.CloseNormal, "", nil)
}

// probeLocked returns the session's probe WebSocket, or nil. s.mu must
// be held.
func (s *Socket) probeLocked() *transport.Conn {
	if s.pstate() == nil {
		return nil
	}
	return s.pstate().probe
}

// onProbeFrame handles a frame from the probe c: "2probe" is answered
// "3probe" and ends the pending poll with a noop; "5" completes the
// upgrade; anything else abandons it.
func (s *Socket) onProbeFrame(c *transport.Conn, typ transport.MessageType, msg []byte) {
	switch {
	case typ == transport.Text && string(msg) == "2probe":
		if c.Send(s.srv.pongProbe) != nil {
			s.endProbe(c)
			return
		}
		s.mu.Lock()
		if s.probeLocked() == c {
			s.set(fUpgrading, true)
			s.pstate().probedAt = s.srv.clock.now()
			s.wakePollLocked()
		}
		s.mu.Unlock()
	case typ == transport.Text && string(msg) == "5":
		s.mu.Lock()
		for s.probeLocked() == c && s.pstate().posting {
			// The messages of the POST in progress are handled first:
			// OnMessage calls never overlap (dispatch).
			p := s.pstate()
			if p.postDone == nil {
				p.postDone = make(chan struct{})
			}
			ch := p.postDone
			s.mu.Unlock()
			<-ch
			s.mu.Lock()
		}
		if s.probeLocked() != c || !s.is(fUpgrading) || s.state == stateClosed {
			s.mu.Unlock()
			s.endProbe(c)
			return
		}
		s.stopUpgradeLocked()
		// What waited for the next poll goes over the WebSocket, in order.
		p := s.pstate()
		buf := p.buf
		s.srv.queues().Give(int64(p.bufBytes)) // c.Send counts them again
		s.srv.queues().Untrack((*pollHolder)(s))
		s.wakePollLocked()
		s.setWS(c) // drops p
		closing := s.state == stateClosing
		reason := s.errLocked()
		s.mu.Unlock()
		s.srv.stats.upgrades.Add(1)
		s.srv.stats.polling.Add(-1)
		for _, m := range buf {
			if err := c.Send(m); err != nil {
				if !errors.Is(err, transport.ErrClosed) { // else c's reader says why it ended
					s.finish(ErrBufferFull)
				}
				return
			}
		}
		if closing {
			s.srv.wg.Add(1)
			go func() {
				defer s.srv.wg.Done()
				_ = c.Close(closeCode(reason), reason.Error())
			}()
			s.finish(reason)
		}
	default:
		s.endProbe(c)
	}
}

// onFrame handles a data frame from the session's WebSocket.
func (s *Socket) onFrame(typ transport.MessageType, msg []byte) {
	if typ == transport.Binary {
		s.dispatch(msg, true)
		return
	}
	if len(msg) > 0 && msg[0] == '0'+byte(eio.Message) {
		s.dispatch(msg[1:], false) // the common case, without a copy
		return
	}
	p, err := eio.DecodeText(msg)
	if err != nil {
		s.finish(ErrParse)
		return
	}
	s.onPacket(p)
}

// startReading reads c, a probe upgrading so, without a goroutine while
// c is idle (TryRead and NotifyReadable), or with one where c's socket
// cannot be watched. Each is counted in the server's WaitGroup.
func (s *Server) startReading(so *Socket, c *transport.Conn) {
	r := &wsReader{so: so, c: c}
	s.wg.Add(1)
	r.serve()
}

// wsReader reads a probe upgrading a polling session, and the session's
// transport once it is upgraded.
type wsReader struct {
	so *Socket
	c  *transport.Conn
}

// serve reads what has arrived, then asks to be called again. It owns
// one count of the server's WaitGroup.
func (r *wsReader) serve() {
	wg := &r.so.srv.wg
	defer wg.Done()
	if readReady(r.c, r.frame, r.ended) {
		wg.Add(1)
		if !r.c.NotifyReadable(r.serve) {
			go r.readLoop() // owns the count just added
		}
	}
}

// readLoop is serve for a connection that cannot be watched (TLS
// terminated in-process).
func (r *wsReader) readLoop() {
	defer r.so.srv.wg.Done()
	readAll(r.c, r.frame, r.ended)
}

// serveWS is wsReader.serve for a session opened on WebSocket, whose
// transport is conn from before add: no reader object apart (16 B a
// session), and no probe to tell apart.
func (s *Socket) serveWS() {
	wg := &s.srv.wg
	defer wg.Done()
	if readReady(s.wsConn(), s.wsFrame, s.wsEnded) {
		wg.Add(1)
		if !s.wsConn().NotifyReadable(s.serveWS) {
			go s.readLoopWS() // owns the count just added
		}
	}
}

// readLoopWS is readLoop for serveWS.
func (s *Socket) readLoopWS() {
	defer s.srv.wg.Done()
	readAll(s.wsConn(), s.wsFrame, s.wsEnded)
}

func (s *Socket) wsFrame(typ transport.MessageType, msg []byte) { s.onFrame(typ, msg) }
func (s *Socket) wsEnded(err error)                             { s.finish(connReason(err)) }

// readReady hands c's frames that have arrived to frame until c would
// block (true) or has ended (false, after ended).
func readReady(c *transport.Conn, frame func(transport.MessageType, []byte), ended func(error)) bool {
	for {
		typ, msg, err := c.TryRead()
		if err == transport.ErrWouldBlock {
			return true
		}
		if err != nil {
			ended(err)
			return false
		}
		frame(typ, msg)
	}
}

// readAll hands c's frames to frame, waiting for each, until c ends.
func readAll(c *transport.Conn, frame func(transport.MessageType, []byte), ended func(error)) {
	for {
		typ, msg, err := c.Read(context.Background())
		if err != nil {
			ended(err)
			return
		}
		frame(typ, msg)
	}
}

// frame handles one frame.
func (r *wsReader) frame(typ transport.MessageType, msg []byte) {
	so := r.so
	so.mu.Lock()
	main, probe := so.wsConn() == r.c, so.probeLocked() == r.c
	so.mu.Unlock()
	switch {
	case main:
		so.onFrame(typ, msg)
	case probe:
		so.onProbeFrame(r.c, typ, msg)
	default:
		// A probe that was abandoned: read on until its close ends it.
	}
}

// ended handles the end of the connection.
func (r *wsReader) ended(err error) {
	so := r.so
	so.mu.Lock()
	main := so.wsConn() == r.c
	so.mu.Unlock()
	if main {
		so.finish(connReason(err))
	} else {
		so.endProbe(r.c)
	}
}
