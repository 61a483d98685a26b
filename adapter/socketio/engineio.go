package socketio

import (
	"context"

	"github.com/heraldrt/herald/transport"
	"github.com/heraldrt/herald/transport/engineio"
)

// ServeEngine serves Socket.IO on es, a new session of the Engine.IO
// server eng: it returns the engineio.Handler that engineio.Config's
// OnConnection should return for es, and the Client it feeds. Events sent
// with Socket.Send are framed once by eng for all their recipients
// (engineio.Server.NewMessage); a Prepared must therefore go to the
// sockets of one Engine.IO server only. eng must be es's server.
func (s *Server) ServeEngine(ctx context.Context, eng *engineio.Server, es *engineio.Socket) (engineio.Handler, *Client) {
	c := new(Client)
	return s.ServeEngineIn(c, ctx, eng, es), c
}

// ServeEngineIn is ServeEngine for a Client the caller provides: a zero
// Client inside an object of the caller's that lives as long as the
// connection (typically the one ctx is), so that an idle connection
// holds one object for both rather than two. c must not be copied or
// reused.
func (s *Server) ServeEngineIn(c *Client, ctx context.Context, eng *engineio.Server, es *engineio.Socket) engineio.Handler {
	if es.Server() != eng {
		panic("socketio: ServeEngine: es is not a session of eng")
	}
	s.accept(c, ctx, (*engineConn)(es))
	return (*engineHandler)(c)
}

// EngineSocket returns the Engine.IO session of a client that
// ServeEngine serves, nil for a client on another EngineConn: embedding
// code reaches the session through the socket (s.Client().EngineSocket())
// rather than keeping a pointer of its own.
func (c *Client) EngineSocket() *engineio.Socket {
	if e, ok := c.conn.(*engineConn); ok {
		return e.es()
	}
	return nil
}

// engineConn is an engineio.Socket seen as a PreparedConn: the Client's
// conn holds the session itself, so serving it costs no object apart.
type engineConn engineio.Socket

func (e *engineConn) es() *engineio.Socket { return (*engineio.Socket)(e) }

func (e *engineConn) SendText(b []byte) error   { return e.es().SendText(b) }
func (e *engineConn) SendBinary(b []byte) error { return e.es().SendBinary(b) }
func (e *engineConn) Close(string)              { e.es().Close() }

func (e *engineConn) SendFrame(m *transport.Prepared) error { return e.es().Send(m) }

func (e *engineConn) SendPrepared(p *Prepared) error {
	eng := e.es().Server()
	msgs := p.Engine(func(text []byte, bin [][]byte) any {
		m := make([]*transport.Prepared, 0, 1+len(bin))
		m = append(m, eng.NewMessage(text, false))
		for _, b := range bin {
			m = append(m, eng.NewMessage(b, true))
		}
		return m
	}).([]*transport.Prepared)
	for _, m := range msgs {
		if err := e.es().Send(m); err != nil {
			return err
		}
	}
	return nil
}

// engineHandler is a Client seen as the engineio.Handler of its session.
type engineHandler Client

func (h *engineHandler) OnMessage(_ *engineio.Socket, data []byte, binary bool) {
	if binary {
		(*Client)(h).HandleBinary(data)
	} else {
		(*Client)(h).handleText(data, true) // data is the handler's (engineio.Handler)
	}
}

func (h *engineHandler) OnClose(_ *engineio.Socket, reason error) {
	r := "transport close"
	if reason != nil {
		r = reason.Error()
	}
	(*Client)(h).HandleClose(r)
}
