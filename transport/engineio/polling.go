package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	eio "github.com/heraldrt/herald/protocol/engineio"
	"github.com/heraldrt/herald/transport"
)

// pollSize is the size of m in a polling payload, separator included.
func pollSize(m *transport.Prepared) int {
	n := len(m.Payload())
	if m.Type() == transport.Binary {
		n = 1 + base64.StdEncoding.EncodedLen(n)
	}
	return n + 1
}

// appendPayload appends the polling payload of packets to dst: their text
// forms joined by the record separator, binary messages as 'b' and
// base64.
func appendPayload(dst []byte, packets []*transport.Prepared) []byte {
	for i, m := range packets {
		if i > 0 {
			dst = append(dst, eio.RecordSeparator)
		}
		if m.Type() == transport.Binary {
			dst = append(dst, 'b')
			dst = base64.StdEncoding.AppendEncode(dst, m.Payload())
		} else {
			dst = append(dst, m.Payload()...)
		}
	}
	return dst
}

// openPolling answers a polling handshake: a new session whose first
// poll is this request, answered at once with the open packet and
// whatever OnConnection sent. The session takes the place in Polling
// that reservePolling took for the handshake.
func (s *Server) openPolling(w http.ResponseWriter, r *http.Request) {
	so, owner := s.newSocket(r)
	so.mapped = true
	so.setPoll(&pollState{remote: r.RemoteAddr, lastSeen: s.clock.now(), buf: []*transport.Prepared{s.openPacket(so.id, true)}})
	if !s.add(so) {
		s.stats.polling.Add(-1)
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	s.stats.handshakesPolling.Add(1)
	if s.cfg.Cookie != "" {
		s.setCookie(w.Header(), so.ID())
	}
	s.connect(so, owner, r)
	so.startHeartbeat()
	so.poll(w, r)
}

// poll serves a GET: it answers with the buffered packets, waiting for
// some if there are none. A second GET while one waits closes the
// session (the first is answered with a close packet, the second 400).
func (s *Socket) poll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seenLocked()
	switch {
	case s.overdueLocked():
		s.mu.Unlock()
		s.finish(ErrPingTimeout)
		s.srv.writeError(w, eio.UnknownSID, "")
		return
	case s.state == stateClosed && s.pstate() != nil && s.pstate().lingering:
		s.pstate().lingering = false
		s.mu.Unlock()
		s.srv.unmap(s)
		writePoll(w, []byte{'0' + byte(eio.Noop)})
		return
	case s.state == stateClosed:
		s.mu.Unlock()
		s.srv.writeError(w, eio.UnknownSID, "")
		return
	case s.ws:
		s.mu.Unlock()
		s.srv.writeError(w, eio.BadRequest, "")
		return
	case s.pstate().pollCh != nil:
		s.mu.Unlock()
		s.finish(ErrTransportError)
		s.srv.writeError(w, eio.BadRequest, "")
		return
	}
	// A poll that comes once a probe WebSocket is open was sent after
	// it, and maybe after the "2probe" and "5" the client sent on it,
	// which another goroutine reads: the reference server, reading in
	// arrival order on one thread, would have upgraded first and refused
	// the poll. Such a poll is answered as one that comes during the
	// upgrade, even when the "2probe" is read after it: the upgrade
	// packet gets until upgradePollDelay after the probe. A poll that was
	// pending before the probe opened (a client's usual poll) is ended
	// with the noop as soon as the probe is answered, as before.
	afterProbe := s.probeLocked() != nil || s.is(fProbing)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for waited, timedOut := false, false; ; waited = true {
		wait := !s.pollReadyLocked()
		var timeout <-chan time.Time
		if !wait && !timedOut && (!waited || afterProbe) && s.is(fUpgrading) && len(s.pstate().buf) == 0 && s.state == stateOpen {
			// A poll that comes while the session upgrades is ended with
			// a noop, as the reference server does, upgradePollDelay
			// after the probe: time for the upgrade packet that may
			// already be on its way, after which the poll is refused (the
			// client is on WebSocket now).
			wait = true
			if timer == nil {
				d := time.Duration(s.pstate().probedAt + int64(upgradePollDelay) - s.srv.clock.now())
				timer = time.NewTimer(max(d, 0))
			}
			timeout = timer.C
		}
		if !wait {
			break
		}
		ch := make(chan struct{})
		s.pstate().pollCh = ch
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timeout:
			timedOut = true
		case <-r.Context().Done():
			s.mu.Lock()
			abandoned := s.pstate() != nil && s.pstate().pollCh == ch
			if abandoned {
				s.pstate().pollCh = nil
			}
			s.mu.Unlock()
			if abandoned {
				s.finish(ErrTransportError)
				return
			}
		}
		s.mu.Lock()
		if s.pstate() != nil && s.pstate().pollCh == ch {
			s.pstate().pollCh = nil
		}
		if s.ws && s.state != stateClosed {
			c := s.wsConn()
			s.mu.Unlock()
			awaitWritten(c)
			s.srv.writeError(w, eio.BadRequest, "")
			return
		}
	}
	body, last := s.takePollLocked()
	probe := s.probeLocked()
	s.mu.Unlock()
	awaitWritten(probe)
	writePoll(w, body)
	if last {
		s.finish(ErrForcedClose)
	}
}

