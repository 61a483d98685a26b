package storm

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/heraldrt/herald/bench/loadgen"
)

// sioSet holds Socket.IO clients speaking the protocol as bench/loadgen
// does (WebSocket transport only), each reconnecting by itself as
// socket.io-client would, on the Go client's schedule (backoff), and
// joining its room again: Socket.IO has no history, so what was published
// meanwhile is lost to it.
type sioSet struct {
	w  *worker
	wg sync.WaitGroup

	mu    sync.Mutex
	conns map[*member]*loadgen.WSConn
}

// connect runs one attempt for m: WebSocket, Engine.IO open, Socket.IO
// CONNECT with the token, join.
func (s *sioSet) connect(ctx context.Context, m *member, hdr http.Header) (*loadgen.WSConn, error) {
	w := s.w
	var c *loadgen.WSConn
	err := w.attempt(ctx, m, func(node int) error {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var err error
		c, err = loadgen.Dial(dctx, w.spec.Nodes[node], loadgen.DialOptions{LocalIP: m.localIP, Header: hdr})
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := w.spec.Kind.Open(c, 10*time.Second); err != nil {
		c.Close()
		return nil, err
	}
	if err := w.spec.Kind.Join(c, loadgen.RoomName(m.room), 1, 10*time.Second); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (s *sioSet) start(ctx context.Context, m *member) error {
	hdr := http.Header{}
	if s.w.spec.JWTSecret != "" {
		tok, err := token(s.w.spec.JWTSecret, m.idx)
		if err != nil {
			return err
		}
		hdr.Set("Authorization", "Bearer "+tok)
	}
	c, err := s.connect(ctx, m, hdr)
	if err != nil {
		return err
	}
	s.w.connected(m)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(ctx, m, c, hdr)
	}()
	return nil
}

// set records m's current connection, so that close can end it; it
// reports false once the set is closing.
func (s *sioSet) set(m *member, c *loadgen.WSConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w.closed.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*member]*loadgen.WSConn{}
	}
	s.conns[m] = c
	return true
}

// run reads m's connection and reconnects it when it fails, until ctx
// ends or the set closes.
func (s *sioSet) run(ctx context.Context, m *member, c *loadgen.WSConn, hdr http.Header) {
	w := s.w
	kind := w.spec.Kind
	for {
		if !s.set(m, c) {
			c.Close()
			return
		}
		started := time.Now()
		for {
			msg, err := c.Read()
			if err != nil {
				break
			}
			if kind.Control(c, msg) {
				continue
			}
			if p, ok := loadgen.ParsePayload(msg); ok {
				m.t.add(p.Seq)
			}
		}
		m.up.Store(false)
		c.Close()
		attempt := 0
		if time.Since(started) < 10*time.Second {
			attempt = 1
		}
		for {
			if w.closed.Load() || !sleep(ctx, backoff(attempt)) {
				return
			}
			attempt++
			var err error
			if c, err = s.connect(ctx, m, hdr); err == nil {
				break
			}
			if w.afterMark() {
				w.stats.fail(err)
			}
		}
		w.connected(m)
	}
}

// close ends every connection and waits for the readers.
func (s *sioSet) close() {
	s.mu.Lock()
	s.w.closed.Store(true)
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
