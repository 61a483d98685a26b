package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	sio "github.com/heraldrt/herald/protocol/socketio"
	"github.com/heraldrt/herald/transport"
	"github.com/heraldrt/herald/transport/engineio"
)

// Client is the Socket.IO side of one Engine.IO connection: the sockets
// of the namespaces it joined, and the binary packet being received.
//
// Lock order: sendMu, then mu. mu guards the client's fields and its
// sockets' (one lock for all: never held for long, and a connection's
// sockets are one or a few; 8 B less a socket). It is not held while
// calling the EngineConn or a hook; sendMu is held across a packet's
// SendText and SendBinary calls so that packets do not interleave.
type Client struct {
	srv  *Server
	conn EngineConn
	ctx  context.Context

	sendMu sync.Mutex

	mu     sync.Mutex
	in0    bool // sock0 is accepted and in its namespace: the first of the sockets
	joined bool // a namespace was ever joined
	closed bool
	// waiting: the client counts in its server's connect deadlines
	// (connectDeadlines.waiting) until it joins, closes or times out.
	waiting bool
	// refusals counts the CONNECTs refused (Config.MaxConnectRefusals);
	// only the reader touches it.
	refusals uint8
	x        *clientExtra // nil when it would be empty: on an idle connection with one namespace

	// sock0 is the client's first Socket, made with it: a connection is
	// nearly always in one namespace, and one 128 B object instead of an
	// 80 B and a 64 B one is a long-lived object fewer for each idle
	// connection. Later sockets are allocated apart (the first may still
	// be referenced after it left), and follow it in x.more. Used once:
	// newSocket, on the reader.
	sock0 Socket
}

// newSocket returns a new socket of c in namespace nsIdx: sock0 the first
// time. Only the reader calls it.
func (c *Client) newSocket(nsIdx uint16) *Socket {
	s := &c.sock0
	if s.client != nil {
		s = new(Socket)
	}
	s.client, s.nsIdx = c, nsIdx // stateConnecting
	return s
}

// clientExtra is what a Client holds only for a while or for a few
// connections: the binary packet being received, the sockets after the
// first. A client without any of it is 80 B instead of 112. Guarded by
// Client.mu.
type clientExtra struct {
	recon        *sio.Reconstructor // collects the attachments of a binary packet
	reconCharged int64              // what recon holds, counted in Config.Reading
	more         []*Socket          // the accepted sockets after first, in the order they joined
}

// extraLocked returns c.x, made if need be; c.mu must be held.
func (c *Client) extraLocked() *clientExtra {
	if c.x == nil {
		c.x = new(clientExtra)
	}
	return c.x
}

// tidyLocked drops c.x once it holds nothing; c.mu must be held.
func (c *Client) tidyLocked() {
	if x := c.x; x != nil && x.recon == nil && len(x.more) == 0 {
		c.x = nil
	}
}

// setRecon sets (or, with nil, ends) the binary packet being received;
// ending it gives back what it was charged in Config.Reading.
func (c *Client) setRecon(r *sio.Reconstructor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r != nil {
		c.extraLocked().recon = r
	} else if c.x != nil {
		c.x.recon = nil
		c.srv.cfg.Reading.Give(c.x.reconCharged)
		c.x.reconCharged = 0
		c.tidyLocked()
	}
}

