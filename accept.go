package herald

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heraldrt/herald/internal/httphead"
	"github.com/heraldrt/herald/internal/idle"
	"github.com/heraldrt/herald/internal/query"
	"github.com/heraldrt/herald/transport"
)

// The accept path of Server.Serve: Herald's own accept loop for a
// server that wants its WebSocket connects cheap. net/http spends about
// a third of a connect's CPU on what an upgrade does not need (a
// connection object with its buffers and contexts, a background read
// started and aborted around the handler, the hijack); this path reads
// the request head itself, into a pooled buffer, and serves an upgrade
// on Config.Path with the same handler (serveWebSocket) and so the same
// rules. Everything else, and every head it does not fully understand,
// goes to the http.Server with the bytes already read replayed first.

// headBufSize bounds the head this path reads itself: a larger one goes
// to net/http, whose MaxHeaderBytes (at least this much) then applies.
const headBufSize = 4096

// defaultHeadTimeout bounds the reading of a head when the http.Server
// sets neither ReadHeaderTimeout nor ReadTimeout.
const defaultHeadTimeout = 10 * time.Second

var headBufs = sync.Pool{New: func() any { b := make([]byte, headBufSize); return &b }}

// Serve accepts connections on ln and serves them as hs would, except
// WebSocket upgrades to Config.Path, and the Engine.IO handshakes that
// open a session on the WebSocket transport at SocketIO.Path (a
// WebSocket-only Socket.IO client's connect: transport=websocket, no
// sid), which it reads and hands to the Server itself, without net/http:
// a connect then costs less CPU and leaves less garbage (see
// docs/benchmarks.md and docs/socketio.md). Every other request (the
// application's routes, /metrics, the API, Socket.IO's long-polling and
// its upgrade from polling, a head too large or unusual for the fast
// reader, TLS) goes to hs unchanged, through a listener that replays the
// bytes already read. It returns what hs.Serve returns: after
// hs.Shutdown or hs.Close, http.ErrServerClosed.
//
// An upgrade served this way reaches the Server directly, not through
// hs.Handler: middleware there does not see it. hs's ConnContext and
// ConnState hooks are called for it as net/http would (new, active,
// then hijacked or closed). Its head is read within hs.ReadHeaderTimeout
// (else hs.ReadTimeout, else 10 s) and at most 4 KiB, a refused upgrade
// is answered with Connection: close, and a connection whose head took
// that long is closed without an answer, as net/http does. ln must not
// be a TLS listener for the fast path to apply (TLS connections are
// handed to hs as they are).
//
// On Linux a *net.TCPListener's connections are accepted as bare
// sockets (transport.RawListener: not registered with Go's poller, so
// the transport takes an upgraded one over without duplicating it),
// with TCP_NODELAY and without TCP keep-alive whatever the listener was
// made with: heartbeats find dead WebSocket peers and hs's timeouts end
// idle HTTP connections. A connection handed to hs becomes a
// *net.TCPConn again. The listener is set to TCP_DEFER_ACCEPT: a
// connection is accepted when its client's first bytes arrive, so a
// client that connects and sends nothing is accepted about a second
// later, and its head timeout runs from then.
func (s *Server) Serve(ln net.Listener, hs *http.Server) error {
	a := &acceptor{
		s:       s,
		ln:      ln,
		hs:      hs,
		path:    s.cfg.Path,
		sioPath: s.sioFastPath(),
		conns:   make(chan net.Conn),
		work:    make(chan accepted),
		done:    make(chan struct{}),
		reading: make(map[net.Conn]struct{}),
	}
	a.workers = idle.Pool{Period: workerIdle, End: func() bool {
		select {
		case a.work <- accepted{}:
			return true
		default:
			return false
		}
	}}
	a.headTimeout = hs.ReadHeaderTimeout
	if a.headTimeout <= 0 {
		a.headTimeout = hs.ReadTimeout
	}
	if a.headTimeout <= 0 {
		a.headTimeout = defaultHeadTimeout
	}
	a.writeTimeout = hs.WriteTimeout
	if a.writeTimeout <= 0 {
		a.writeTimeout = s.cfg.WriteTimeout
	}
	a.baseCtx = context.Background()
	if hs.BaseContext != nil {
		a.baseCtx = hs.BaseContext(a)
		if a.baseCtx == nil {
			panic("BaseContext returned a nil context")
		}
	}
	a.baseCtx = context.WithValue(a.baseCtx, http.ServerContextKey, hs)
	a.raw = transport.NewRawListener(ln)
	if ta, ok := ln.Addr().(*net.TCPAddr); ok && a.raw != nil && !ta.IP.IsUnspecified() {
		a.localCtx = context.WithValue(a.baseCtx, http.LocalAddrContextKey, ta)
	}
	a.wg.Add(1)
	go a.acceptLoop()
	err := hs.Serve(a)
	_ = a.Close()
	a.wg.Wait()
	return err
}

