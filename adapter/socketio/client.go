package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	sio "github.com/heraldrt/herald/protocol/socketio"
)

// Client is the Socket.IO side of one Engine.IO connection: the sockets
// of the namespaces it joined, and the binary packet being received.
//
// Lock order: sendMu, then mu or a Socket's mu. Neither mu is held while
// calling the EngineConn or a hook; sendMu is held across a packet's
// SendText and SendBinary calls so that packets do not interleave.
type Client struct {
	srv  *Server
	conn EngineConn
	ctx  context.Context

	sendMu sync.Mutex

	mu      sync.Mutex
	sockets socketSet // accepted ones, one per namespace: a few at most, usually one

	joined       bool // a namespace was ever joined
	closed       bool
	connectTimer *time.Timer

	// recon collects the attachments of a binary packet; only the
	// reader (HandleText, HandleBinary) touches it.
	recon *sio.Reconstructor
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
func (c *Client) socketLocked(ns string) *Socket { return c.sockets.get(ns) }

// socketSet is a client's sockets. Not a map: a connection is in one
// namespace or a few, and a map would cost each idle connection a few
// hundred bytes; not a slice either: the usual single socket needs no
// more than a pointer (16 B for the set, where a slice with its first
// element inline took 32).
type socketSet struct {
	first *Socket    // the socket that joined first, nil when none is left
	more  *[]*Socket // the others, in the order they joined; nil until a second one
}

func (ss *socketSet) get(ns string) *Socket {
	if ss.first != nil && ss.first.Namespace() == ns {
		return ss.first
	}
	if ss.more != nil {
		for _, s := range *ss.more {
			if s.Namespace() == ns {
				return s
			}
		}
	}
	return nil
}

func (ss *socketSet) add(s *Socket) {
	switch {
	case ss.first == nil:
		ss.first = s
	case ss.more == nil:
		ss.more = &[]*Socket{s}
	default:
		*ss.more = append(*ss.more, s)
	}
}

// remove takes s out of the set; the next one, if any, becomes first.
func (ss *socketSet) remove(s *Socket) {
	if ss.first == s {
		ss.first = nil
		if ss.more != nil {
			ss.first = (*ss.more)[0]
			*ss.more = slices.Delete(*ss.more, 0, 1)
		}
	} else if ss.more != nil {
		if i := slices.Index(*ss.more, s); i >= 0 {
			*ss.more = slices.Delete(*ss.more, i, i+1)
		}
	}
	if ss.more != nil && len(*ss.more) == 0 {
		ss.more = nil
	}
}

// list returns the sockets in the order they joined, in a new slice.
func (ss *socketSet) list() []*Socket {
	if ss.first == nil {
		return nil
	}
	out := []*Socket{ss.first}
	if ss.more != nil {
		out = append(out, *ss.more...)
	}
	return out
}

// HandleText handles a text message received on the connection: one
// Socket.IO packet.
func (c *Client) HandleText(msg []byte) {
	if c.isClosed() {
		return
	}
	if c.recon != nil {
		c.fail(ReasonParseError, fmt.Errorf("%w: text message while %s attachments are expected", sio.ErrInvalid, "binary packet"))
		return
	}
	p, err := sio.Decode(msg, c.srv.cfg.Limits)
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
			c.recon = r
			return
		}
	}
	c.dispatch(p, nil)
}

// HandleBinary handles a binary message received on the connection: the
// next attachment of the binary packet received before it.
func (c *Client) HandleBinary(msg []byte) {
	if c.isClosed() {
		return
	}
	if c.recon == nil {
		c.fail(ReasonParseError, fmt.Errorf("%w: binary message without a binary packet", sio.ErrInvalid))
		return
	}
	done, err := c.recon.Add(msg)
	if err != nil {
		c.recon = nil
		c.fail(ReasonParseError, err)
		return
	}
	if !done {
		return
	}
	p, att, err := c.recon.Packet()
	c.recon = nil
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
	socks := c.sockets.list()
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

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
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
	if c.connectTimer != nil {
		c.connectTimer.Stop()
	}
	socks := c.sockets.list()
	c.sockets = socketSet{}
	c.mu.Unlock()
	for _, s := range socks {
		s.end(reason)
	}
}

func (c *Client) connectTimedOut() {
	c.mu.Lock()
	joined := c.joined || c.closed
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
	s := &Socket{client: c, nsIdx: nsIdx} // stateConnecting
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
		s.mu.Lock()
		s.extraLocked().pid = res.PID
		s.mu.Unlock()
	}
	reply := connectReply(s.id, res.PID)

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.end(ReasonServerClose) // the hook accepted it: tell OnDisconnect
		return
	}
	c.sockets.add(s)
	c.joined = true
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
	c.mu.Unlock()

	text, _ := sio.Encode(sio.Packet{Type: sio.Connect, Namespace: p.Namespace, Data: reply})
	c.sendMu.Lock()
	_ = c.write(text, nil)
	s.mu.Lock()
	var pre []outPacket
	if s.x != nil {
		pre, s.x.pre = s.x.pre, nil
	}
	if s.loadState() == stateConnecting {
		s.setStateLocked(stateConnected)
	}
	s.mu.Unlock()
	for _, o := range pre {
		_ = c.writeOut(o)
	}
	c.sendMu.Unlock()
}

// connectReply is the CONNECT reply's payload: {"sid":…}, with "pid" when
// recovery is on for the socket.
func connectReply(sid, pid string) json.RawMessage {
	v := struct {
		SID string `json:"sid"`
		PID string `json:"pid,omitempty"`
	}{sid, pid}
	b, _ := json.Marshal(v)
	return b
}

// refuse sends a CONNECT_ERROR for namespace ns.
func (c *Client) refuse(ns, message string, data json.RawMessage) {
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
		return c.conn.(FrameConn).SendFrame(o.frame)
	}
	return c.write(o.text, o.bin)
}
