package main

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// This file is the raw client of TestAutobahnCases: it builds every frame
// by hand (masking, fragmentation, reserved bits, chopped writes), reads
// the server's frames checking each against RFC 6455 / RFC 7692, and
// keeps what the Autobahn fuzzingclient keeps to judge a case: the
// events received (messages, pings, pongs) and how the connection ended.

const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// wait bounds every wait for something the server should do at once: a
// correct server never makes a case wait for it, so it is generous for a
// loaded machine.
const wait = 20 * time.Second

// event is what the fuzzingclient records: "message", "ping", "pong",
// and the "timeout" marks some cases add themselves.
type event struct {
	kind    string
	payload string
	binary  bool
}

func (e event) String() string {
	p := e.payload
	if len(p) > 40 {
		p = fmt.Sprintf("%q… (%d bytes)", p[:40], len(p))
	} else {
		p = strconv.Quote(p)
	}
	if e.kind == "message" {
		return fmt.Sprintf("message(%s, binary=%v)", p, e.binary)
	}
	return fmt.Sprintf("%s(%s)", e.kind, p)
}

// deflateParams is the permessage-deflate the server accepted.
type deflateParams struct {
	serverNoContext, clientNoContext bool
	serverWindowBits                 int // 15 unless the server said less
}

// item is what the reader goroutine saw: a complete message, a control
// frame, the end of the stream, or a violation of the protocol by the
// server.
type item struct {
	ev        event // for messages, pings and pongs
	close     bool
	closeCode int // 0: the close frame had no payload
	reason    string
	eof       error // the stream ended (io.EOF or a read error)
	violation string
}

// wsConn is one connection of a case.
type wsConn struct {
	t     testing.TB
	nc    net.Conn
	items chan item
	rng   *rand.Rand
	pmd   *deflateParams // nil without permessage-deflate

	comp    *flate.Writer // client compressor, made at first use
	compBuf bytes.Buffer

	events []event
	// How it ended, as the fuzzingclient counts it.
	closeSent   bool // the client sent a close frame
	closedByMe  bool // ... before the server did
	closeGot    bool // the server's close frame arrived
	remoteCode  int  // its code; 0 when it had none
	wasClean    bool // both close frames were exchanged and the server then closed TCP
	droppedByMe bool // the client had to drop TCP itself
	ended       bool
	violations  []string
	writeErr    error // a write of the client's timed out
}