// acceptor is the accept loop of one Serve call, and the net.Listener
// that hands its http.Server the connections it does not serve itself.
// Its goroutines (the loop, and workers, each serving one connection at
// a time until its head is read and it is handed on, answered or
// upgraded) end by Close, which closes the listener and every connection
// still being read; idle workers end then too.
type acceptor struct {
	s            *Server
	ln           net.Listener
	hs           *http.Server
	path         string
	sioPath      string // SocketIO.Path, whose WebSocket handshakes this path serves too ("" none)
	headTimeout  time.Duration
	writeTimeout time.Duration
	baseCtx      context.Context
	// raw accepts sockets without Go's poller (nil: ln.Accept);
	// localCtx is baseCtx with their local address when the listener's
	// tells it, which every request context then shares (nil: asked of
	// each socket).
	raw      *transport.RawListener
	localCtx context.Context

	conns chan net.Conn // to hs.Serve
	work  chan accepted // to an idle worker; closed when the accept loop ends
	// workers ends the workers not needed for workerIdle (by a zero
	// accepted on work).
	workers idle.Pool
	done    chan struct{} // closed by Close
	once    sync.Once

	mu      sync.Mutex
	closed  bool
	errLoop error                 // why the accept loop ended, if not Close
	reading map[net.Conn]struct{} // connections whose head is being read

	wg sync.WaitGroup
}

// Accept implements net.Listener for the http.Server: the connections
// the accept loop hands on.
func (a *acceptor) Accept() (net.Conn, error) {
	select {
	case c := <-a.conns:
		return c, nil
	case <-a.done:
		a.mu.Lock()
		err := a.errLoop
		a.mu.Unlock()
		if err == nil {
			err = net.ErrClosed
		}
		return nil, err
	}
}

// Close implements net.Listener: it stops the accept loop and ends every
// connection whose head is still being read.
func (a *acceptor) Close() error {
	a.stop(nil)
	return nil
}

// Addr implements net.Listener.
func (a *acceptor) Addr() net.Addr { return a.ln.Addr() }

func (a *acceptor) stop(err error) {
	a.once.Do(func() {
		a.mu.Lock()
		a.closed = true
		a.errLoop = err
		for nc := range a.reading {
			_ = nc.Close()
		}
		clear(a.reading)
		a.mu.Unlock()
		close(a.done)
		_ = a.ln.Close()
		if a.raw != nil {
			_ = a.raw.Close()
		}
	})
}

func (a *acceptor) acceptLoop() {
	defer a.wg.Done()
	// Idle workers end when the loop does (it alone sends on work but
	// for the pool's End, which Close stops).
	defer func() {
		a.workers.Close()
		close(a.work)
	}()
	var delay time.Duration
	for {
		var acc accepted
		var err error
		if a.raw != nil {
			acc.nc, acc.raddr, err = a.raw.Accept()
		} else {
			acc.nc, err = a.ln.Accept()
		}
		if err != nil {
			select {
			case <-a.done:
				return
			default:
			}
			if !temporaryAcceptError(err) {
				a.stop(err)
				return
			}
			// Out of descriptors or memory: wait, as net/http does.
			a.s.metrics.AcceptErrors.Inc()
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			a.s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-a.done:
				return
			}
			continue
		}
		delay = 0
		a.wg.Add(1)
		select {
		case a.work <- acc: // an idle worker's
		default:
			a.workers.Started()
			go a.worker(acc)
		}
	}
}

