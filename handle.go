package herald

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/protocol"
)

// handle decodes and serves one text frame.
func (c *conn) handle(msg []byte) {
	s := c.s
	req, err := protocol.Decode(msg)
	if err != nil {
		var pe *protocol.Error
		if !errors.As(err, &pe) {
			pe = &protocol.Error{Code: protocol.CodeBadMessage, Message: err.Error()}
		}
		s.metrics.MessagesIn.WithLabelValues("invalid").Inc()
		c.awaitPublishes()
		c.sendError(pe.ID, pe.Code, pe.Message)
		return
	}
	s.metrics.MessagesIn.WithLabelValues(req.Type).Inc()
	if req.Type != protocol.TypePublish {
		// Replies, and what a request changes, follow the publications
		// before it (see pubPipeline).
		c.awaitPublishes()
	}
	s.log.DebugContext(c.ctx(), "message handled", "type", req.Type, "room", req.Room, "event", req.Event)
	switch req.Type {
	case protocol.TypeJoin:
		c.join(req)
	case protocol.TypeLeave:
		c.leave(req)
	case protocol.TypePublish:
		c.publish(req)
	case protocol.TypeEmit:
		c.emit(req)
	case protocol.TypeAck:
		c.ack(req)
	case protocol.TypeRefresh:
		c.refresh(req)
	case protocol.TypePing:
		c.reply(req.ID, emptyObject)
	}
}

// emptyObject is the data of a ping's reply.
var emptyObject = json.RawMessage(`{}`)

func (c *conn) join(req *protocol.Request) {
	room := req.Room
	if c.isUserRoom(room) {
		c.reply(req.ID, roomReply(room))
		return
	}
	if !c.canJoin(room) {
		c.sendError(req.ID, protocol.CodeForbidden, fmt.Sprintf("not allowed to join %q", room))
		return
	}
	if c.rooms.has(room) {
		c.reply(req.ID, c.joinReply(room))
		return
	}
	if len(c.rooms) >= c.s.cfg.MaxRoomsPerConn {
		c.sendError(req.ID, protocol.CodeTooManyRooms, fmt.Sprintf("at most %d rooms per connection", c.s.cfg.MaxRoomsPerConn))
		return
	}
	if h := c.s.cfg.Hooks.OnJoin; h != nil {
		err := c.s.callHook(c.ctx(), "on_join", func() error { return h(c.ctx(), &c.info, room) })
		if err != nil {
			code, msg := hookError(err)
			c.sendError(req.ID, code, msg)
			return
		}
	}
	if c.s.keepsHistory(room) {
		c.joinHistory(req)
		return
	}
	ctx, cancel := c.backendCtx()
	defer cancel()
	if _, err := c.s.hub.Join(ctx, room, c); err != nil {
		c.s.log.WarnContext(ctx, "join failed", "room", room, "err", err)
		c.sendError(req.ID, protocol.CodeBrokerUnavailable, "could not subscribe to the room; retry later")
		return
	}
	c.addRoom(room)
	c.s.presenceAdd(ctx, c, room)
	c.saveSession(ctx)
	if req.Recovering() {
		// The client saw offsets of this room, but it keeps no history
		// here (any more): nothing can fill its gap.
		no := false
		c.reply(req.ID, mustJSON(protocol.JoinReply{Room: room, Recovered: &no}))
		return
	}
	c.reply(req.ID, roomReply(room))
}

func (c *conn) leave(req *protocol.Request) {
	room := req.Room
	if c.isUserRoom(room) {
		c.sendError(req.ID, protocol.CodeBadRequest, "a connection cannot leave its own user room")
		return
	}
	ctx, cancel := c.backendCtx()
	defer cancel()
	if !c.leaveRoom(ctx, room) {
		c.sendError(req.ID, protocol.CodeNotJoined, fmt.Sprintf("not a member of %q", room))
		return
	}
	c.saveSession(ctx)
	c.reply(req.ID, roomReply(room))
}

// leaveRoom takes the connection out of room (its set, the hub and
// presence) and reports whether it was a member. The caller saves the
// session.
func (c *conn) leaveRoom(ctx context.Context, room string) bool {
	c.identMu.Lock()
	was := c.rooms.remove(room)
	c.identMu.Unlock()
	if !was {
		return false
	}
	if err := c.s.hub.Leave(ctx, room, c.member(room)); err != nil && !errors.Is(err, hub.ErrNotMember) {
		// The member is gone locally either way; only the broker unsubscribe failed.
		c.s.log.WarnContext(ctx, "unsubscribe failed", "room", room, "err", err)
	}
	c.setFeed(room, nil)
	c.s.presenceRemove(ctx, c, room)
	return true
}

// addRoom records room as joined. Only the read side changes rooms, under
// identMu, so that others (the session refresh) can read them under it.
func (c *conn) addRoom(room string) {
	c.identMu.Lock()
	c.rooms.add(room)
	c.identMu.Unlock()
}

// backendCtx bounds calls made for c to the broker and the stores (see
// Config.BackendTimeout).
func (c *conn) backendCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.ctx(), c.s.cfg.BackendTimeout)
}