// dial opens a WebSocket connection to addr, offering extensions (a
// Sec-WebSocket-Extensions value, "" for none), and starts its reader.
func dial(t testing.TB, addr, extensions string, seed uint64) *wsConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsConn{t: t, nc: nc, items: make(chan item, 256), rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	var key [16]byte
	for i := range key {
		key[i] = byte(c.rng.Uint32())
	}
	k := base64.StdEncoding.EncodeToString(key[:])
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + k + "\r\nSec-WebSocket-Version: 13\r\n"
	if extensions != "" {
		req += "Sec-WebSocket-Extensions: " + extensions + "\r\n"
	}
	_ = nc.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		nc.Close()
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		t.Fatalf("handshake: %v", err)
	}
	_ = nc.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		t.Fatalf("handshake: status %d", resp.StatusCode)
	}
	sum := sha1.Sum([]byte(k + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		nc.Close()
		t.Fatalf("Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || !strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		nc.Close()
		t.Fatalf("101 without Upgrade: websocket / Connection: Upgrade: %v", resp.Header)
	}
	if ext := resp.Header.Values("Sec-WebSocket-Extensions"); len(ext) > 0 {
		pmd, err := parseDeflateAnswer(ext, extensions)
		if err != nil {
			nc.Close()
			t.Fatalf("handshake: %v", err)
		}
		c.pmd = pmd
	}
	go c.readLoop(br)
	t.Cleanup(func() { c.nc.Close() })
	return c
}

// parseDeflateAnswer checks the server's Sec-WebSocket-Extensions answer
// against the offer (RFC 7692 section 7.1): one permessage-deflate,
// parameters known, not repeated, with valid values, and a window size
// parameter only where the offer allows one.
func parseDeflateAnswer(values []string, offer string) (*deflateParams, error) {
	if len(values) != 1 || strings.Contains(values[0], ",") {
		return nil, fmt.Errorf("more than one extension accepted: %q", values)
	}
	if offer == "" {
		return nil, fmt.Errorf("extension %q accepted without an offer", values[0])
	}
	parts := strings.Split(values[0], ";")
	if strings.TrimSpace(parts[0]) != "permessage-deflate" {
		return nil, fmt.Errorf("accepted %q, not offered", parts[0])
	}
	p := &deflateParams{serverWindowBits: 15}
	seen := map[string]bool{}
	for _, param := range parts[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(param), "=")
		if seen[name] {
			return nil, fmt.Errorf("parameter %s twice in %q", name, values[0])
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover":
			p.serverNoContext = true
		case "client_no_context_takeover":
			p.clientNoContext = true
		case "server_max_window_bits":
			bits, err := strconv.Atoi(value)
			if !hasValue || err != nil || bits < 8 || bits > 15 {
				return nil, fmt.Errorf("bad server_max_window_bits in %q", values[0])
			}
			// The server may only narrow what the client asked for.
			offered := 0
			if i := strings.Index(offer, "server_max_window_bits="); i >= 0 {
				v := offer[i+len("server_max_window_bits="):]
				offered, _ = strconv.Atoi(v[:strings.IndexFunc(v+";", func(r rune) bool { return r < '0' || r > '9' })])
			}
			if offered == 0 || bits > offered {
				return nil, fmt.Errorf("server_max_window_bits=%d answered to %q", bits, offer)
			}
			p.serverWindowBits = bits
		case "client_max_window_bits":
			if !strings.Contains(offer, "client_max_window_bits") {
				return nil, fmt.Errorf("client_max_window_bits answered to %q, which does not offer it", offer)
			}
			// Go's compressor always uses a 32 KiB window: a client
			// limited below it could not comply.
			return nil, fmt.Errorf("client_max_window_bits=%s answered: this client cannot follow it", value)
		default:
			return nil, fmt.Errorf("unknown parameter %q in %q", name, values[0])
		}
	}
	return p, nil
}

// readLoop reads the server's frames until the stream ends, checking
// each, and hands messages, pings, pongs, the close frame and the end to
// the case.
func (c *wsConn) readLoop(br *bufio.Reader) {
	defer close(c.items)
	var (
		inMessage  bool
		compressed bool
		binaryMsg  bool
		msg        []byte
		window     []byte // the server's output, for its context takeover
		inflater   io.ReadCloser
		closed     bool
	)
	violation := func(format string, args ...any) {
		c.items <- item{violation: fmt.Sprintf(format, args...)}
	}
	for {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			c.items <- item{eof: err}
			return
		}
		fin, rsv, op := hdr[0]&0x80 != 0, hdr[0]>>4&7, hdr[0]&0xf
		if hdr[1]&0x80 != 0 {
			violation("masked server frame")
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				c.items <- item{eof: err}
				return
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				c.items <- item{eof: err}
				return
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if n > 1<<30 {
			violation("frame length %d", n)
			c.items <- item{eof: errors.New("unreadable frame")}
			return
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			c.items <- item{eof: err}
			return
		}
		if closed {
			violation("frame (opcode %d) after the close frame", op)
		}
		if rsv&3 != 0 {
			violation("RSV2/RSV3 set")
		}
		if op >= opClose {
			switch {
			case !fin:
				violation("fragmented control frame")
			case n > 125:
				violation("control frame of %d bytes", n)
			case rsv != 0:
				violation("RSV1 on a control frame")
			}
		}
		switch op {
		case opText, opBinary:
			if inMessage {
				violation("new message inside a fragmented one")
			}
			if rsv&4 != 0 && c.pmd == nil {
				violation("RSV1 without permessage-deflate")
			}
			inMessage, compressed, binaryMsg, msg = true, rsv&4 != 0, op == opBinary, payload
		case opCont:
			if !inMessage {
				violation("continuation without a message")
			}
			if rsv != 0 {
				violation("RSV1 on a continuation frame")
			}
			msg = append(msg, payload...)
		case opPing:
			c.items <- item{ev: event{kind: "ping", payload: string(payload)}}
			continue
		case opPong:
			c.items <- item{ev: event{kind: "pong", payload: string(payload)}}
			continue
		case opClose:
			closed = true
			it := item{close: true}
			switch {
			case n == 1:
				violation("close frame with a 1-byte payload")
			case n >= 2:
				it.closeCode = int(binary.BigEndian.Uint16(payload))
				it.reason = string(payload[2:])
				if !sendableCloseCode(it.closeCode) {
					violation("close code %d sent on the wire", it.closeCode)
				}
				if !utf8.Valid(payload[2:]) {
					violation("close reason not UTF-8")
				}
			}
			c.items <- it
			continue
		default:
			violation("unknown opcode %d", op)
			continue
		}
		if !fin {
			continue
		}
		inMessage = false
		if compressed {
			if c.pmd.serverWindowBits < 15 {
				// Go's flate reader takes any distance up to 32 KiB and
				// cannot tell whether the server kept to a smaller
				// window; Herald sends such clients plain frames.
				violation("compressed message with server_max_window_bits=%d", c.pmd.serverWindowBits)
			}
			if c.pmd.serverNoContext {
				window = nil
			}
			src := io.MultiReader(bytes.NewReader(msg), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))
			if inflater == nil {
				inflater = flate.NewReaderDict(src, window)
			} else {
				_ = inflater.(flate.Resetter).Reset(src, window)
			}
			out, err := io.ReadAll(inflater)
			if err != nil {
				violation("inflate: %v", err)
			}
			if !c.pmd.serverNoContext {
				window = append(window, out...)
				if len(window) > 32<<10 {
					window = window[len(window)-32<<10:]
				}
			}
			msg = out
		}
		if !binaryMsg && !utf8.Valid(msg) {
			violation("text message not UTF-8")
		}
		c.items <- item{ev: event{kind: "message", payload: string(msg), binary: binaryMsg}}
	}
}

