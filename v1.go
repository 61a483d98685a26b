package herald

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
)

// Protocol v1, Herald's own JSON protocol over a WebSocket, as one
// adapter on the core's seam (see adapter.go): serveWebSocket (conn.go)
// admits and accepts the upgrade, v1Link is the connection's link, the
// read side below decodes each frame into a core operation, and v1Codec
// (codec.go) encodes room messages in hub codec slot 0.

// protocolV1 is v1's name in metrics and logs.
const protocolV1 = "v1"

// v1Link is the link of a v1 connection: its WebSocket, which is the
// transport, and v1's encoding of the core's answers and notices. It is
// a single pointer, so a conn holds it in its link field without an
// allocation of its own.
type v1Link struct{ *transport.Conn }

var _ link = v1Link{}

func (v1Link) protocol() string { return protocolV1 }

// direct is the hub's direct path: the WebSocket itself and v1Codec, so a
// broadcast is the transport's Send, as before the seam.
func (l v1Link) direct() (hub.Sender, hub.Codec) { return l.Conn, v1Codec{} }

func (l v1Link) welcome(c *conn, w *welcome) {
	b := protocol.EncodeWelcomeAfter(transport.FrameHeadroom, protocol.Welcome{
		Protocol:      protocol.Version,
		ConnectionID:  c.info.ID,
		SessionID:     c.info.SessionID,
		CorrelationID: c.info.CorrelationID,
		UserID:        c.info.UserID,
		HeartbeatMs:   w.Heartbeat.Milliseconds(),
		ResumeToken:   c.resumeToken,
		Resumed:       w.Resumed,
		Rooms:         w.Rooms,
	})
	c.s.countOut(protocol.TypeWelcome, len(b)-transport.FrameHeadroom)
	_ = l.Release(transport.NewPreparedInPlace(transport.Text, b, c.s.cfg.CompressionThreshold, c.s.cfg.CompressionLevel))
}

func (l v1Link) reply(c *conn, ref json.RawMessage, data json.RawMessage) {
	l.send(c, protocol.TypeReply, protocol.EncodeReply(ref, data))
}

func (l v1Link) fail(c *conn, ref json.RawMessage, code, message string) {
	l.send(c, protocol.TypeError, protocol.EncodeError(ref, code, message))
}

func (l v1Link) gap(c *conn, room string) {
	l.send(c, protocol.TypeGap, protocol.EncodeGap(room))
}

func (l v1Link) tokenExpiring(c *conn, exp time.Time, left time.Duration) {
	l.send(c, protocol.TypeTokenExpiring, protocol.EncodeTokenExpiring(exp.UnixMilli(), left.Milliseconds()))
}

func (l v1Link) shutdown(c *conn, retryAfter time.Duration) {
	l.send(c, protocol.TypeServerShutdown, protocol.EncodeServerShutdown(retryAfter.Milliseconds(), "server shutdown"))
}

// send queues a frame of type typ for this connection only.
func (l v1Link) send(c *conn, typ string, b []byte) {
	c.s.countOut(typ, len(b))
	_ = l.WriteText(b)
}

// countIn counts a client request of type typ in protocol proto.
func (s *Server) countIn(proto, typ string) {
	s.metrics.MessagesIn.WithLabelValues(typ).Inc()
	s.metrics.ProtocolMessagesIn.WithLabelValues(proto, typ).Inc()
}

// countOut counts a frame of type typ and n bytes sent to one connection.
func (s *Server) countOut(typ string, n int) {
	s.cm.out.get(typ).Inc()
	s.metrics.BytesOut.Add(float64(n))
}

// ws returns the WebSocket of a v1 connection, which its read side reads.
func (c *conn) ws() *transport.Conn { return c.link.(v1Link).Conn }

// serveReads handles the messages that can be read without waiting, then
// asks the transport to call it again, on a new goroutine, when more
// arrive: between bursts a connection holds no goroutine and no read
// buffer. Where the transport cannot watch the socket (TLS terminated
// in-process), it reads with blocking Reads on this goroutine instead.
// The goroutine that sees the connection end cleans up.
func (c *conn) serveReads() {
	ended := true
	defer func() {
		// A bug of ours must cost one connection, not the process or the
		// bookkeeping: log it with its stack, close with 1011, clean up.
		if v := recover(); v != nil {
			c.s.log.ErrorContext(c.ctx(), "panic while serving a connection", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !c.link.Abort(transport.CloseInternalError, "internal error", errInternal) {
				c.link.Terminate(errInternal)
			}
			ended = true
		}
		if ended {
			c.cleanup()
		}
	}()
	for {
		typ, msg, err := c.ws().TryRead()
		if err == transport.ErrWouldBlock {
			if c.ws().NotifyReadable(c.serveReads) {
				ended = false // c now belongs to the next call
				return
			}
			c.readLoop()
			return
		}
		if err != nil {
			return
		}
		c.process(typ, msg)
	}
}

// startReads is serveReads for a connection that has just been
// welcomed: unless the upgrade brought bytes past its head, the socket
// is watched at once (a client's first frame comes after the welcome,
// so a read now would find nothing: one system call per connect, and a
// read buffer taken and given back).
func (c *conn) startReads() {
	if !c.ws().Buffered() && c.ws().NotifyReadable(c.serveReads) {
		return // c now belongs to the callback
	}
	c.serveReads()
}

// readLoop reads with blocking Reads until the connection ends.
func (c *conn) readLoop() {
	for {
		typ, msg, err := c.ws().Read(c.ctx())
		if err != nil {
			return
		}
		c.process(typ, msg)
	}
}

// process handles one message from the client. After a close for abuse
// the caller keeps reading until the close handshake ends.
func (c *conn) process(typ transport.MessageType, msg []byte) {
	if !c.admit(len(msg), nil) {
		return
	}
	if typ == transport.Binary {
		s := c.s
		s.countIn(protocolV1, "binary")
		c.sendError(nil, protocol.CodeBinaryUnsupported, "protocol v1 uses text frames only; binary frame ignored")
		return
	}
	c.handle(msg)
}

// handle decodes and serves one text frame.
func (c *conn) handle(msg []byte) {
	s := c.s
	req, err := protocol.Decode(msg)
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			pe = &protocol.Error{Code: protocol.CodeBadMessage, Message: err.Error()}
		}
		s.countIn(protocolV1, "invalid")
		c.awaitPublishes()
		c.sendError(pe.ID, pe.Code, pe.Message)
		return
	}
	s.countIn(protocolV1, req.Type)
	if req.Type != protocol.TypePublish {
		// Replies, and what a request changes, follow the publications
		// before it (see pubPipeline).
		c.awaitPublishes()
	}
	s.log.DebugContext(c.ctx(), "message handled", "type", req.Type, "room", req.Room, "event", req.Event)
	switch req.Type {
	case protocol.TypeJoin:
		var from *broker.Position
		if req.Recovering() {
			from = &broker.Position{Offset: req.Offset, Epoch: req.Epoch, MsgID: req.MsgID}
		}
		c.join(req.ID, req.Room, from)
	case protocol.TypeLeave:
		c.leave(req.ID, req.Room)
	case protocol.TypePublish:
		c.publish(req.ID, req.Room, req.Event, req.Data, req.Ack, req.IdempotencyKey)
	case protocol.TypeEmit:
		c.emit(req.ID, req.Event, req.Data)
	case protocol.TypeAck:
		c.ack(req.ID, req.MsgIDs)
	case protocol.TypeRefresh:
		c.refresh(req.ID, req.Token)
	case protocol.TypePing:
		c.ping(req.ID)
	}
}
