package engineio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/maphash"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	eio "github.com/heraldrt/herald/protocol/engineio"
	"github.com/heraldrt/herald/transport"
)

// Server is an Engine.IO v4 server: an http.Handler that serves the
// polling and WebSocket transports of every session under the path it is
// mounted at (e.g. "/engine.io/" or "/socket.io/"). It is safe for
// concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	upgrader *transport.Upgrader
	clock    *clock
	shards   [sessionShards]sessionShard
	seed     maphash.Seed

	ping, pongProbe *transport.Prepared // shared frames

	openWSTmpl, openPollTmpl openTemplate // the open packets, but for the sid

	// lifeMu orders Shutdown after every handshake that added a session
	// and every request that entered: they hold it for reading.
	lifeMu   sync.RWMutex
	closed   bool           // guarded by lifeMu
	wg       sync.WaitGroup // requests in progress and goroutines the server starts
	sessions atomic.Int64
	stats    counters
	dones    doneChans // Socket.Done's channels

	// probeUpgraded, when set (by tests), runs between a probe's
	// handshake and its becoming the session's probe.
	probeUpgraded func(*Socket)
}

const sessionShards = 16

type sessionShard struct {
	mu sync.RWMutex
	m  map[sid]*Socket
}

// counters are the totals Stats reports.
type counters struct {
	handshakesPolling, handshakesWS, upgrades atomic.Uint64
	polling                                   atomic.Int64
	closed                                    [numReasons]atomic.Uint64
	refused                                   atomic.Uint64
}

// The close reasons counted by Stats, in Stats.Closed order.
var reasons = [...]error{ErrPingTimeout, ErrTransportClose, ErrTransportError, ErrParse,
	ErrPayloadTooLarge, ErrForcedClose, ErrServerShutdown, ErrBufferFull, ErrInternal}

const numReasons = len(reasons)

// Stats are a Server's counters, for metrics.
type Stats struct {
	Sessions   int64 // open sessions
	Polling    int64 // of which on HTTP long-polling
	Handshakes struct{ Polling, WebSocket uint64 }
	Upgrades   uint64 // polling sessions upgraded to WebSocket
	// Closed counts closed sessions by reason (the Err* values' messages).
	Closed map[string]uint64
	// Refused counts requests answered with an Engine.IO error.
	Refused uint64
}

// New returns a Server for cfg. It holds the transport package's
// background goroutines until Shutdown.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, seed: maphash.MakeSeed(), log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.clock = newClock(func(so *Socket) { so.tick() })
	for i := range s.shards {
		s.shards[i].m = make(map[sid]*Socket)
	}
	if !cfg.DisableWebSocket {
		s.upgrader = transport.NewUpgrader(cfg.WebSocket)
	}
	s.openWSTmpl, s.openPollTmpl = s.newOpenTemplate(false), s.newOpenTemplate(true)
	s.ping = s.newControl("2")
	s.pongProbe = s.newControl("3probe")
	return s, nil
}

func (s *Server) newControl(text string) *transport.Prepared {
	return transport.NewPrepared(transport.Text, []byte(text), math.MaxInt, 0) // never compressed
}

// NewMessage encodes an Engine.IO message once, to be sent to any number
// of sockets with Socket.Send: a text message as the frame "4"+data, a
// binary one as a binary frame of data, compressed for WebSocket clients
// as Config.WebSocket says. Polling clients get the same bytes ('b' and
// base64 for binary).
func (s *Server) NewMessage(data []byte, binary bool) *transport.Prepared {
	o := &s.cfg.WebSocket
	if binary {
		return transport.NewPrepared(transport.Binary, data, o.CompressionThreshold, o.CompressionLevel)
	}
	b := make([]byte, transport.FrameHeadroom+1+len(data))
	b[transport.FrameHeadroom] = '0' + byte(eio.Message)
	copy(b[transport.FrameHeadroom+1:], data)
	return transport.NewPreparedInPlace(transport.Text, b, o.CompressionThreshold, o.CompressionLevel)
}