// sendableCloseCode reports whether an endpoint may send code (RFC 6455
// section 7.4): never 1005, 1006 or 1015, nor an unassigned code.
func sendableCloseCode(code int) bool {
	return code >= 1000 && code <= 1003 || code >= 1007 && code <= 1014 || code >= 3000 && code <= 4999
}

// frameBytes builds one client frame, masked with a fresh key; rsv is
// the three reserved bits (RSV1 = 4).
func (c *wsConn) frameBytes(op byte, payload []byte, fin bool, rsv byte) []byte {
	b := make([]byte, 0, 14+len(payload))
	b0 := op | rsv<<4
	if fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := c.rng.Uint32()
	b = binary.BigEndian.AppendUint32(b, key)
	k := b[len(b)-4:]
	start := len(b)
	b = append(b, payload...)
	for i := range payload {
		b[start+i] ^= k[i&3]
	}
	return b
}

// sendOpts are how a frame goes out: fin (default true), the reserved
// bits, chopped into writes of chop bytes, or written alone (sync).
type sendOpts struct {
	notFin bool
	rsv    byte
	chop   int
	sync   bool
}

// send writes one frame.
func (c *wsConn) send(op byte, payload []byte, o sendOpts) {
	c.write(c.frameBytes(op, payload, !o.notFin, o.rsv), o.chop, o.sync)
}

// write writes b, in pieces of chop bytes when chop > 0, each in its own
// write, so that the server gets them in separate reads (as the
// fuzzingclient's chopped and "sync" writes do); small pieces are
// followed by a pause, so that they arrive apart. sync alone pauses
// after b. A write that fails after the server has closed is left to the
// reader; one that times out is the client's failure (writeErr).
func (c *wsConn) write(b []byte, chop int, sync bool) {
	if chop <= 0 {
		chop = len(b)
	}
	pause := sync || len(b) <= 4096 && chop < len(b)
	for first := true; first || len(b) > 0; first = false {
		n := min(chop, len(b))
		_ = c.nc.SetWriteDeadline(time.Now().Add(wait))
		if _, err := c.nc.Write(b[:n]); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && c.writeErr == nil {
				c.writeErr = err
			}
			return
		}
		b = b[n:]
		if pause {
			time.Sleep(50 * time.Microsecond)
		}
	}
}

