package storm

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	jwtauth "github.com/heraldrt/herald/auth/jwt"
	"github.com/heraldrt/herald/bench/loadgen"
	"github.com/heraldrt/herald/client"
)

// hostPort returns the host:port of a ws:// URL.
func hostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("storm: bad node URL %q", raw)
	}
	return u.Host, nil
}

// token signs client i's HS256 token.
func token(secret string, i int) (string, error) {
	// It may join and publish to the scenario's rooms (bench-N).
	return jwtauth.Sign([]byte(secret), fmt.Sprintf("storm-user-%d", i), []string{"bench-*"}, []string{"bench-*"}, 2*time.Hour)
}

// heraldSet holds Herald Go clients.
type heraldSet struct {
	w       *worker
	mu      sync.Mutex
	clients []*client.Client
}

// failLog counts the Go client's failed reconnects from its log: the
// client reports each as "herald: reconnect failed" with the error.
type failLog struct {
	w *worker
}

func (h failLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h failLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "herald: reconnect failed" || !h.w.afterMark() {
		return nil
	}
	var err error
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			if e, ok := a.Value.Any().(error); ok {
				err = e
			}
			return false
		}
		return true
	})
	h.w.stats.fail(err)
	return nil
}
func (h failLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h failLog) WithGroup(string) slog.Handler      { return h }

func (s *heraldSet) start(ctx context.Context, m *member) error {
	w := s.w
	tok, err := token(w.spec.JWTSecret, m.idx)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return w.dial(ctx, m) },
	}}
	hdr := http.Header{}
	if w.spec.JWTSecret != "" {
		hdr.Set("Authorization", "Bearer "+tok)
	}
	room := loadgen.RoomName(m.room)
	// The state handler may run before Dial returns c.
	var cp atomic.Pointer[client.Client]
	c, err := client.Dial(ctx, w.spec.Nodes[m.order[0]],
		client.WithHTTPClient(hc), client.WithHeader(hdr), client.WithLogger(slog.New(failLog{w})),
		client.WithStateHandler(func(st client.State) {
			switch st {
			case client.Connected:
				// The handler runs after Dial returned c, on the
				// dispatch goroutine.
				c := cp.Load()
				if c == nil {
					return // the first connection: counted after the join
				}
				if w.afterMark() && c.Resumed() {
					w.stats.mu.Lock()
					w.stats.resumed++
					w.stats.mu.Unlock()
				}
				w.connected(m)
			default:
				m.up.Store(false)
			}
		}),
		client.WithRecoveryHandler(func(_ string, ok bool) {
			w.stats.mu.Lock()
			if ok {
				w.stats.recovered++
			} else {
				w.stats.notRecovered++
			}
			w.stats.mu.Unlock()
		}))
	if err != nil {
		return err
	}
	cp.Store(c)
	c.OnAny(func(ev client.Event) {
		if p, ok := loadgen.ParsePayload(ev.Data); ok {
			m.t.add(p.Seq)
		}
	})
	jctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.Join(jctx, room); err != nil {
		_ = c.Close()
		return fmt.Errorf("join %s: %w", room, err)
	}
	s.mu.Lock()
	s.clients = append(s.clients, c)
	s.mu.Unlock()
	w.connected(m)
	return nil
}

// close closes every client, 64 at a time (a close waits for the
// server's close frame, or its timeout when the node is gone).
func (s *heraldSet) close() {
	s.mu.Lock()
	cs := s.clients
	s.clients = nil
	s.mu.Unlock()
	s.w.closed.Store(true)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range cs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_ = c.Close()
		}()
	}
	wg.Wait()
}