// workerIdle is how long a worker waits for its next connection: the
// workers the accept path did not need for a whole workerIdle end at its
// end (idle.Pool), so a worker left without connections ends after
// workerIdle to twice that.
const workerIdle = 10 * time.Second

// worker serves acc's connection, then the connections the accept loop
// hands it while it waits, until the workers' pool ends it (a zero
// accepted) or the accept loop ends (the acceptor closed). A worker
// keeps the stack the first connect grew (JSON, the token check, the
// welcome): a new goroutine per connection would grow its stack on every
// connect, a tenth of the CPU of the accept path. It waits in a plain
// receive: a select with an idle timer of its own cost a few per cent of
// a connect.
func (a *acceptor) worker(acc accepted) {
	defer a.workers.Exited()
	for {
		a.serveConn(acc)
		a.workers.Waiting()
		acc = <-a.work
		a.workers.Woken()
		if acc.nc == nil { // ended by the pool, or the accept loop ended
			return
		}
	}
}

// temporaryAcceptError reports whether an Accept error is one that goes
// away (descriptors or memory short, a connection reset before it was
// accepted).
func temporaryAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// track registers nc as being read, so that Close ends it; false once
// the acceptor is closed.
func (a *acceptor) track(nc net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.reading[nc] = struct{}{}
	return true
}

func (a *acceptor) untrack(nc net.Conn) {
	a.mu.Lock()
	delete(a.reading, nc)
	a.mu.Unlock()
}

// accepted is a connection the accept loop took, with its peer's address
// when the accept told it (nil: nc.RemoteAddr).
type accepted struct {
	nc    net.Conn
	raddr *net.TCPAddr
}

// serveConn reads the request head of acc's connection and serves it,
// or hands the connection on.
func (a *acceptor) serveConn(acc accepted) {
	nc := acc.nc
	if _, ok := nc.(*tls.Conn); ok {
		a.handOff(nc, nil)
		a.wg.Done()
		return
	}
	bp := headBufs.Get().(*[]byte)
	b := *bp
	// The head is usually there already (the listener's
	// TCP_DEFER_ACCEPT): judged at once, with no deadline to set and no
	// tracking for Close, which has nothing to end while nothing waits.
	n, err := transport.ReadAvailable(nc, b)
	switch {
	case err == transport.ErrWouldBlock:
		err = nil
	case err == nil && n == 0:
		err = io.EOF
	}
	head, rest, ok, decided := a.judgeHead(nc, b, n, err)
	if decided && ok {
		select {
		case <-a.done: // closed meanwhile, as track would have told
			ok = false
			_ = nc.Close()
		default:
		}
	}
	if !decided {
		if !a.track(nc) {
			_ = nc.Close()
			headBufs.Put(bp)
			a.wg.Done()
			return
		}
		head, rest, ok = a.readHead(nc, b, n)
		a.untrack(nc)
	}
	if !ok {
		headBufs.Put(bp)
		a.wg.Done()
		return
	}
	h, simple := httphead.Parse(head)
	var u url.URL
	var to endpoint
	if simple && isWebSocketUpgrade(h.Header) && parseTarget(&u, h.Target) {
		to = a.route(&u)
	}
	if to == toNetHTTP {
		replay := append(append(make([]byte, 0, len(head)+len(rest)), head...), rest...)
		headBufs.Put(bp)
		a.handOff(nc, replay)
		a.wg.Done()
		return
	}
	var after []byte
	if len(rest) > 0 {
		after = append([]byte(nil), rest...)
	}
	headBufs.Put(bp)
	a.serveUpgrade(acc, to, &h, &u, after)
}

// endpoint is the handler an upgrade read by the accept path goes to.
type endpoint int8

