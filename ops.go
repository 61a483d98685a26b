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

// The core's operations, which protocol adapters call on a connection's
// read side (see adapter.go). Each answers its request ref exactly once,
// through c.reply or c.sendError, and in request order: an operation
// other than publish first waits for the publications before it
// (awaitPublishes), which the adapter does before calling it.

// emptyObject is the data of a ping's reply.
var emptyObject = json.RawMessage(`{}`)

// ping answers ref with an empty object.
func (c *conn) ping(ref json.RawMessage) { c.reply(ref, emptyObject) }

// join joins room. from is the position the client last saw in the room
// when it recovers (nil for a plain join): a room with history replays
// what followed it.
func (c *conn) join(ref json.RawMessage, room string, from *broker.Position) {
	if c.isUserRoom(room) {
		c.reply(ref, roomReply(room))
		return
	}
	if !c.canJoin(room) {
		c.sendError(ref, protocol.CodeForbidden, fmt.Sprintf("not allowed to join %q", room))
		return
	}
	if c.rooms.has(room) {
		c.reply(ref, c.joinReply(room))
		return
	}
	if len(c.rooms) >= c.s.cfg.MaxRoomsPerConn {
		c.sendError(ref, protocol.CodeTooManyRooms, fmt.Sprintf("at most %d rooms per connection", c.s.cfg.MaxRoomsPerConn))
		return
	}
	if h := c.s.cfg.Hooks.OnJoin; h != nil {
		err := c.s.callHook(c.ctx(), "on_join", func() error { return h(c.ctx(), &c.info, room) })
		if err != nil {
			code, msg := hookError(err)
			c.sendError(ref, code, msg)
			return
		}
	}
	if c.s.keepsHistory(room) {
		c.joinHistory(ref, room, from)
		return
	}
	ctx := c.backendCtx()
	defer ctx.cancel()
	if _, err := c.s.hub.Join(ctx, room, c); err != nil {
		c.s.log.WarnContext(ctx, "join failed", "room", room, "err", err)
		c.sendError(ref, protocol.CodeBrokerUnavailable, "could not subscribe to the room; retry later")
		return
	}
	c.addRoom(room)
	c.storeJoined(ctx, room)
	if from != nil {
		// The client saw offsets of this room, but it keeps no history
		// here (any more): nothing can fill its gap.
		no := false
		c.reply(ref, mustJSON(protocol.JoinReply{Room: room, Recovered: &no}))
		return
	}
	c.reply(ref, roomReply(room))
}