// NewMessageInPlace is NewMessage for a text message encoded at
// b[MessageHeadroom:]: the packet type and frame header are written in
// front of it, so the data is neither copied nor held twice. b must not
// be used by the caller afterwards.
func (s *Server) NewMessageInPlace(b []byte) *transport.Prepared {
	o := &s.cfg.WebSocket
	b[transport.FrameHeadroom] = '0' + byte(eio.Message)
	return transport.NewPreparedInPlace(transport.Text, b, o.CompressionThreshold, o.CompressionLevel)
}

// MessageHeadroom is the room NewMessageInPlace needs in front of the
// data.
const MessageHeadroom = transport.FrameHeadroom + 1

// queues is the budget of what the sessions hold for their clients:
// polling buffers and WebSocket send queues (Config.MaxBufferedBytes).
func (s *Server) queues() *transport.QueueBudget { return s.cfg.WebSocket.Queues }

// QueuedBytes returns what the sessions hold for their clients, polling
// buffers and WebSocket send queues, as counted in Config.WebSocket.Queues
// (with whatever else counts in that budget when it is shared).
func (s *Server) QueuedBytes() int64 { return s.queues().Used() }

// Len returns the number of open sessions.
func (s *Server) Len() int { return int(s.sessions.Load()) }

// Polling returns how many sessions are on HTTP long-polling, counting
// each polling handshake from when its place is reserved (before
// AllowRequest): they hold no socket, and Config.MaxPolling bounds
// them.
func (s *Server) Polling() int { return int(s.stats.polling.Load()) }

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Sessions: s.sessions.Load(),
		Polling:  s.stats.polling.Load(),
		Upgrades: s.stats.upgrades.Load(),
		Refused:  s.stats.refused.Load(),
		Closed:   make(map[string]uint64, numReasons),
	}
	st.Handshakes.Polling = s.stats.handshakesPolling.Load()
	st.Handshakes.WebSocket = s.stats.handshakesWS.Load()
	for i, r := range reasons {
		st.Closed[r.Error()] = s.stats.closed[i].Load()
	}
	return st
}

// Socket returns session sid, or nil if this server does not know it
// (a session closed by its client stays known for closeLinger, closed).
// Only sessions that began on polling are known by their id: one opened
// on WebSocket is never asked for again by its client.
func (s *Server) Socket(id string) *Socket {
	k, ok := parseSID(id)
	if !ok {
		return nil
	}
	sh := s.shard(k)
	sh.mu.RLock()
	so := sh.m[k]
	sh.mu.RUnlock()
	return so
}

func (s *Server) shard(k sid) *sessionShard {
	return &s.shards[maphash.Bytes(s.seed, k[:])%sessionShards]
}

// enter counts a request in wg, unless Shutdown has begun.
func (s *Server) enter() bool {
	s.lifeMu.RLock()
	defer s.lifeMu.RUnlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// add registers a new session, unless Shutdown has begun. A session that
// began on polling goes into the sid map, where its later requests (and
// an upgrade) find it. One opened on WebSocket has no later request to
// be found by: the clock's heap, which it enters now with its first
// ping scheduled, is all the registry it needs (see all), and saves the
// map entry (about 50 B a session).
func (s *Server) add(so *Socket) bool {
	s.lifeMu.RLock()
	defer s.lifeMu.RUnlock()
	if s.closed {
		return false
	}
	if so.mapped {
		sh := s.shard(so.id)
		sh.mu.Lock()
		sh.m[so.id] = so
		sh.mu.Unlock()
	} else {
		so.startHeartbeat()
	}
	s.sessions.Add(1)
	return true
}

// remove forgets a closed session and counts why it closed.
// It runs once per session (from finish); linger leaves the sid known
// (see closeLinger) until unmap.
func (s *Server) remove(so *Socket, reason error, linger bool) {
	if !linger {
		s.unmap(so)
	}
	s.sessions.Add(-1)
	s.clock.remove(so)
	s.stats.closed[reasonIndex(reason)-1].Add(1)
}

// unmap forgets sid so.id.
func (s *Server) unmap(so *Socket) {
	if !so.mapped {
		return
	}
	sh := s.shard(so.id)
	sh.mu.Lock()
	if sh.m[so.id] == so {
		delete(sh.m, so.id)
	}
	sh.mu.Unlock()
}

// all returns every open session (and those lingering after a close):
// those of the sid map, and those opened on WebSocket, which are in the
// clock's heap from add until they close.
func (s *Server) all() []*Socket {
	var out []*Socket
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, so := range sh.m {
			out = append(out, so)
		}
		sh.mu.RUnlock()
	}
	s.clock.each(func(so *Socket) {
		if !so.mapped {
			out = append(out, so)
		}
	})
	return out
}