const (
	toNetHTTP  endpoint = iota // none: the http.Server serves it
	toV1                       // Config.Path: Server.serveWebSocket
	toEngineIO                 // an Engine.IO WebSocket handshake: the Engine.IO server
)

// route returns where the upgrade to u goes. On SocketIO.Path only an
// Engine.IO handshake that opens a session on the WebSocket transport
// (transport=websocket, no sid) is served here: that is every connect of
// a WebSocket-only client. Polling requests, and the WebSocket that
// upgrades a polling session (it carries its sid), go to net/http, as
// every request did before.
func (a *acceptor) route(u *url.URL) endpoint {
	switch {
	case u.Path == a.path:
		return toV1
	case a.sioPath != "" && u.Path == a.sioPath &&
		query.Get(u.RawQuery, "transport") == "websocket" && query.Get(u.RawQuery, "sid") == "":
		return toEngineIO
	}
	return toNetHTTP
}

// match tells from the first bytes b of a request whether its head is
// for the accept path to read (a GET of Config.Path or SocketIO.Path).
func (a *acceptor) match(b []byte) httphead.Decision {
	d := httphead.Match(b, a.path)
	if d == httphead.Mine || a.sioPath == "" {
		return d
	}
	switch httphead.Match(b, a.sioPath) {
	case httphead.Mine:
		return httphead.Mine
	case httphead.Undecided:
		return httphead.Undecided
	}
	return d
}

// readHead reads nc until its request head is whole (returned as a
// string of its own, and the bytes read past it, which alias b), b[:n]
// having been read (and judged) already. A request not for
// Config.Path, a head larger than b, or a client that ends its side
// before its head does is handed on from here (ok false); a client that
// sends no whole head in time is closed.
func (a *acceptor) readHead(nc net.Conn, b []byte, n int) (head string, rest []byte, ok bool) {
	_ = nc.SetReadDeadline(time.Now().Add(a.headTimeout))
	for {
		m, err := nc.Read(b[n:])
		n += m
		if head, rest, ok, decided := a.judgeHead(nc, b, n, err); decided {
			return head, rest, ok
		}
	}
}

// judgeHead judges b[:n], read from nc, and err, the last read's
// error: a whole head of ours (ok), or a connection handed on or closed
// (decided, not ok), or more to read (not decided).
func (a *acceptor) judgeHead(nc net.Conn, b []byte, n int, err error) (head string, rest []byte, ok, decided bool) {
	d := a.match(b[:n])
	plain := true
	if d == httphead.Mine {
		var end int
		if end, plain = httphead.End(b[:n]); end >= 0 {
			return string(b[:end]), b[end:n], true, true
		}
	}
	switch {
	case d == httphead.Other || !plain || n == len(b) || (err != nil && n > 0 && !isTimeout(err)):
		// net/http's answer, whatever it is.
		_ = nc.SetReadDeadline(time.Time{})
		a.handOff(nc, bytes.Clone(b[:n]))
		return "", nil, false, true
	case err != nil:
		// Nothing sent, or not in time: closed without an answer,
		// as net/http closes such a connection.
		_ = nc.Close()
		return "", nil, false, true
	}
	return "", nil, false, false
}

// parseTarget sets u to url.ParseRequestURI(target), false where that
// fails. A target of a path of characters that need no escape ('/',
// letters, digits, "-._~$&+,:;=@"), with a query or not, is parsed here,
// into u: ParseRequestURI would allocate the URL.
func parseTarget(u *url.URL, target string) bool {
	path, query, hasQuery := strings.Cut(target, "?")
	plain := len(path) > 0 && path[0] == '/'
	for i := 0; plain && i < len(path); i++ {
		switch c := path[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("/-._~$&+,:;=@", c) >= 0:
		default:
			plain = false
		}
	}
	if plain && !strings.ContainsFunc(query, isCTL) {
		// ParseRequestURI keeps the query as it is; a target that ends
		// in its only '?' has ForceQuery.
		*u = url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
		return true
	}
	p, err := url.ParseRequestURI(target)
	if err != nil {
		return false
	}
	*u = *p
	return true
}

