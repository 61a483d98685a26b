package transport

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// HandshakeError is a request that is not a valid WebSocket opening
// handshake: the HTTP status it is answered with (400, 405 or 426) and
// what is wrong with it.
type HandshakeError struct {
	Status  int
	Message string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("transport: handshake: %d %s", e.Status, e.Message)
}

// SetHeaders adds the response headers that go with the status: Allow
// for 405, Sec-WebSocket-Version for 426.
func (e *HandshakeError) SetHeaders(h http.Header) {
	switch e.Status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodGet)
	case http.StatusUpgradeRequired:
		h.Set("Sec-WebSocket-Version", "13")
	}
}

// CheckHandshake reports whether r is a valid WebSocket opening handshake
// (RFC 6455 section 4.2.1) without answering it: nil, or the error
// Upgrade would answer with. A server that refuses upgrades for other
// reasons too (authentication, limits) calls it first, so that a request
// that is not an upgrade at all is told so, cheaply, in its own format.
func CheckHandshake(r *http.Request) *HandshakeError {
	_, herr := checkHandshake(r)
	return herr
}

// Handshake is a request that ValidHandshake found to be a valid
// WebSocket opening handshake, for Upgrader.UpgradeHeldHandshake, which
// upgrades it without checking it again. Only this package makes one:
// the zero Handshake is refused.
type Handshake struct {
	r   *http.Request
	key string // Sec-WebSocket-Key, trimmed
}

// ValidHandshake is CheckHandshake for a server that checks a request
// first and upgrades it later: it also returns the request as checked,
// so that Upgrader.UpgradeHeldHandshake need not check it again.
func ValidHandshake(r *http.Request) (Handshake, *HandshakeError) {
	key, herr := checkHandshake(r)
	if herr != nil {
		return Handshake{}, herr
	}
	return Handshake{r: r, key: key}, nil
}

// ConnTaker is implemented by the http.ResponseWriter of an accept path
// that reads requests itself instead of through net/http (see
// herald.Server.Serve): Upgrade takes the connection from it instead of
// hijacking it, with the bytes already read past the request, which the
// connection reads first. The writer must not use the connection after
// TakeConn.
type ConnTaker interface {
	TakeConn() (nc net.Conn, buffered []byte)
}

// Upgrader accepts WebSocket connections with one set of Options, which
// every connection it accepts shares instead of holding a copy. It is safe
// for concurrent use.
type Upgrader struct {
	opts   Options
	closed atomic.Bool
}

// NewUpgrader returns an Upgrader for opts; zero fields take their
// defaults. It holds the package's background goroutines until Close
// (see Upgrader.Close).
func NewUpgrader(opts Options) *Upgrader {
	hold()
	refreshSockcalls()
	u := &Upgrader{opts: opts.withDefaults()}
	u.opts.queues = opts.Queues
	if u.opts.queues == nil {
		u.opts.queues = NewQueueBudget(u.opts.MaxQueuedBytes)
	}
	u.opts.reading = opts.Reading
	if u.opts.reading == nil {
		u.opts.reading = NewReadBudget(u.opts.MaxReadingBytes)
	}
	u.opts.takeover = opts.Takeover
	if u.opts.takeover == nil {
		u.opts.takeover = NewReadBudget(u.opts.MaxTakeoverBytes)
	}
	return u
}

// QueuedBytes returns the bytes the Upgrader's connections hold queued
// or being written to slow peers (see Options.MaxQueuedBytes): with
// Options.Queues, what every holder of that budget counts in it.
func (u *Upgrader) QueuedBytes() int64 {
	return u.opts.queues.Used()
}

// ReadingBytes returns the bytes the Upgrader's connections hold in read
// buffers beyond the pooled one (see Options.MaxReadingBytes): with
// Options.Reading, what every holder of that budget counts in it.
func (u *Upgrader) ReadingBytes() int64 {
	return u.opts.reading.Used()
}

// Upgrade is NewUpgrader(opts).Upgrade(w, r, respHeader), for a server
// that accepts few connections or varies Options per connection. It
// takes no hold on the background goroutines: they still end once no
// connection needs them, but nothing waits for them.
func Upgrade(w http.ResponseWriter, r *http.Request, opts Options, respHeader http.Header) (*Conn, error) {
	u := &Upgrader{opts: opts.withDefaults()}
	u.opts.reading = opts.Reading // nil: no bound across connections
	u.opts.takeover = opts.Takeover
	return u.Upgrade(w, r, respHeader)
}

