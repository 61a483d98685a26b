package engineio_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/heraldrt/herald/transport/engineio"
)

// echo sends every message back to its sender.
type echo struct{}

func (echo) OnMessage(s *engineio.Socket, data []byte, binary bool) {
	if binary {
		_ = s.SendBinary(data)
	} else {
		_ = s.SendText(data)
	}
}

func (echo) OnClose(s *engineio.Socket, reason error) {
	log.Printf("session %s closed: %v", s.ID(), reason)
}

// ExampleNew serves an Engine.IO echo at /engine.io/, next to the
// application's own routes, and shuts it down with the HTTP server.
func ExampleNew() {
	eng, err := engineio.New(engineio.Config{
		PingInterval: 25 * time.Second,
		PingTimeout:  20 * time.Second,
		OnConnection: func(*engineio.Socket, *http.Request) engineio.Handler { return echo{} },
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/engine.io/", eng)
	srv := &http.Server{Addr: "localhost:3000", Handler: mux}
	go func() { _ = srv.ListenAndServe() }()

	// ... later:
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = eng.Shutdown(ctx)
	_ = srv.Shutdown(ctx)
}

// ExampleServer_NewMessage encodes a broadcast once and queues the same
// bytes to every session, whatever its transport.
func ExampleServer_NewMessage() {
	var eng *engineio.Server
	var room []*engineio.Socket
	m := eng.NewMessage([]byte(`2["news","hello"]`), false)
	for _, s := range room {
		_ = s.Send(m) // never blocks; over MaxBufferedBytes the session closes
	}
}