// isCTL reports whether r is an ASCII control character, which a URL
// cannot hold.
func isCTL(r rune) bool { return r < ' ' || r == 0x7f }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isWebSocketUpgrade reports whether h asks for a WebSocket as the
// per-IP HTTP connection cap of herald serve tells (an Upgrade value
// that is "websocket"): requests it would count go to net/http.
func isWebSocketUpgrade(h http.Header) bool {
	for _, v := range h["Upgrade"] {
		if strings.EqualFold(strings.TrimSpace(v), "websocket") {
			return true
		}
	}
	return false
}

// remoteAddr is the peer's address of acc as net/http writes it
// (net.TCPAddr.String), in one allocation where the accept told it.
func remoteAddr(acc accepted) string {
	if a := acc.raddr; a != nil {
		return tcpAddrString(a)
	}
	return acc.nc.RemoteAddr().String()
}

// tcpAddrString is a.String() in one allocation (that takes three: the
// IP, the port and the two joined) for an address without a zone.
// net.IP.String writes an IPv4-mapped address as IPv4, as Unmap does, and
// net.JoinHostPort brackets what netip.AddrPort brackets: an IPv6 host.
func tcpAddrString(a *net.TCPAddr) string {
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok || a.Zone != "" || a.Port < 0 || a.Port > 0xffff {
		return a.String()
	}
	var buf [len("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")]byte
	return string(netip.AddrPortFrom(ip.Unmap(), uint16(a.Port)).AppendTo(buf[:0]))
}

// handOff gives nc to the http.Server, which reads buffered first.
func (a *acceptor) handOff(nc net.Conn, buffered []byte) {
	nc, err := transport.NetConn(nc) // a socket of Go's net, if it was raw
	if err != nil {
		a.s.log.Warn("accept: cannot hand a connection to the HTTP server", "err", err)
		return
	}
	var c net.Conn = nc
	if len(buffered) > 0 {
		c = &replayConn{Conn: nc, buf: buffered}
	}
	select {
	case a.conns <- c:
	case <-a.done:
		_ = nc.Close()
	}
}

// serveUpgrade serves the upgrade request h, read from nc, with the
// handler of to: the Server's WebSocket handler or its Engine.IO
// server's; after holds the bytes the client sent past the head.
func (a *acceptor) serveUpgrade(acc accepted, to endpoint, h *httphead.Head, u *url.URL, after []byte) {
	nc := acc.nc
	ctx := a.localCtx
	if ctx == nil {
		ctx = context.WithValue(a.baseCtx, http.LocalAddrContextKey, nc.LocalAddr())
	}
	if a.hs.ConnContext != nil {
		ctx = a.hs.ConnContext(ctx, nc)
		if ctx == nil {
			panic("ConnContext returned nil")
		}
	}
	a.setState(nc, http.StateNew)
	a.setState(nc, http.StateActive)
	var w *fastWriter
	var kept *keptRequest
	var reqURL *url.URL
	if to == toEngineIO {
		// The Socket.IO endpoint keeps an Engine.IO handshake's request
		// until the CONNECT: with its URL apart from the writer, the
		// writer is not kept with it (BenchmarkIdleConnMemory: 60-90 B
		// less heap in use per idle connection).
		w = &fastWriter{a: a, nc: nc, after: after}
		kept = &keptRequest{url: *u}
		reqURL = &kept.url
	} else {
		w = &fastWriter{a: a, nc: nc, after: after, url: *u}
		reqURL = &w.url
	}
	req := http.Request{
		Method:     h.Method,
		URL:        reqURL,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h.Header,
		Body:       http.NoBody,
		Host:       h.Host,
		RemoteAddr: remoteAddr(acc),
		RequestURI: h.Target,
	}
	var r *http.Request
	if to == toEngineIO {
		kept.req = *req.WithContext(ctx) // apart from the writer, with its URL
		r = &kept.req
	} else {
		// In the writer's allocation, which its URL already ties it to
		// (WithContext's copy stays on the stack).
		w.req = *req.WithContext(ctx)
		r = &w.req
	}
	defer func() {
		if v := recover(); v != nil {
			a.s.log.Error("panic serving a WebSocket upgrade", "panic", fmt.Sprint(v), "stack", string(debug.Stack()), "remote", r.RemoteAddr)
			if !w.taken {
				_ = nc.Close()
				a.setState(nc, http.StateClosed)
				a.wg.Done()
			}
		}
	}()
	if to == toEngineIO {
		a.s.sio.eng.ServeHTTP(w, r)
	} else {
		a.s.serveWebSocket(w, r)
	}
	if !w.taken {
		w.finish()
		a.setState(nc, http.StateClosed)
		a.wg.Done()
	}
}