// seenLocked records a request from the client, for LastSeen. s.mu
// must be held.
func (s *Socket) seenLocked() {
	if s.pstate() != nil {
		s.pstate().lastSeen = s.srv.clock.now()
	}
}

// writePoll answers a poll with body.
func writePoll(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// upgradePollDelay is how long after the probe a poll that comes during
// the upgrade waits for it to complete before it is ended with a noop;
// the reference server ends such polls every 100 ms from the probe.
const upgradePollDelay = 100 * time.Millisecond

// awaitWritten waits, for up to 50 ms, until what is queued on c (an
// upgrade's "3probe") has been written, so that a poll answered during
// an upgrade does not overtake it: a client may act on the poll's
// answer first. c may be nil.
func awaitWritten(c *transport.Conn) {
	for i := 0; c != nil && i < 50 && c.Queued() > 0; i++ {
		time.Sleep(time.Millisecond)
	}
}

// pollReadyLocked reports whether a GET can be answered now. s.mu must
// be held.
func (s *Socket) pollReadyLocked() bool {
	return s.ws || len(s.pstate().buf) > 0 || s.state != stateOpen || s.is(fUpgrading)
}

// takePollLocked returns the body that answers a GET and empties the
// buffer; last reports that it carries the close packet of a session
// being closed, which ends with it. s.mu must be held.
func (s *Socket) takePollLocked() (body []byte, last bool) {
	var p pollState
	if s.pstate() != nil {
		p = *s.pstate()
	}
	switch {
	case s.state == stateClosed:
		// The client's own close ends its pending poll with a noop, any
		// other end with a close packet.
		if s.errLocked() == ErrTransportClose {
			return []byte{'0' + byte(eio.Noop)}, false
		}
		return []byte{'0' + byte(eio.Close)}, false
	case len(p.buf) == 0 && s.state == stateClosing:
		return []byte{'0' + byte(eio.Close)}, true
	case len(p.buf) == 0:
		// Upgrading or upgraded: end the poll so the client can switch.
		return []byte{'0' + byte(eio.Noop)}, false
	}
	body = appendPayload(make([]byte, 0, int(p.bufBytes)+2), p.buf)
	s.srv.queues().Give(int64(p.bufBytes))
	s.srv.queues().Untrack((*pollHolder)(s))
	s.pstate().pingUnread = false
	clear(p.buf)
	s.pstate().buf, s.pstate().bufBytes = p.buf[:0], 0
	if cap(p.buf) > 16 {
		s.pstate().buf = nil
	}
	if s.state == stateClosing {
		body = append(body, eio.RecordSeparator, '0'+byte(eio.Close))
		last = true
	}
	return body, last
}

// post serves a POST: the packets in its body, at most MaxPayload bytes.
func (s *Socket) post(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seenLocked()
	switch {
	case s.state == stateClosed:
		s.mu.Unlock()
		s.srv.writeError(w, eio.UnknownSID, "")
		return
	case s.ws:
		s.mu.Unlock()
		s.srv.writeError(w, eio.BadRequest, "")
		return
	case s.pstate().posting:
		s.mu.Unlock()
		s.finish(ErrTransportError)
		s.srv.writeError(w, eio.BadRequest, "")
		return
	}
	p := s.pstate()
	p.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		p.posting = false
		if p.postDone != nil {
			close(p.postDone)
			p.postDone = nil
		}
		s.mu.Unlock()
	}()

	if r.Header.Get("Content-Type") == "application/octet-stream" {
		// Revision 4 sends binary as base64 text.
		s.finish(ErrTransportError)
		s.srv.writeError(w, eio.BadRequest, "")
		return
	}
	reading := s.srv.cfg.WebSocket.Reading
	body, charged, err := readBody(r, s.srv.cfg.MaxPayload, reading)
	defer reading.Give(charged)
	switch {
	case errors.Is(err, transport.ErrReadsFull):
		// As a WebSocket whose frame does not fit (1013).
		s.finish(ErrTransportError)
		s.srv.stats.refused.Add(1)
		w.Header().Set("Connection", "close")
		http.Error(w, "server busy: too many large messages being read", http.StatusServiceUnavailable)
		return
	case errors.Is(err, eio.ErrTooLarge):
		s.finish(ErrPayloadTooLarge)
		s.srv.stats.refused.Add(1)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		s.finish(ErrTransportError)
		return
	}
	// Record by record, as the reference server does (the packets before
	// a bad record are handled, then the session closes): decoded all
	// at once, a body of 1 MB of one-byte packets made a slice of 20 MB.
	for more := true; more; {
		var record []byte
		record, body, more = bytes.Cut(body, []byte{eio.RecordSeparator})
		p, err := eio.DecodeText(record)
		if err != nil {
			s.finish(ErrParse)
			s.srv.writeError(w, eio.BadRequest, "")
			return
		}
		if !s.onPacket(p) {
			break
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html")
	h.Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "ok")
}

// postPrealloc is the most a POST's buffer is made for before its bytes
// arrive, and what it holds without counting in the read budget.
const postPrealloc = 4 << 10

// readBody reads a request body of at most limit bytes, or fails with
// an error wrapping ErrTooLarge as soon as it knows the body is longer.
// Its buffer grows with what arrives, from at most postPrealloc bytes:
// the Content-Length is the client's word, and a client that announced
// MaxPayload and sent nothing (or dripped it) held that much per request
// for as long as the server's read timeout allowed. A buffer larger than
// postPrealloc counts in budget at its capacity while it is held:
// charged says how much, for the caller to give back once it is done
// with the body. When the next buffer does not fit, readBody fails with
// transport.ErrReadsFull (charged is 0 then).
func readBody(r *http.Request, limit int, budget *transport.ReadBudget) (body []byte, charged int64, err error) {
	if r.ContentLength > int64(limit) {
		return nil, 0, eio.ErrTooLarge
	}
	// One byte over what is expected shows the end (or an excess) without
	// another buffer.
	want := int64(limit) + 1
	if r.ContentLength >= 0 {
		want = r.ContentLength + 1
	}
	buf := make([]byte, 0, min(want, postPrealloc))
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				budget.Give(charged)
				return nil, 0, eio.ErrTooLarge
			}
			size := min(2*cap(buf), limit+1)
			if int64(cap(buf)) < want {
				size = int(min(int64(size), want))
			}
			budget.Give(charged)
			charged = 0
			if !budget.Take(int64(size)) {
				return nil, 0, transport.ErrReadsFull
			}
			charged = int64(size)
			nb := make([]byte, len(buf), size)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			budget.Give(charged)
			return nil, 0, err
		}
	}
	if len(buf) > limit {
		budget.Give(charged)
		return nil, 0, eio.ErrTooLarge
	}
	return buf, charged, nil
}