func (c *conn) publish(req *protocol.Request) {
	room := req.Room
	if !c.canPublish(room) {
		c.awaitPublishes() // errors too come in request order
		c.sendError(req.ID, protocol.CodeForbidden, fmt.Sprintf("not allowed to publish to %q", room))
		return
	}
	if !c.rooms.has(room) && !c.isUserRoom(room) {
		c.awaitPublishes()
		c.sendError(req.ID, protocol.CodeNotJoined, fmt.Sprintf("join %q before publishing to it", room))
		return
	}
	data := req.Data
	if h := c.s.cfg.Hooks.OnPublish; h != nil {
		// The hook runs on the read side, in request order: the
		// publications before it are still in flight meanwhile.
		var out json.RawMessage
		err := c.s.callHook(c.ctx(), "on_publish", func() error {
			var err error
			out, err = h(c.ctx(), &c.info, room, req.Event, data)
			return err
		})
		if err == nil && out != nil && !json.Valid(out) {
			c.s.log.ErrorContext(c.ctx(), "on_publish hook returned data that is not JSON", "room", room)
			err = &EventError{Code: protocol.CodeInternal, Message: "internal error while checking the publication"}
		}
		if err != nil {
			code, msg := hookError(err)
			c.awaitPublishes()
			c.sendError(req.ID, code, msg)
			return
		}
		if out != nil {
			data = out
		}
	}
	meta := pubMeta{cid: c.info.CorrelationID, from: c.info.UserID, ack: req.Ack}
	if req.IdempotencyKey != "" {
		// Scoped to the user: nobody can make another user's publish
		// look like a repeat of theirs.
		meta.idk = "c:" + c.info.UserID + ":" + req.IdempotencyKey
	}
	m := c.s.newMessage(room, req.Event, data, meta)
	if c.s.batcher != nil {
		c.pipelinePublish(req.ID, m)
		return
	}
	c.publishResult(req.ID, m, c.s.publishMessage(c.ctx(), m))
}

// publishResult answers the publish request id for m, which the broker
// answered err.
func (c *conn) publishResult(id json.RawMessage, m *broker.Message, err error) {
	switch {
	case errors.Is(err, ErrPublishTimeout):
		c.s.log.WarnContext(c.ctx(), "publish not confirmed in time", "room", m.Room, "err", err)
		c.sendError(id, protocol.CodePublishTimeout, publishTimeoutMessage)
		return
	case err != nil:
		c.s.log.WarnContext(c.ctx(), "publish failed", "room", m.Room, "err", err)
		c.sendError(id, protocol.CodeBrokerUnavailable, "message not delivered: broker unavailable; retry later")
		return
	}
	c.reply(id, mustJSON(protocol.PublishReply{MsgID: m.MsgID, Offset: m.Offset, Epoch: m.Epoch}))
}

func (c *conn) emit(req *protocol.Request) {
	h := c.s.cfg.Hooks.OnEvent
	if h == nil {
		c.sendError(req.ID, protocol.CodeNoHandler, "the server handles no custom events: it has no OnEvent hook (herald serve: --backend-url with --backend-hooks emit)")
		return
	}
	var reply any
	err := c.s.callHook(c.ctx(), "on_event", func() error {
		var err error
		reply, err = h(c.ctx(), &c.info, req.Event, req.Data)
		return err
	})
	var ee *EventError
	var hp errHookPanic
	switch {
	case errors.As(err, &hp):
		c.sendError(req.ID, protocol.CodeInternal, "internal error while handling the event")
		return
	case errors.As(err, &ee):
		c.sendError(req.ID, ee.Code, ee.Message)
		return
	case err != nil:
		c.sendError(req.ID, protocol.CodeEventFailed, err.Error())
		return
	}
	data, err := marshalData(reply)
	if err != nil {
		c.s.log.ErrorContext(c.ctx(), "event reply not encodable", "event", req.Event, "err", err)
		c.sendError(req.ID, protocol.CodeInternal, "internal error while encoding the reply")
		return
	}
	c.reply(req.ID, data)
}

func (c *conn) ack(req *protocol.Request) {
	n := c.acked(req.MsgIDs)
	if len(req.ID) > 0 {
		c.reply(req.ID, mustJSON(map[string]int{"acked": n}))
	}
}

func (c *conn) reply(id json.RawMessage, data json.RawMessage) {
	if len(id) == 0 {
		return
	}
	c.send(protocol.TypeReply, protocol.EncodeReply(id, data))
}

func (c *conn) sendError(id json.RawMessage, code, message string) {
	c.s.metrics.Errors.WithLabelValues(code).Inc()
	c.s.log.InfoContext(c.ctx(), "request failed", "code", code, "message", message)
	c.send(protocol.TypeError, protocol.EncodeError(id, code, message))
}

func roomReply(room string) json.RawMessage {
	return mustJSON(map[string]string{"room": room})
}

func mustJSON(v any) json.RawMessage {
	b, err := protocol.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