func (a *acceptor) setState(nc net.Conn, st http.ConnState) {
	if a.hs.ConnState != nil {
		a.hs.ConnState(nc, st)
	}
}

// keptRequest is an Engine.IO handshake's request with its URL, in one
// 448 B allocation rather than a 320 B and a 144 B one. The Socket.IO
// endpoint keeps it until the CONNECT; then it is garbage, and a 320 B
// request was garbage in the size class of every connection's
// transport.Conn, where what it leaves when collected is room between
// live objects: heap in use (BenchmarkIdleConnMemory: 35 B less per idle
// Socket.IO connection). Nothing long-lived is 448 B.
type keptRequest struct {
	url url.URL
	req http.Request
}

// fastWriter is the http.ResponseWriter of an upgrade on the accept
// path: an upgrade takes the connection (transport.ConnTaker); any other
// answer is kept and written, with Connection: close, by finish.
type fastWriter struct {
	a     *acceptor
	nc    net.Conn
	after []byte
	// url and req are the request's URL and the request, made with the
	// writer in one allocation (but for an Engine.IO handshake:
	// serveUpgrade).
	url    url.URL
	req    http.Request
	header http.Header
	status int
	body   []byte
	taken  bool
}

var _ transport.ConnTaker = (*fastWriter)(nil)

func (w *fastWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	return w.header
}

func (w *fastWriter) WriteHeader(code int) {
	if w.status == 0 && !w.taken {
		w.status = code
	}
}

func (w *fastWriter) Write(p []byte) (int, error) {
	if w.taken {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// TakeConn implements transport.ConnTaker: the connection is the
// transport's from now on; the accept path is done with it.
func (w *fastWriter) TakeConn() (net.Conn, []byte) {
	w.taken = true
	w.a.setState(w.nc, http.StateHijacked)
	w.a.wg.Done()
	return w.nc, w.after
}

// finish writes the answer kept and closes the connection.
func (w *fastWriter) finish() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	h := w.Header()
	if h.Get("Content-Type") == "" && len(w.body) > 0 {
		h.Set("Content-Type", http.DetectContentType(w.body))
	}
	h.Set("Content-Length", strconv.Itoa(len(w.body)))
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var buf bytes.Buffer
	buf.Grow(256 + len(w.body))
	buf.WriteString("HTTP/1.1 ")
	buf.WriteString(strconv.Itoa(w.status))
	buf.WriteByte(' ')
	buf.WriteString(http.StatusText(w.status))
	buf.WriteString("\r\n")
	_ = h.Write(&buf)
	buf.WriteString("\r\n")
	buf.Write(w.body)
	_ = w.nc.SetWriteDeadline(time.Now().Add(w.a.writeTimeout))
	_, _ = w.nc.Write(buf.Bytes())
	_ = w.nc.Close()
}

// replayConn is a connection handed to net/http with the bytes the
// accept path read from it, which its first reads return.
type replayConn struct {
	net.Conn
	buf []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite shuts down the writing side where the connection can (TCP):
// net/http does so before it closes a connection whose request it did
// not read, so that the client gets the answer before a reset.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// UnwrapConn lets the transport take the socket of an upgrade that
// net/http served (Socket.IO's, say) as it takes any other, once nothing
// is left to replay.
func (c *replayConn) UnwrapConn() net.Conn {
	if len(c.buf) > 0 {
		return nil
	}
	return c.Conn
}
