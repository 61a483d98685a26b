package main

import (
	"context"
	"net/http"
	"sync"

	"github.com/heraldrt/herald/transport"
)

// options are the transport settings of `herald serve` (deflate on,
// threshold and level at their defaults, no context takeover), with the
// two changes the suite needs: a 64 MiB read limit (its largest message
// is 16 MiB) and no heartbeat, whose pings it would count as unexpected
// frames.
func options() transport.Options {
	return transport.Options{
		ReadLimit:    64 << 20,
		Compression:  true,
		PingInterval: -1,
	}
}

// echoServer upgrades every request and sends each message back with its
// type. It owns its connections: Shutdown closes them and waits until
// their reads have ended.
type echoServer struct {
	up       *transport.Upgrader
	blocking bool

	mu    sync.Mutex
	conns map[*transport.Conn]struct{}
	wg    sync.WaitGroup // one per connection, until its reads end
}

func newEchoServer(blocking bool) *echoServer {
	return &echoServer{
		up:       transport.NewUpgrader(options()),
		blocking: blocking,
		conns:    make(map[*transport.Conn]struct{}),
	}
}

func (s *echoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered
	}
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	e := &echoConn{s: s, c: c}
	if s.blocking {
		go e.readLoop()
		return
	}
	e.serveReads()
}

// echoConn is one connection's reader.
type echoConn struct {
	s *echoServer
	c *transport.Conn
}

// serveReads echoes every message that has arrived, then waits for the
// socket with NotifyReadable, which runs it again: no goroutine is held
// while the client is idle. Where the socket cannot be watched it goes
// on with blocking Reads.
func (e *echoConn) serveReads() {
	for {
		typ, msg, err := e.c.TryRead()
		if err == transport.ErrWouldBlock {
			if e.c.NotifyReadable(e.serveReads) {
				return
			}
			e.readLoop()
			return
		}
		if err != nil {
			e.end()
			return
		}
		e.echo(typ, msg)
	}
}

// readLoop echoes every message with blocking Reads until the connection
// ends.
func (e *echoConn) readLoop() {
	for {
		typ, msg, err := e.c.Read(context.Background())
		if err != nil {
			e.end()
			return
		}
		e.echo(typ, msg)
	}
}

func (e *echoConn) echo(typ transport.MessageType, msg []byte) {
	o := options()
	// A Send fails only once the connection is closing, which the next
	// read reports.
	_ = e.c.Send(transport.NewPrepared(typ, msg, o.CompressionThreshold, o.CompressionLevel))
}

// end runs once the connection's reads have ended (the read error has
// closed it, or is closing it).
func (e *echoConn) end() {
	<-e.c.Done()
	e.s.mu.Lock()
	delete(e.s.conns, e.c)
	e.s.mu.Unlock()
	e.s.wg.Done()
}

// Shutdown closes every connection with 1001 (going away), waits until
// their reads have ended and gives back the Upgrader's hold on the
// transport's background goroutines.
func (s *echoServer) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	conns := make([]*transport.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var closing sync.WaitGroup
	for _, c := range conns {
		closing.Go(func() { _ = c.Close(transport.CloseGoingAway, "server shutdown") })
	}
	closing.Wait()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.up.Close(ctx)
}