// Upgrade completes the WebSocket opening handshake (RFC 6455 section 4.2)
// and arms its heartbeat. Every header in respHeader
// is added to the 101 response, except the ones the handshake itself owns.
//
// On Linux, a hijacked *net.TCPConn or *net.UnixConn is closed once its
// descriptor has been duplicated: the Conn holds the socket from then on
// (see the package documentation), so a listener or ConnState hook that
// keeps the net.Conn must not use it after the upgrade.
//
// When the request is not a valid WebSocket upgrade, Upgrade writes a
// plain-text 400, 405 or 426 response, hijacks nothing and returns an
// error.
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request, respHeader http.Header) (*Conn, error) {
	return u.upgrade(w, r, respHeader, false)
}

// UpgradeHeld is Upgrade for a server whose first message (a welcome)
// follows the handshake: the connection starts held (see Conn.Hold) and
// its 101 response waits to be written together with the first message
// of Release, in one write. That saves a system call per connection and,
// on the peer's side, the wakeup for a response that carries nothing it
// can use yet. Until the first write the client sees no response: a
// server that may take long before its first message (a remote session
// store) keeps the client waiting for its 101 that long. Control frames
// (a heartbeat's ping) and a close frame sent meanwhile go out behind
// the response, so the stream stays valid whatever comes first.
func (u *Upgrader) UpgradeHeld(w http.ResponseWriter, r *http.Request, respHeader http.Header) (*Conn, error) {
	return u.upgrade(w, r, respHeader, true)
}

// UpgradeHeldHandshake is UpgradeHeld for a request that ValidHandshake
// accepted (h), which it does not check again. The request must not have
// changed since. A zero Handshake is answered with a 500 and an error.
func (u *Upgrader) UpgradeHeldHandshake(w http.ResponseWriter, h Handshake, respHeader http.Header) (*Conn, error) {
	if h.r == nil {
		http.Error(w, "websocket upgrade of an unchecked request", http.StatusInternalServerError)
		return nil, errUncheckedHandshake
	}
	return u.upgradeChecked(w, h.r, h.key, respHeader, true)
}

var errUncheckedHandshake = errors.New("transport: UpgradeHeldHandshake of a Handshake that ValidHandshake did not return")

func (u *Upgrader) upgrade(w http.ResponseWriter, r *http.Request, respHeader http.Header, held bool) (*Conn, error) {
	key, herr := checkHandshake(r)
	if herr != nil {
		herr.SetHeaders(w.Header())
		http.Error(w, herr.Message, herr.Status)
		return nil, herr
	}
	return u.upgradeChecked(w, r, key, respHeader, held)
}

// upgradeChecked is upgrade once r is known valid, with its trimmed
// Sec-WebSocket-Key.
func (u *Upgrader) upgradeChecked(w http.ResponseWriter, r *http.Request, key string, respHeader http.Header, held bool) (*Conn, error) {
	opts := &u.opts

	var neg negotiated
	var extHeader string
	if opts.Compression {
		neg, extHeader = negotiateDeflate(r.Header.Values("Sec-Websocket-Extensions"), opts.ContextTakeover)
	}
	neg.subprotocol = selectSubprotocol(r, opts.Subprotocols)

	var nc net.Conn
	var prefix []byte
	if t, ok := w.(ConnTaker); ok {
		nc, prefix = t.TakeConn()
	} else {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "websocket upgrade unsupported", http.StatusInternalServerError)
			return nil, fmt.Errorf("transport: hijack: %w", err)
		}
		nc = c
		// Bytes the client sent right after the request are already in
		// brw's buffer; keep them, then read straight from the socket.
		// net/http's buffers are not kept.
		if n := brw.Reader.Buffered(); n > 0 {
			b, _ := brw.Reader.Peek(n)
			prefix = append([]byte(nil), b...)
		}
	}

	// A held response gets room for a welcome frame behind it (see
	// Conn.takeTurn), so that the two go out from one buffer.
	size := 256
	if held {
		size = 512
	}
	resp := make([]byte, 0, size)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = appendAcceptKey(resp, key)
	resp = append(resp, "\r\n"...)
	if neg.subprotocol != 0 {
		resp = append(resp, "Sec-WebSocket-Protocol: "...)
		resp = append(resp, opts.Subprotocols[neg.subprotocol-1]...)
		resp = append(resp, "\r\n"...)
	}
	if extHeader != "" {
		resp = append(resp, "Sec-WebSocket-Extensions: "...)
		resp = append(resp, extHeader...)
		resp = append(resp, "\r\n"...)
	}
	resp = appendExtraHeaders(resp, respHeader)
	resp = append(resp, "\r\n"...)

	_ = nc.SetDeadline(time.Time{})
	if held {
		c := newConn(nc, prefix, opts, neg)
		c.held = true
		// The pending write and its one buffer in one allocation.
		pw := new(struct {
			pendingWrite
			one [1][]byte
		})
		pw.one[0] = resp
		pw.bufs = pw.one[:]
		c.w.pending = &pw.pendingWrite
		c.start()
		return c, nil
	}
	_ = nc.SetWriteDeadline(time.Now().Add(opts.WriteTimeout))
	if _, err := nc.Write(resp); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("transport: write handshake: %w", err)
	}
	_ = nc.SetWriteDeadline(time.Time{})

	c := newConn(nc, prefix, opts, neg)
	c.bytesOut.Add(uint64(len(resp)))
	c.start()
	return c, nil
}