// sid is a session id: 15 random bytes, whose text (String) is their
// unpadded URL-safe base64, 20 characters, like the reference server's
// base64id. A session holds the bytes, not the text: 24 B less each.
type sid [15]byte

// newSID returns a random session id.
func newSID() (k sid) {
	_, _ = rand.Read(k[:]) // never fails (crypto/rand panics instead)
	return k
}

func (k sid) String() string { return base64.RawURLEncoding.EncodeToString(k[:]) }

// parseSID returns the session id whose text is s.
func parseSID(s string) (k sid, ok bool) {
	if len(s) != base64.RawURLEncoding.EncodedLen(len(k)) {
		return k, false
	}
	n, err := base64.RawURLEncoding.Strict().Decode(k[:], []byte(s))
	return k, err == nil && n == len(k)
}

// Shutdown closes every session with ErrServerShutdown (WebSockets with
// a 1001 close frame, a pending poll with a close packet), stops the
// heartbeats and waits until every goroutine the server started has
// ended and the transport's are given back, or ctx ends. Requests that
// arrive afterwards get 503. A second call only waits.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lifeMu.Lock()
	s.closed = true
	s.lifeMu.Unlock()
	for _, so := range s.all() {
		so.closeWith(ErrServerShutdown)
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		// Out of time: drop what is still closing.
		for _, so := range s.all() {
			so.finish(ErrServerShutdown)
		}
		s.clock.stop()
		return errors.Join(errors.New("engineio: shutdown: sessions still closing"), ctx.Err())
	}
	s.clock.stop()
	if s.upgrader != nil {
		return s.upgrader.Close(ctx)
	}
	return nil
}

// handshake returns the open packet's data for a new session.
func (s *Server) handshake(sid string, polling bool) []byte {
	h := eio.Handshake{
		SID:          sid,
		PingInterval: int(s.cfg.PingInterval / time.Millisecond),
		PingTimeout:  int(s.cfg.PingTimeout / time.Millisecond),
		MaxPayload:   s.cfg.MaxPayload,
	}
	if polling && !s.cfg.DisableWebSocket {
		h.Upgrades = []string{"websocket"}
	}
	p, err := eio.OpenPacket(h)
	if err != nil {
		panic("engineio: handshake: " + err.Error()) // New validated every field
	}
	return p.Data
}

// writeError answers a refused polling request: the status and JSON body
// of the reference server.
func (s *Server) writeError(w http.ResponseWriter, code eio.ErrorCode, msg string) {
	s.stats.refused.Add(1)
	body := code.Body()
	if msg != "" {
		body, _ = json.Marshal(struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}{int(code), msg})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code.HTTPStatus())
	_, _ = w.Write(body)
}

// refuseUpgrade answers a refused WebSocket upgrade as the reference
// server does: 400 with the message as text.
func (s *Server) refuseUpgrade(w http.ResponseWriter, code eio.ErrorCode, msg string) {
	s.stats.refused.Add(1)
	if msg == "" {
		msg = code.Message()
	}
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write([]byte(msg))
}