// sendMessage sends a data message as the fuzzingclient's sendMessage
// does: compressed when permessage-deflate was negotiated, then cut into
// frames of fragment bytes (0: one frame).
func (c *wsConn) sendMessage(payload []byte, binaryMsg bool, fragment int) {
	op, rsv := byte(opText), byte(0)
	if binaryMsg {
		op = opBinary
	}
	if c.pmd != nil {
		payload, rsv = c.compress(payload), 4
	}
	if fragment <= 0 || len(payload) <= fragment {
		c.send(op, payload, sendOpts{rsv: rsv})
		return
	}
	var frames []byte
	for first := true; len(payload) > 0; first = false {
		n := min(fragment, len(payload))
		o, r := byte(opCont), byte(0)
		if first {
			o, r = op, rsv
		}
		frames = append(frames, c.frameBytes(o, payload[:n], n == len(payload), r)...)
		payload = payload[n:]
	}
	c.write(frames, 0, false)
}

// compress deflates one message for the negotiated parameters: the sync
// flush's 00 00 ff ff removed, the compressor reset before each message
// when the server asked for client_no_context_takeover.
func (c *wsConn) compress(p []byte) []byte {
	switch {
	case c.comp == nil:
		c.comp, _ = flate.NewWriter(&c.compBuf, flate.BestSpeed)
	case c.pmd.clientNoContext:
		c.compBuf.Reset()
		c.comp.Reset(&c.compBuf)
	}
	start := c.compBuf.Len()
	_, _ = c.comp.Write(p)
	_ = c.comp.Flush()
	out := bytes.TrimSuffix(c.compBuf.Bytes()[start:], []byte{0, 0, 0xff, 0xff})
	return append([]byte(nil), out...)
}

// closeBody is a close frame payload: code and reason.
func closeBody(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// closeFrame sends a close frame with payload p (see closeBody; nil for
// none).
func (c *wsConn) closeFrame(p []byte) {
	if !c.closeGot && !c.closeSent {
		c.closedByMe = true
	}
	c.closeSent = true
	c.send(opClose, p, sendOpts{})
}

// pump takes what the reader saw until done reports true, the stream
// ends, or d passes; it reports whether done did. A server close frame
// is answered (1000) as the fuzzingclient answers it.
func (c *wsConn) pump(d time.Duration, done func() bool) bool {
	if done != nil && done() {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for !c.ended {
		select {
		case it, ok := <-c.items:
			if !ok {
				c.ended = true
				return done != nil && done()
			}
			c.take(it)
			if done != nil && done() {
				return true
			}
		case <-timer.C:
			return false
		}
	}
	return done != nil && done()
}

func (c *wsConn) take(it item) {
	switch {
	case it.violation != "":
		c.violations = append(c.violations, it.violation)
	case it.close:
		c.closeGot = true
		c.remoteCode = it.closeCode
		c.wasClean = true
		if !c.closeSent {
			c.closeFrame(closeBody(1000, ""))
		}
	case it.eof != nil:
		c.ended = true
		if !c.closeGot || !c.closeSent {
			c.wasClean = false
		}
	default:
		c.events = append(c.events, it.ev)
	}
}

// await waits until the events received equal want, and reports whether
// they did.
func (c *wsConn) await(want []event) bool {
	return c.pump(wait, func() bool { return eventsEqual(c.events, want) })
}

// quiet takes what arrives during d and reports whether the connection
// is still open (no close frame, no end) after it.
func (c *wsConn) quiet(d time.Duration) bool {
	c.pump(d, nil)
	return !c.ended && !c.closeGot
}

// closeByClient runs the closing handshake from the client's side:
// close frame, the server's reply, and the server closing TCP, each
// within wait; a server that does not close TCP is dropped (unclean).
func (c *wsConn) closeByClient(code int, reason string) {
	if c.ended {
		return
	}
	if !c.closeSent {
		c.closeFrame(closeBody(code, reason))
	}
	c.finish()
}

// finish waits until the server closes TCP, or drops the connection
// after wait as the fuzzingclient's timers do.
func (c *wsConn) finish() {
	if !c.pump(wait, func() bool { return c.ended }) {
		c.wasClean = false
		c.droppedByMe = true
		c.ended = true
	}
	c.nc.Close()
	// The reader ends on the closed socket; take what it still had.
	for it := range c.items {
		if it.violation != "" {
			c.violations = append(c.violations, it.violation)
		}
	}
}

func eventsEqual(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