// leave takes the connection out of room.
func (c *conn) leave(ref json.RawMessage, room string) {
	if c.isUserRoom(room) {
		c.sendError(ref, protocol.CodeBadRequest, "a connection cannot leave its own user room")
		return
	}
	ctx := c.backendCtx()
	defer ctx.cancel()
	if !c.leaveRoom(ctx, room) {
		c.sendError(ref, protocol.CodeNotJoined, fmt.Sprintf("not a member of %q", room))
		return
	}
	c.saveSession(ctx)
	c.reply(ref, roomReply(room))
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
// Config.BackendTimeout); its cancel method releases it.
func (c *conn) backendCtx() *storeCtx {
	return newStoreCtx(c.ctx(), c.s.cfg.BackendTimeout)
}

// publish publishes data as event to room, a room the connection is in
// or its own user room. ack asks the room's members to acknowledge the
// message; idempotencyKey, when set, makes a repeat of the publication
// a no-op (scoped to the user).
func (c *conn) publish(ref json.RawMessage, room, event string, data json.RawMessage, ack bool, idempotencyKey string) {
	if !c.canPublish(room) {
		c.awaitPublishes() // errors too come in request order
		c.sendError(ref, protocol.CodeForbidden, fmt.Sprintf("not allowed to publish to %q", room))
		return
	}
	if !c.rooms.has(room) && !c.isUserRoom(room) {
		c.awaitPublishes()
		c.sendError(ref, protocol.CodeNotJoined, fmt.Sprintf("join %q before publishing to it", room))
		return
	}
	if h := c.s.cfg.Hooks.OnPublish; h != nil {
		// The hook runs on the read side, in request order: the
		// publications before it are still in flight meanwhile.
		var out json.RawMessage
		err := c.s.callHook(c.ctx(), "on_publish", func() error {
			var err error
			out, err = h(c.ctx(), &c.info, room, event, data)
			return err
		})
		if err == nil && out != nil && !json.Valid(out) {
			c.s.log.ErrorContext(c.ctx(), "on_publish hook returned data that is not JSON", "room", room)
			err = &EventError{Code: protocol.CodeInternal, Message: "internal error while checking the publication"}
		}
		if err != nil {
			code, msg := hookError(err)
			c.awaitPublishes()
			c.sendError(ref, code, msg)
			return
		}
		if out != nil {
			data = out
		}
	}
	meta := pubMeta{cid: c.info.CorrelationID, from: c.info.UserID, ack: ack}
	if idempotencyKey != "" {
		// Scoped to the user: nobody can make another user's publish
		// look like a repeat of theirs.
		meta.idk = "c:" + c.info.UserID + ":" + idempotencyKey
	}
	m := c.s.newMessage(room, event, data, meta)
	if c.s.batcher != nil {
		c.pipelinePublish(ref, m)
		return
	}
	c.publishResult(ref, m, c.s.publishMessage(c.ctx(), m))
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

// emit hands a custom event to the OnEvent hook and answers with its
// reply.
func (c *conn) emit(ref json.RawMessage, event string, data json.RawMessage) {
	h := c.s.cfg.Hooks.OnEvent
	if h == nil {
		c.sendError(ref, protocol.CodeNoHandler, "the server handles no custom events: it has no OnEvent hook (herald serve: --backend-url with --backend-hooks emit)")
		return
	}
	var reply any
	err := c.s.callHook(c.ctx(), "on_event", func() error {
		var err error
		reply, err = h(c.ctx(), &c.info, event, data)
		return err
	})
	var ee *EventError
	var hp errHookPanic
	switch {
	case errors.As(err, &hp):
		c.sendError(ref, protocol.CodeInternal, "internal error while handling the event")
		return
	case errors.As(err, &ee):
		c.sendError(ref, ee.Code, ee.Message)
		return
	case err != nil:
		c.sendError(ref, protocol.CodeEventFailed, err.Error())
		return
	}
	out, err := marshalData(reply)
	if err != nil {
		c.s.log.ErrorContext(c.ctx(), "event reply not encodable", "event", event, "err", err)
		c.sendError(ref, protocol.CodeInternal, "internal error while encoding the reply")
		return
	}
	c.reply(ref, out)
}

// ack acknowledges the messages msgIDs (delivered with ack).
func (c *conn) ack(ref json.RawMessage, msgIDs []string) {
	n := c.acked(msgIDs)
	if len(ref) > 0 {
		c.reply(ref, mustJSON(map[string]int{"acked": n}))
	}
}

// reply answers request ref with data through the connection's link.
func (c *conn) reply(ref json.RawMessage, data json.RawMessage) {
	if len(ref) == 0 {
		return
	}
	c.link.reply(c, ref, data)
}

// sendError answers request ref (or no request, when empty) with an
// error code and message, counted and logged.
func (c *conn) sendError(ref json.RawMessage, code, message string) {
	c.s.metrics.Errors.WithLabelValues(code).Inc()
	c.s.log.InfoContext(c.ctx(), "request failed", "code", code, "message", message)
	c.link.fail(c, ref, code, message)
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

// admit counts a request of n bytes from the client and reports whether
// it may be handled: not once the server gave up on the connection, nor
// over the message rate (the client is told, in answer to ref when the
// adapter knows it, and closed with 1008 if it keeps sending through a
// whole burst of refusals). After a close for abuse the adapter keeps
// reading until the close ends.
func (c *conn) admit(n int, ref json.RawMessage) bool {
	s := c.s
	s.metrics.BytesIn.Add(float64(n))
	if c.gaveUp() {
		return false // the server gave up on it: nothing it sends is handled
	}
	ok, abusive := c.allowMessage()
	if ok {
		return true
	}
	s.countLimit(limitMessageRate)
	if abusive {
		// Logged once, and before the close frame goes out, so the
		// line is written by the time the client sees the close.
		if c.claimClose(protocol.ClosePolicyViolation) {
			s.log.WarnContext(c.ctx(), "closing: sustained message rate abuse")
			c.startClose(protocol.ClosePolicyViolation, "rate limit exceeded")
		}
		return false
	}
	c.sendError(ref, protocol.CodeRateLimited, "too many messages; slow down")
	return false
}
