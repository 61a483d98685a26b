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
// sockets of one Engine.IO server only.
func (s *Server) ServeEngine(ctx context.Context, eng *engineio.Server, es *engineio.Socket) (engineio.Handler, *Client) {
	ec := &engineConn{eng: eng, es: es}
	s.accept(&ec.client, ctx, ec)
	return ec, &ec.client
}

// engineConn is an engineio.Socket seen as a PreparedConn, and the
// engineio.Handler feeding its Client, which it holds inline: one
// allocation per connection for both.
type engineConn struct {
	client Client
	eng    *engineio.Server
	es     *engineio.Socket
}

func (e *engineConn) SendText(b []byte) error   { return e.es.SendText(b) }
func (e *engineConn) SendBinary(b []byte) error { return e.es.SendBinary(b) }
func (e *engineConn) Close(string)              { e.es.Close() }

func (e *engineConn) SendFrame(m *transport.Prepared) error { return e.es.Send(m) }

func (e *engineConn) SendPrepared(p *Prepared) error {
	msgs := p.Engine(func(text []byte, bin [][]byte) any {
		m := make([]*transport.Prepared, 0, 1+len(bin))
		m = append(m, e.eng.NewMessage(text, false))
		for _, b := range bin {
			m = append(m, e.eng.NewMessage(b, true))
		}
		return m
	}).([]*transport.Prepared)
	for _, m := range msgs {
		if err := e.es.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (e *engineConn) OnMessage(_ *engineio.Socket, data []byte, binary bool) {
	if binary {
		e.client.HandleBinary(data)
	} else {
		e.client.HandleText(data)
	}
}

func (e *engineConn) OnClose(_ *engineio.Socket, reason error) {
	r := "transport close"
	if reason != nil {
		r = reason.Error()
	}
	e.client.HandleClose(r)
}