// chargeRecon counts n more bytes of the binary packet being received
// in Config.Reading and reports whether they fit; the reader only.
func (c *Client) chargeRecon(n int) bool {
	if !c.srv.cfg.Reading.Take(int64(n)) {
		return false
	}
	c.mu.Lock()
	if c.x != nil && c.x.recon != nil {
		c.x.reconCharged += int64(n)
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	c.srv.cfg.Reading.Give(int64(n)) // closed meanwhile: nothing holds them
	return true
}

// busy closes the connection whose binary packet did not fit in
// Config.Reading.
func (c *Client) busy() {
	c.setRecon(nil)
	c.fail(ReasonServerBusy, fmt.Errorf("binary packet waiting for its attachments: %w", transport.ErrReadsFull))
}

// reading returns whether the client is closed and the binary packet
// being received, if any.
func (c *Client) reading() (closed bool, recon *sio.Reconstructor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.x != nil {
		recon = c.x.recon
	}
	return c.closed, recon
}

// Context returns the ctx the client was accepted with.
func (c *Client) Context() context.Context { return c.ctx }

// Conn returns the Engine.IO connection the client speaks over.
func (c *Client) Conn() EngineConn { return c.conn }

// Socket returns the client's socket in namespace ns, or nil when it has
// not joined it.
func (c *Client) Socket(ns string) *Socket {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.socketLocked(ns)
}

// socketLocked returns the socket of namespace ns; the caller holds mu.
// Not a map: a connection is in one namespace or a few, and a map would
// cost each idle connection a few hundred bytes.
func (c *Client) socketLocked(ns string) *Socket {
	if c.in0 && c.sock0.Namespace() == ns {
		return &c.sock0
	}
	if c.x != nil {
		for _, s := range c.x.more {
			if s.Namespace() == ns {
				return s
			}
		}
	}
	return nil
}

// addLocked adds an accepted socket; the caller holds mu.
func (c *Client) addLocked(s *Socket) {
	if s == &c.sock0 {
		c.in0 = true // made first, so accepted first
		return
	}
	x := c.extraLocked()
	x.more = append(x.more, s)
}

// removeLocked takes s out of the accepted sockets. The caller holds mu.
func (c *Client) removeLocked(s *Socket) {
	if s == &c.sock0 {
		c.in0 = false
		return
	}
	if c.x == nil {
		return
	}
	if i := slices.Index(c.x.more, s); i >= 0 {
		c.x.more = slices.Delete(c.x.more, i, i+1)
	}
	c.tidyLocked()
}

// listLocked returns the accepted sockets in the order they joined, in a
// new slice; the caller holds mu.
func (c *Client) listLocked() []*Socket {
	var out []*Socket
	if c.in0 {
		out = append(out, &c.sock0)
	}
	if c.x != nil {
		out = append(out, c.x.more...)
	}
	return out
}

// HandleText handles a text message received on the connection: one
// Socket.IO packet.
func (c *Client) HandleText(msg []byte) { c.handleText(msg, false) }

// handleText is HandleText; with owned, msg is the client's to keep (an
// Engine.IO message: ServeEngine's handler), so the packet's payload is
// not copied out of it.
func (c *Client) handleText(msg []byte, owned bool) {
	closed, recon := c.reading()
	if closed {
		return
	}
	if recon != nil {
		c.fail(ReasonParseError, fmt.Errorf("%w: text message while %s attachments are expected", sio.ErrInvalid, "binary packet"))
		return
	}
	decode := sio.Decode
	if owned {
		decode = sio.DecodeOwned
	}
	p, err := decode(msg, c.srv.cfg.Limits)
	if err != nil {
		c.fail(ReasonParseError, err)
		return
	}
	if p.Type.IsBinary() {
		r, err := sio.NewReconstructor(p, c.srv.cfg.Limits)
		if err != nil {
			c.fail(ReasonParseError, err)
			return
		}
		if !r.Done() {
			c.setRecon(r)
			if !c.chargeRecon(len(msg)) {
				c.busy()
			}
			return
		}
	}
	c.dispatch(p, nil)
}

// HandleBinary handles a binary message received on the connection: the
// next attachment of the binary packet received before it.
func (c *Client) HandleBinary(msg []byte) {
	closed, recon := c.reading()
	if closed {
		return
	}
	if recon == nil {
		c.fail(ReasonParseError, fmt.Errorf("%w: binary message without a binary packet", sio.ErrInvalid))
		return
	}
	if !c.chargeRecon(len(msg)) {
		c.busy()
		return
	}
	done, err := recon.Add(msg)
	if err != nil {
		c.setRecon(nil)
		c.fail(ReasonParseError, err)
		return
	}
	if !done {
		return
	}
	p, att, err := recon.Packet()
	c.setRecon(nil)
	if err != nil {
		c.fail(ReasonParseError, err)
		return
	}
	c.dispatch(p, att)
}

// HandleClose tells the client that its connection is gone: every socket
// leaves its namespace with reason. Only the first call counts.
func (c *Client) HandleClose(reason string) { c.closeAll(reason) }

// Close sends a DISCONNECT to each namespace the client is in, then
// closes the connection; the sockets leave with reason.
func (c *Client) Close(reason string) {
	c.mu.Lock()
	socks := c.listLocked()
	c.mu.Unlock()
	c.sendMu.Lock()
	for _, s := range socks {
		if s.Connected() {
			_ = c.write(s.disconnectPacket(), nil)
		}
	}
	c.sendMu.Unlock()
	c.closeAll(reason)
	c.conn.Close(reason)
}

// fail closes the connection for a protocol violation.
func (c *Client) fail(reason string, err error) {
	if h := c.srv.cfg.OnProtocolError; h != nil {
		h(c.ctx, fmt.Errorf("socketio: closing the connection (%s): %w", reason, err))
	}
	c.closeAll(reason)
	c.conn.Close(reason)
}

// closeAll marks the client closed and ends its sockets.
func (c *Client) closeAll(reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.doneWaitingLocked()
	socks := c.listLocked()
	if c.x != nil {
		c.srv.cfg.Reading.Give(c.x.reconCharged)
	}
	c.in0, c.x = false, nil
	c.mu.Unlock()
	for _, s := range socks {
		s.end(reason)
	}
	if h := c.srv.cfg.OnClose; h != nil {
		h(c.ctx)
	}
}

// doneWaitingLocked takes c out of the count of clients its connect
// deadline still concerns; c.mu must be held.
func (c *Client) doneWaitingLocked() {
	if c.waiting {
		c.waiting = false
		c.srv.deadlines.done()
	}
}

// connectTimedOut closes c at its connect deadline unless it joined or
// closed first.
func (c *Client) connectTimedOut() {
	c.mu.Lock()
	joined := c.joined || c.closed
	c.doneWaitingLocked()
	c.mu.Unlock()
	if !joined {
		c.fail(ReasonConnectTimeout, fmt.Errorf("no namespace joined within %v", c.srv.cfg.ConnectTimeout))
	}
}

// dispatch routes a complete packet, as the reference server's client
// does: a CONNECT for a namespace not joined yet, anything else to the
// namespace's socket, and everything else closes the connection.
func (c *Client) dispatch(p sio.Packet, attachments [][]byte) {
	c.mu.Lock()
	s := c.socketLocked(p.Namespace)
	c.mu.Unlock()
	switch {
	case p.Type == sio.Connect && s == nil:
		c.connect(p)
	case s == nil || p.Type == sio.Connect || p.Type == sio.ConnectError:
		c.fail(ReasonInvalidState, fmt.Errorf("%s packet for namespace %q, joined: %t", p.Type, p.Namespace, s != nil))
	default:
		s.handle(p, attachments)
	}
}

// connect answers a CONNECT.
func (c *Client) connect(p sio.Packet) {
	cfg := &c.srv.cfg
	nsIdx, ok := c.srv.namespaces[p.Namespace]
	if !ok {
		c.refuse(p.Namespace, sio.InvalidNamespace, nil)
		return
	}
	req := &ConnectRequest{Namespace: p.Namespace, Auth: p.Data}
	if p.Data != nil {
		var recovery struct {
			PID    any `json:"pid"`
			Offset any `json:"offset"`
		}
		if json.Unmarshal(p.Data, &recovery) == nil {
			req.PID, _ = recovery.PID.(string)
			req.Offset, _ = recovery.Offset.(string)
		}
	}
	s := c.newSocket(nsIdx)
	if p.Data != nil {
		s.x = &socketExtra{auth: p.Data}
	}
	var res ConnectResult
	if cfg.OnConnect != nil {
		var err error
		res, err = cfg.OnConnect(c.ctx, s, req)
		if err != nil {
			s.refused()
			var ce *ConnectError
			if errors.As(err, &ce) {
				c.refuse(p.Namespace, ce.Message, ce.Data)
			} else {
				c.refuse(p.Namespace, err.Error(), nil)
			}
			return
		}
	}
	s.id, s.data = res.SID, res.Data
	if s.id == "" {
		s.id = newID()
	}
	if res.PID != "" {
		c.mu.Lock()
		s.extraLocked().pid = res.PID
		c.mu.Unlock()
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.end(ReasonServerClose) // the hook accepted it: tell OnDisconnect
		return
	}
	c.addLocked(s)
	c.joined = true
	c.doneWaitingLocked()
	c.mu.Unlock()

	out := c.encodeConnectReply(p.Namespace, s.id, res.PID)
	c.sendMu.Lock()
	_ = c.writeOut(out)
	s.client.mu.Lock()
	var pre []outPacket
	if s.x != nil {
		pre, s.x.pre = s.x.pre, nil
	}
	if s.loadState() == stateConnecting {
		s.setStateLocked(stateConnected)
	}
	s.client.mu.Unlock()
	for _, o := range pre {
		_ = c.writeOut(o)
	}
	c.sendMu.Unlock()
}

// encodeConnectReply encodes the CONNECT reply of namespace ns as
// encodeOut encodes a packet, its payload written straight into the
// frame (no payload apart to copy: garbage in the size classes idle
// connections live in). What it writes needs no check: the namespace is
// one of the server's and the payload is built here.
func (c *Client) encodeConnectReply(ns, sid, pid string) outPacket {
	e, engine := c.conn.(*engineConn)
	head := 0
	if engine {
		head = engineio.MessageHeadroom
	}
	b := make([]byte, head, head+1+len(ns)+1+len(`{"sid":"","pid":""}`)+len(sid)+len(pid))
	b = append(b, '0'+byte(sio.Connect))
	if ns != sio.DefaultNamespace {
		b = append(b, ns...)
		b = append(b, ',')
	}
	b = appendConnectReply(b, sid, pid)
	if !engine {
		return outPacket{text: b}
	}
	return outPacket{frame: e.es().Server().NewMessageInPlace(b), answer: true}
}

// appendConnectReply appends the CONNECT reply's payload to b: {"sid":…},
// with "pid" when recovery is on for the socket.
func appendConnectReply(b []byte, sid, pid string) []byte {
	if jsonSafe(sid) && jsonSafe(pid) {
		// As json.Marshal writes it.
		b = strconv.AppendQuote(append(b, `{"sid":`...), sid)
		if pid != "" {
			b = strconv.AppendQuote(append(b, `,"pid":`...), pid)
		}
		return append(b, '}')
	}
	v := struct {
		SID string `json:"sid"`
		PID string `json:"pid,omitempty"`
	}{sid, pid}
	j, _ := json.Marshal(v)
	return append(b, j...)
}

// refuse sends a CONNECT_ERROR for namespace ns, and closes the
// connection once it has had Config.MaxConnectRefusals of them.
func (c *Client) refuse(ns, message string, data json.RawMessage) {
	c.sendConnectError(ns, message, data)
	if c.refusals++; int(c.refusals) >= c.srv.cfg.MaxConnectRefusals {
		c.fail(ReasonConnectRefusals, fmt.Errorf("%w: %d on one connection", ErrConnectRefusals, c.refusals))
	}
}

// sendConnectError sends a CONNECT_ERROR for namespace ns.
func (c *Client) sendConnectError(ns, message string, data json.RawMessage) {
	p, err := sio.ConnectErrorPacket(ns, message)
	if err != nil {
		c.fail(ReasonParseError, err)
		return
	}
	if data != nil && json.Valid(data) {
		p.Data, _ = json.Marshal(struct {
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		}{message, data})
	}
	text, err := sio.Encode(p)
	if err != nil {
		c.fail(ReasonParseError, err)
		return
	}
	c.sendMu.Lock()
	_ = c.write(text, nil)
	c.sendMu.Unlock()
}

// write queues a packet and its attachments; the caller holds sendMu.
func (c *Client) write(text []byte, bin [][]byte) error {
	if err := c.conn.SendText(text); err != nil {
		return err
	}
	for _, b := range bin {
		if err := c.conn.SendBinary(b); err != nil {
			return err
		}
	}
	return nil
}

// writeOut queues o; the caller holds sendMu.
func (c *Client) writeOut(o outPacket) error {
	if o.prepared != nil {
		return c.conn.(PreparedConn).SendPrepared(o.prepared)
	}
	if o.frame != nil {
		var err error
		if o.answer {
			err = c.conn.(*engineConn).es().SendNow(o.frame)
		} else {
			err = c.conn.(FrameConn).SendFrame(o.frame)
		}
		if err != nil {
			return err
		}
		for _, b := range o.bin {
			if err := c.conn.SendBinary(b); err != nil {
				return err
			}
		}
		return nil
	}
	return c.write(o.text, o.bin)
}

// encodeOut encodes p, a packet of the client's own (a CONNECT reply, an
// ack), with the attachments bin: on an Engine.IO session (ServeEngine)
// straight into the frame the session queues, so that the text is
// neither grown nor copied into a frame (two objects fewer per packet,
// garbage in the size classes an idle connection's objects live in), and
// marked as an answer, written on the caller's goroutine (no flush
// worker's turn, whose scratch was more such garbage); elsewhere as text
// for SendText.
func (c *Client) encodeOut(p sio.Packet, bin [][]byte) (outPacket, error) {
	e, ok := c.conn.(*engineConn)
	if !ok {
		text, err := sio.Encode(p)
		return outPacket{text: text, bin: bin}, err
	}
	b := make([]byte, engineio.MessageHeadroom, engineio.MessageHeadroom+sio.EncodedLen(p))
	b, err := sio.Append(b, p)
	if err != nil {
		return outPacket{}, err
	}
	return outPacket{frame: e.es().Server().NewMessageInPlace(b), bin: bin, answer: true}, nil
}
