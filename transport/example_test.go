package transport_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/heraldrt/herald/transport"
)

// ExampleUpgrader echoes every message back to its sender. One Upgrader
// serves every connection: they share its Options.
func ExampleUpgrader() {
	u := transport.NewUpgrader(transport.Options{
		Compression:      true,
		CompressionLevel: 6,
		PingInterval:     20 * time.Second,
	})
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		hdr := http.Header{"X-Request-ID": {r.Header.Get("X-Request-ID")}}
		c, err := u.Upgrade(w, r, hdr)
		if err != nil {
			return // Upgrade already wrote the HTTP error
		}
		defer c.Terminate(nil)
		for {
			_, msg, err := c.Read(r.Context())
			if err != nil {
				log.Printf("connection from %v ended: %v", c.RemoteAddr(), err)
				return
			}
			if err := c.WriteText(msg); err != nil {
				return
			}
		}
	})
}

// ExampleNewPrepared encodes a broadcast once and hands the same frame
// bytes to every connection.
func ExampleNewPrepared() {
	var conns []*transport.Conn // the room's members
	p := transport.NewPrepared(transport.Text, []byte(`{"room":"lobby","text":"hi"}`), 0, 0)
	for _, c := range conns {
		// Never blocks; a full queue closes that one client with 4008.
		_ = c.Send(p)
	}
}

// ExampleConn_Close drains the server: queued messages are written first,
// then the close frame.
func ExampleConn_Close() {
	var conns []*transport.Conn
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range conns {
		go func() { _ = c.Close(transport.CloseGoingAway, "server shutdown") }()
	}
	for _, c := range conns {
		select {
		case <-c.Done():
		case <-ctx.Done():
			c.Terminate(ctx.Err())
		}
	}
}

// echoer serves one connection without a goroutine while it is idle.
type echoer struct{ c *transport.Conn }

// serve handles what has arrived, then asks to be called again.
func (e *echoer) serve() {
	for {
		_, msg, err := e.c.TryRead()
		if err == transport.ErrWouldBlock {
			if !e.c.NotifyReadable(e.serve) {
				e.readLoop() // not a watchable socket (e.g. TLS in-process)
			}
			return
		}
		if err != nil {
			return // the connection ended; Err says why
		}
		_ = e.c.WriteText(msg)
	}
}

func (e *echoer) readLoop() {
	for {
		_, msg, err := e.c.Read(context.Background())
		if err != nil {
			return
		}
		_ = e.c.WriteText(msg)
	}
}

// ExampleConn_NotifyReadable echoes messages the way Herald serves its
// clients: the HTTP handler returns after the upgrade, and a goroutine
// exists for a connection only while it has something to read.
func ExampleConn_NotifyReadable() {
	http.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := transport.Upgrade(w, r, transport.Options{}, nil)
		if err != nil {
			return
		}
		(&echoer{c: c}).serve()
	})
}