// checkHandshake validates the upgrade request and returns its
// Sec-WebSocket-Key, trimmed (see appendAcceptKey).
func checkHandshake(r *http.Request) (string, *HandshakeError) {
	if r.Method != http.MethodGet {
		return "", &HandshakeError{http.StatusMethodNotAllowed, "websocket upgrade requires GET"}
	}
	if !r.ProtoAtLeast(1, 1) {
		return "", &HandshakeError{http.StatusBadRequest, "websocket upgrade requires HTTP/1.1"}
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return "", &HandshakeError{http.StatusBadRequest, `missing "Upgrade: websocket" header`}
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return "", &HandshakeError{http.StatusBadRequest, `missing "Connection: Upgrade" header`}
	}
	// Header keys are spelled canonically ("Sec-Websocket-Key", as
	// net/http and the accept path store them): a lookup in another
	// spelling costs an allocation per call to canonicalize it.
	if v := strings.TrimSpace(r.Header.Get("Sec-Websocket-Version")); v != "13" {
		return "", &HandshakeError{http.StatusUpgradeRequired, "unsupported websocket version, want 13"}
	}
	keys := r.Header.Values("Sec-Websocket-Key")
	if len(keys) > 1 {
		// RFC 6455 section 11.3.1: it must not appear more than once.
		return "", &HandshakeError{http.StatusBadRequest, "more than one Sec-WebSocket-Key header"}
	}
	var key string
	if len(keys) == 1 {
		key = strings.TrimSpace(keys[0])
	}
	if key == "" {
		return "", &HandshakeError{http.StatusBadRequest, "missing Sec-WebSocket-Key header"}
	}
	if !validKey(key) {
		return "", &HandshakeError{http.StatusBadRequest, "invalid Sec-WebSocket-Key header"}
	}
	return key, nil
}

// maxKeyLen bounds the Sec-WebSocket-Key checked without an allocation:
// 16 bytes are 24 in base64; only line breaks, which the decoder skips
// and a header cannot hold, would make a valid key longer.
const maxKeyLen = 64

// validKey reports whether key is the base64 of 16 bytes, as RFC 6455
// section 4.2.1 asks.
func validKey(key string) bool {
	var raw [maxKeyLen]byte
	if len(key) > maxKeyLen {
		b, err := base64.StdEncoding.DecodeString(key)
		return err == nil && len(b) == 16
	}
	n, err := base64.StdEncoding.Decode(raw[:], []byte(key))
	return err == nil && n == 16
}

// appendAcceptKey appends the Sec-WebSocket-Accept value for key to b,
// without allocating for a key of usual length.
func appendAcceptKey(b []byte, key string) []byte {
	var buf [maxKeyLen + len(acceptGUID)]byte
	in := append(buf[:0], key...)
	h := sha1.Sum(append(in, acceptGUID...))
	return base64.StdEncoding.AppendEncode(b, h[:])
}

func acceptKey(key string) string { return string(appendAcceptKey(nil, key)) }

// headerHasToken reports whether a comma-separated header contains token,
// compared case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// selectSubprotocol returns 1 + the index in supported of the first
// subprotocol, in server preference, that the client offers; 0 if none is.
func selectSubprotocol(r *http.Request, supported []string) uint8 {
	if len(supported) == 0 {
		return 0
	}
	var offered []string
	for _, v := range r.Header.Values("Sec-Websocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				offered = append(offered, p)
			}
		}
	}
	for i, s := range supported[:min(len(supported), math.MaxUint8)] {
		for _, o := range offered {
			if s == o {
				return uint8(i + 1)
			}
		}
	}
	return 0
}

