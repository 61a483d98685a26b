package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/heraldrt/herald/protocol"
)

// idPrefix makes the Client's request ids unlikely to collide with ids in
// frames sent raw with Send.
const idPrefix = "hc-"

// Join joins room and remembers it: after every reconnect the Client joins
// it again. A *ServerError (forbidden, too_many_rooms, ...) makes the
// Client forget the room; ErrDisconnected and ctx errors do not.
func (c *Client) Join(ctx context.Context, room string) error {
	c.mu.Lock()
	c.rooms[room] = struct{}{}
	c.mu.Unlock()
	reply, err := c.call(ctx, protocol.Request{Type: protocol.TypeJoin, Room: room})
	var se *ServerError
	if errors.As(err, &se) {
		c.forget(room)
	}
	if err == nil {
		c.joined(room, reply)
	}
	return err
}

// joined records the position a join's reply gives, and returns the
// reply's recovered (nil when the join did not ask to recover).
func (c *Client) joined(room string, reply json.RawMessage) *bool {
	var r protocol.JoinReply
	if json.Unmarshal(reply, &r) != nil {
		return nil
	}
	if r.Offset != 0 || r.Epoch != "" {
		// Not recovered: the reply's is the room's position now, which
		// may be below the Client's (a history rolled back).
		c.advance(room, position{r.Offset, r.Epoch, r.MsgID}, r.Recovered != nil && !*r.Recovered)
	}
	return r.Recovered
}

// advance records p as the Client's position in room, if it is still in
// it. Unless reset, it only moves forward within an epoch: a join's reply
// may be read after events that followed it, and a redelivered acked
// message may be older than the last event.
func (c *Client) advance(room string, p position, reset bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.rooms[room]; !ok {
		return
	}
	if old, had := c.positions[room]; had && !reset && old.epoch == p.epoch &&
		(old.offset > p.offset || old.offset == p.offset && (old.msgID != "" || p.msgID == "")) {
		return
	}
	c.positions[room] = p
}

// Position returns the offset and epoch of the last message of room the
// Client received (or, before any, the room's position when it joined),
// for rooms that keep history; zero values otherwise.
func (c *Client) Position(room string) (offset uint64, epoch string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.positions[room]
	return p.offset, p.epoch
}

// Leave leaves room and forgets it, even if the request fails.
func (c *Client) Leave(ctx context.Context, room string) error {
	c.forget(room)
	_, err := c.call(ctx, protocol.Request{Type: protocol.TypeLeave, Room: room})
	return err
}

// Rooms returns the rooms the Client is in (or will join again on the next
// connection), in no particular order.
func (c *Client) Rooms() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	rooms := make([]string, 0, len(c.rooms))
	for r := range c.rooms {
		rooms = append(rooms, r)
	}
	return rooms
}

func (c *Client) forget(room string) {
	c.mu.Lock()
	delete(c.rooms, room)
	delete(c.positions, room)
	c.mu.Unlock()
}

// Publish sends event with data (marshalled to JSON; a json.RawMessage is
// sent as is; nil sends none) to every member of room, which the Client
// must have joined, and returns the message id the server gave it.
func (c *Client) Publish(ctx context.Context, room, event string, data any, opts ...PublishOption) (msgID string, err error) {
	raw, err := marshalData(data)
	if err != nil {
		return "", fmt.Errorf("herald/client: publish data: %w", err)
	}
	req := protocol.Request{Type: protocol.TypePublish, Room: room, Event: event, Data: raw}
	for _, o := range opts {
		o(&req)
	}
	reply, err := c.call(ctx, req)
	if err != nil {
		return "", err
	}
	var r protocol.PublishReply
	if err := json.Unmarshal(reply, &r); err != nil {
		return "", fmt.Errorf("herald/client: publish reply %q: %w", reply, err)
	}
	return r.MsgID, nil
}

// Emit hands event with data to the server application's OnEvent hook and
// returns the hook's reply. A hook error comes back as a *ServerError.
func (c *Client) Emit(ctx context.Context, event string, data any) (json.RawMessage, error) {
	raw, err := marshalData(data)
	if err != nil {
		return nil, fmt.Errorf("herald/client: emit data: %w", err)
	}
	return c.call(ctx, protocol.Request{Type: protocol.TypeEmit, Event: event, Data: raw})
}

// Send writes frame, a JSON object, on the current connection as is, and
// does not wait for an answer: replies and errors reach only the frame
// handler (WithFrameHandler). It is meant for tools and protocol tests.
func (c *Client) Send(ctx context.Context, frame []byte) error {
	if !json.Valid(frame) {
		return errors.New("herald/client: Send: frame is not valid JSON")
	}
	cn, err := c.conn(ctx)
	if err != nil {
		return err
	}
	return cn.send(ctx, append([]byte(nil), frame...))
}

// conn waits until a connection is usable.
func (c *Client) conn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, ready := c.cur, c.ready
		c.mu.Unlock()
		if cn != nil {
			return cn, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, c.stopErr()
		}
	}
}

// call sends req once a connection is usable and waits for its answer.
func (c *Client) call(ctx context.Context, req protocol.Request) (json.RawMessage, error) {
	cn, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	wait, err := c.start(ctx, cn, req)
	if err != nil {
		return nil, err
	}
	return wait()
}

// start sends req with a fresh id on cn and returns the function that
// waits for its reply, bounded by ctx and the connection's life.
func (c *Client) start(ctx context.Context, cn *conn, req protocol.Request) (wait func() (json.RawMessage, error), err error) {
	id := idPrefix + strconv.FormatUint(c.nextID.Add(1), 36)
	req.ID = protocol.AppendString(nil, id)
	b, err := protocol.Marshal(req)
	if err != nil {
		return nil, err
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	unregister := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	if err := cn.send(ctx, b); err != nil {
		unregister()
		return nil, c.disconnected(err)
	}
	return func() (json.RawMessage, error) {
		defer unregister()
		select {
		case r := <-ch:
			return r.data, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-cn.done:
			select {
			case r := <-ch: // answered just before the end
				return r.data, r.err
			default:
			}
			return nil, c.disconnected(ErrDisconnected)
		}
	}, nil
}

// disconnected turns ErrDisconnected into the reason the Client stopped,
// if it did.
func (c *Client) disconnected(err error) error {
	if errors.Is(err, ErrDisconnected) && c.ctx.Err() != nil {
		return c.stopErr()
	}
	return err
}
