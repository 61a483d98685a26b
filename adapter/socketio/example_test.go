package socketio_test

import (
	"context"
	"fmt"

	"github.com/heraldrt/herald/adapter/socketio"
)

// printConn is an EngineConn that prints what would go on the wire, with
// the Engine.IO message type "4" in front as a WebSocket frame has it.
type printConn struct{}

func (printConn) SendText(b []byte) error   { fmt.Printf("4%s\n", b); return nil }
func (printConn) SendBinary(b []byte) error { fmt.Printf("<binary %v>\n", b); return nil }
func (printConn) Close(reason string)       { fmt.Println("closed:", reason) }

// A server that greets each socket and echoes its events, driven by hand
// the way an Engine.IO server drives it.
func ExampleServer() {
	srv, err := socketio.New(socketio.Config{
		Namespaces: []string{"/chat"},
		OnConnect: func(_ context.Context, s *socketio.Socket, r *socketio.ConnectRequest) (socketio.ConnectResult, error) {
			if r.Namespace == "/chat" && r.Auth == nil {
				return socketio.ConnectResult{}, &socketio.ConnectError{Message: "auth required"}
			}
			return socketio.ConnectResult{SID: "sid-1"}, s.Emit("welcome", socketio.MustValues("hello"))
		},
		OnEvent: func(_ context.Context, s *socketio.Socket, event string, args socketio.Args, ack socketio.AckFunc) {
			if ack != nil {
				_ = ack(args)
				return
			}
			_ = s.Emit(event+"-back", args)
		},
	})
	if err != nil {
		panic(err)
	}
	c := srv.Accept(context.Background(), printConn{})
	c.HandleText([]byte(`0`))
	c.HandleText([]byte(`0/chat,`))
	c.HandleText([]byte(`0/nope,`))
	c.HandleText([]byte(`2["ping",1]`))
	c.HandleText([]byte(`51-7["file",{"_placeholder":true,"num":0}]`))
	c.HandleBinary([]byte{1, 2})
	c.HandleText([]byte(`2{}`))
	// Output:
	// 40{"sid":"sid-1"}
	// 42["welcome","hello"]
	// 44/chat,{"message":"auth required"}
	// 44/nope,{"message":"Invalid namespace"}
	// 42["ping-back",1]
	// 461-7[{"_placeholder":true,"num":0}]
	// <binary [1 2]>
	// closed: parse error
}

// One event encoded once and sent to many sockets, with the offset a
// client with connection state recovery keeps.
func ExamplePrepare() {
	p, err := socketio.Prepare("/", socketio.Event{Name: "news", Args: socketio.MustValues(map[string]any{"title": "hi"}), Offset: "1733400000000-0"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", p.Text())
	// Output:
	// 2["news",{"title":"hi"},"1733400000000-0"]
}