// appendExtraHeaders appends h in wire form, skipping the headers that the
// handshake sets and any value that would break the response framing.
func appendExtraHeaders(b []byte, h http.Header) []byte {
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k)
		switch ck {
		case "Upgrade", "Connection", "Sec-Websocket-Accept", "Sec-Websocket-Protocol", "Sec-Websocket-Extensions", "Content-Length", "Transfer-Encoding":
			continue
		}
		if strings.ContainsAny(ck, "\r\n: ") {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			b = append(b, ck...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return b
}

// negotiated holds the subprotocol and the permessage-deflate parameters
// agreed for a conn, in two bytes of Conn.
type negotiated struct {
	// subprotocol is 1 + the index of the chosen subprotocol in
	// Options.Subprotocols, 0 for none.
	subprotocol uint8
	// deflate is 0 when permessage-deflate was not negotiated.
	deflate deflateFlags
}

// deflateFlags are the permessage-deflate parameters of a connection.
type deflateFlags uint8

const (
	// deflateOn: permessage-deflate was negotiated.
	deflateOn deflateFlags = 1 << iota
	// deflateServerContext: this side keeps its compressor across
	// messages.
	deflateServerContext
	// deflateClientContext: the client keeps its compressor, so the
	// inflater must be primed with the previous 32 KiB of output.
	deflateClientContext
	// deflateSmallWindow: the client accepts back-references only within
	// a window smaller than the 32 KiB that compress/flate always uses
	// (server_max_window_bits below 15), so messages are sent
	// uncompressed, which permessage-deflate allows for any message; the
	// client's own messages are still compressed.
	deflateSmallWindow
)

type deflateOffer struct {
	serverNoContext bool
	clientNoContext bool
	// serverWindowBits is the offer's server_max_window_bits, 0 if none.
	serverWindowBits int
}

// negotiateDeflate picks the first acceptable permessage-deflate offer
// from the Sec-WebSocket-Extensions values and returns the response
// header value, or "" when no offer is acceptable.
func negotiateDeflate(values []string, contextTakeover bool) (negotiated, string) {
	for _, v := range values {
		for ext := range strings.SplitSeq(v, ",") {
			offer, ok := parseDeflateOffer(ext)
			if !ok {
				continue
			}
			resp := "permessage-deflate"
			n := negotiated{deflate: deflateOn}
			switch {
			case !contextTakeover:
				resp += "; server_no_context_takeover; client_no_context_takeover"
			default:
				if offer.serverNoContext {
					resp += "; server_no_context_takeover"
				} else {
					n.deflate |= deflateServerContext
				}
				if offer.clientNoContext {
					resp += "; client_no_context_takeover"
				} else {
					n.deflate |= deflateClientContext
				}
			}
			// Accepting server_max_window_bits means answering it with
			// the same or a smaller value (RFC 7692 section 7.1.2.1).
			if bits := offer.serverWindowBits; bits != 0 {
				resp += "; server_max_window_bits=" + strconv.Itoa(bits)
				if bits < 15 {
					n.deflate |= deflateSmallWindow
				}
			}
			return n, resp
		}
	}
	return negotiated{}, ""
}

// parseDeflateOffer parses one extension offer. ok is false when ext is
// not permessage-deflate or has parameters this server cannot honour
// (RFC 7692 section 7.1: such an offer is declined, not failed).
func parseDeflateOffer(ext string) (o deflateOffer, ok bool) {
	parts := strings.Split(ext, ";")
	if !strings.EqualFold(strings.TrimSpace(parts[0]), "permessage-deflate") {
		return o, false
	}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.Trim(strings.TrimSpace(value), `"`)
		if name == "" || seen[name] {
			return o, false
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover":
			if hasValue {
				return o, false
			}
			o.serverNoContext = true
		case "client_no_context_takeover":
			if hasValue {
				return o, false
			}
			o.clientNoContext = true
		case "server_max_window_bits":
			// compress/flate always uses a 32 KiB window: with a smaller
			// one the connection sends its messages uncompressed (see
			// deflateSmallWindow).
			bits, err := strconv.Atoi(value)
			if err != nil || bits < 8 || bits > 15 {
				return o, false
			}
			o.serverWindowBits = bits
		case "client_max_window_bits":
			// The inflater accepts any window up to 32 KiB.
			if hasValue {
				if bits, err := strconv.Atoi(value); err != nil || bits < 8 || bits > 15 {
					return o, false
				}
			}
		default:
			return o, false
		}
	}
	return o, true
}
