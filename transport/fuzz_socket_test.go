package transport

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// The fuzz targets here go through what runs in production: a real
// loopback TCP socket (taken over as a raw descriptor on Linux), the
// Upgrader behind net/http, and TryRead with NotifyReadable as the
// server reads, or Read on a goroutine of its own.

const fuzzReadLimit = 4096

// fuzzServer upgrades every request with opts and hands the connections
// over.
type fuzzServer struct {
	addr  string
	conns chan fuzzUpgrade
}

type fuzzUpgrade struct {
	c   *Conn
	err error
}

func newFuzzServer(f *testing.F, opts Options) *fuzzServer {
	fs := &fuzzServer{conns: make(chan fuzzUpgrade, 1)}
	// No hold on the background goroutines (NewUpgrader): other tests'
	// connections may still use them when this one ends.
	u := &Upgrader{opts: opts.withDefaults()}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only upgrades are handed over: each answered 101, and the
		// client takes it before it sends its next request.
		if c, err := u.Upgrade(w, r, nil); err == nil {
			select {
			case fs.conns <- fuzzUpgrade{c, err}:
			default: // an earlier one was never taken
				c.Terminate(nil)
			}
		}
	}))
	srv.Config.ReadHeaderTimeout = 5 * time.Second
	srv.Start()
	f.Cleanup(func() {
		fs.drop()
		srv.Close()
		fs.drop()
	})
	fs.addr = srv.Listener.Addr().String()
	return fs
}

// dial opens a TCP connection to the server and sends the upgrade
// request, with extraHeader (CRLF-terminated lines) added.
func (fs *fuzzServer) dial(t *testing.T, extraHeader string) (net.Conn, *bufio.Reader, *http.Response, string) {
	t.Helper()
	nc, err := net.Dial("tcp", fs.addr)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	key := base64.StdEncoding.EncodeToString(raw)
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\n" + extraHeader + "\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		nc.Close()
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	_ = nc.SetReadDeadline(time.Time{})
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	return nc, br, resp, key
}

// drop terminates upgraded connections no client took (a 101 the client
// could not read).
func (fs *fuzzServer) drop() {
	for {
		select {
		case u := <-fs.conns:
			u.c.Terminate(nil)
			<-u.c.Done()
		default:
			return
		}
	}
}

// next returns the server side of the latest upgrade.
func (fs *fuzzServer) next(t *testing.T) fuzzUpgrade {
	t.Helper()
	select {
	case u := <-fs.conns:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no upgrade")
		return fuzzUpgrade{}
	}
}

// fuzzMessage is one data message as a reader returned it.
type fuzzMessage struct {
	typ MessageType
	msg []byte
}

// checkMessage reports a message that breaks the type, UTF-8 or size
// rules.
func checkMessage(t *testing.T, typ MessageType, msg []byte) {
	if typ != Text && typ != Binary {
		t.Errorf("message type %d", typ)
	}
	if typ == Text && !utf8.Valid(msg) {
		t.Error("invalid UTF-8 in a text message")
	}
	if len(msg) > fuzzReadLimit {
		t.Errorf("message of %d bytes over the %d limit", len(msg), fuzzReadLimit)
	}
}

// readOverPipe reads data the way FuzzReadFrames does, with Read over
// net.Pipe, all at once: the reference the socket paths must agree with.
func readOverPipe(t *testing.T, opts *Options, neg negotiated, data []byte) []fuzzMessage {
	srv, cli := net.Pipe()
	c := newConn(srv, nil, opts, neg)
	c.start()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _ = cli.Write(data)
		_ = cli.Close()
	}()
	go func() {
		defer wg.Done()
		_, _ = io.Copy(io.Discard, cli)
	}()
	var got []fuzzMessage
	for {
		typ, msg, err := c.Read(context.Background())
		if err != nil {
			break
		}
		got = append(got, fuzzMessage{typ, msg})
	}
	c.Terminate(nil)
	<-c.Done()
	_ = cli.Close()
	wg.Wait()
	return got
}

// FuzzSocketFrames sends arbitrary bytes after a real upgrade over
// loopback TCP, cut into chunks at arbitrary points (splits: each byte
// is the next chunk's length - 1). With bit 2 of flags the server reads
// as Herald does, with TryRead and NotifyReadable, and each chunk is
// written only once the server has read all it could of the ones before
// (so a chunk boundary is a read boundary, mid-header or mid-payload);
// otherwise with Read on a goroutine. Bit 0 offers permessage-deflate,
// bit 1 with client_no_context_takeover. The messages read must be the
// ones Read returns for the same bytes over net.Pipe all at once, and
// obey the type, UTF-8 and size rules.
func FuzzSocketFrames(f *testing.F) {
	hello := mframe(true, opText, []byte("hello"))
	f.Add(byte(4), []byte{2, 0, 0}, hello)
	f.Add(byte(0), []byte{0}, hello)
	f.Add(byte(5), []byte{1, 3, 200}, frame(true, rsv1Bit, opText, deflateBytes(f, []byte("hello hello hello"), 1), true))
	f.Add(byte(7), []byte{5}, append(frame(true, rsv1Bit, opText, deflateBytes(f, []byte("abc abc"), 1), true),
		frame(true, rsv1Bit, opBinary, deflateBytes(f, []byte("xyz xyz"), 1), true)...))
	f.Add(byte(4), []byte{0, 1, 2, 3}, append(append(mframe(false, opText, []byte("frag")), mframe(true, opPing, []byte("p"))...),
		mframe(true, opContinuation, []byte("ment"))...))
	f.Add(byte(4), []byte{100}, mframe(true, opBinary, bytes.Repeat([]byte{7}, 3000)))

	opts := Options{ReadLimit: fuzzReadLimit, PingInterval: -1, Compression: true, ContextTakeover: true}
	fs := newFuzzServer(f, opts)
	fullOpts := opts.withDefaults()

	f.Fuzz(func(t *testing.T, flags byte, splits []byte, data []byte) {
		var ext string
		if flags&1 != 0 {
			ext = "Sec-WebSocket-Extensions: permessage-deflate"
			if flags&2 != 0 {
				ext += "; client_no_context_takeover"
			}
			ext += "\r\n"
		}
		nc, br, resp, _ := fs.dial(t, ext)
		defer nc.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d", resp.StatusCode)
		}
		up := fs.next(t)
		if up.err != nil {
			t.Fatal(up.err)
		}
		c := up.c
		want := readOverPipe(t, &fullOpts, c.neg, data)

		var mu sync.Mutex
		var got []fuzzMessage
		drained := make(chan struct{}, 1)
		ended := make(chan struct{})
		if flags&4 != 0 {
			var serve func()
			serve = func() {
				for {
					typ, msg, err := c.TryRead()
					if err == ErrWouldBlock {
						select {
						case drained <- struct{}{}:
						default:
						}
						if !c.NotifyReadable(serve) {
							t.Error("NotifyReadable refused a TCP connection")
							close(ended)
						}
						return
					}
					if err != nil {
						close(ended)
						return
					}
					checkMessage(t, typ, msg)
					mu.Lock()
					got = append(got, fuzzMessage{typ, msg})
					mu.Unlock()
				}
			}
			go serve()
		} else {
			go func() {
				defer close(ended)
				for {
					typ, msg, err := c.Read(context.Background())
					if err != nil {
						return
					}
					checkMessage(t, typ, msg)
					mu.Lock()
					got = append(got, fuzzMessage{typ, msg})
					mu.Unlock()
				}
			}()
		}
		// The server's frames: pongs, and a close frame when it fails the
		// connection, after which it reads no more than it discards.
		discarded := make(chan struct{})
		serverClosed := make(chan struct{})
		go func() {
			defer close(discarded)
			rc := &rawClient{tb: t, nc: nc, br: br}
			closed := false
			for {
				f, err := rc.readFrame()
				if err != nil {
					break
				}
				if f.op == opClose && !closed {
					close(serverClosed)
					closed = true
				}
			}
			_ = nc.SetReadDeadline(time.Time{})
			_, _ = io.Copy(io.Discard, br)
		}()

		rest := data
	write:
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(splits) > 0 {
				n = min(n, int(splits[i%len(splits)])+1)
			}
			if flags&4 != 0 {
				select {
				case <-drained: // the server read all it could of what came before
				case <-ended:
					break write
				case <-serverClosed:
					break write
				case <-time.After(5 * time.Second):
					t.Fatal("the server did not read what it was sent")
				}
			} else {
				select {
				case <-ended:
					break write // the server reads no more
				case <-serverClosed:
					break write
				default:
				}
			}
			if _, err := nc.Write(rest[:n]); err != nil {
				break
			}
			rest = rest[n:]
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatal("the reader did not end after EOF")
		}
		c.Terminate(nil)
		<-c.Done()
		nc.Close()
		<-discarded
		mu.Lock()
		defer mu.Unlock()
		if !slices.EqualFunc(got, want, func(a, b fuzzMessage) bool { return a.typ == b.typ && bytes.Equal(a.msg, b.msg) }) {
			t.Errorf("over the socket %d messages, over a pipe %d", len(got), len(want))
		}
	})
}

// FuzzUpgradeRequest sends an arbitrary request to a real server whose
// handler upgrades it. The server must answer (never hang or crash), and
// a 101 must carry the right Sec-WebSocket-Accept, an extension only if
// one was offered, and then carry frames both ways.
func FuzzUpgradeRequest(f *testing.F) {
	base := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	f.Add([]byte(base + "\r\n"))
	f.Add([]byte(base + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"))
	f.Add([]byte(base + "Sec-WebSocket-Protocol: chat, herald.v1\r\n\r\n"))
	f.Add([]byte(strings.Replace(base, "Upgrade: websocket", "Upgrade: WebSocket, h2c", 1) + "\r\n"))
	f.Add([]byte(strings.Replace(base, "13", "8", 1) + "\r\n"))
	f.Add([]byte(strings.Replace(base, "GET", "POST", 1) + "Content-Length: 3\r\n\r\nabc"))
	f.Add([]byte(base + "\r\n" + string(mframe(true, opText, []byte("early")))))

	opts := Options{ReadLimit: fuzzReadLimit, PingInterval: -1, Compression: true, ContextTakeover: true,
		Subprotocols: []string{"herald.v1"}}
	fs := newFuzzServer(f, opts)

	f.Fuzz(func(t *testing.T, req []byte) {
		fs.drop()
		nc, err := net.Dial("tcp", fs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(req); err != nil {
			return // the server answered and closed before all of it
		}
		_ = nc.(*net.TCPConn).CloseWrite()
		br := bufio.NewReader(nc)
		resp, err := http.ReadResponse(br, nil)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return // net/http closes on a request it cannot parse at all
		}
		if err != nil {
			t.Fatalf("response: %v", err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			if resp.StatusCode < 400 {
				t.Errorf("status %d for a request that was not upgraded", resp.StatusCode)
			}
			return
		}
		parsed, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req)))
		if err != nil {
			t.Fatalf("101 for a request net/http cannot parse: %v", err)
		}
		if got, want := resp.Header.Get("Sec-WebSocket-Accept"), acceptKey(parsed.Header.Get("Sec-WebSocket-Key")); got != want {
			t.Errorf("Sec-WebSocket-Accept %q, want %q", got, want)
		}
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" && len(parsed.Header.Values("Sec-WebSocket-Extensions")) == 0 {
			t.Errorf("extension %q accepted without an offer", ext)
		}
		if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" && p != "herald.v1" {
			t.Errorf("subprotocol %q was not the server's", p)
		}
		up := fs.next(t)
		if up.err != nil {
			t.Fatalf("101 but Upgrade failed: %v", up.err)
		}
		c := up.c
		// The server's side works: a message goes out, and the client's
		// EOF (CloseWrite above) ends its reads.
		if err := c.WriteText([]byte("hi")); err != nil {
			t.Errorf("write after upgrade: %v", err)
		}
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				break
			}
		}
		c.Terminate(nil)
		<-c.Done()
		_, _ = io.Copy(io.Discard, br)
	})
}

// FuzzDeflateNegotiation offers an arbitrary Sec-WebSocket-Extensions
// value on a real upgrade, then uses what the server answered as a
// client would: three compressed messages (each repeating the last, so
// that context takeover matters) are echoed and must come back intact.
// Context takeover on the server is bit 0 of flags.
func FuzzDeflateNegotiation(f *testing.F) {
	for _, offer := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"permessage-deflate; client_max_window_bits=10, permessage-deflate",
		"x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=15",
		"permessage-deflate; server_max_window_bits=10, permessage-deflate; client_no_context_takeover",
		`permessage-deflate; client_max_window_bits="12"`,
		"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
	} {
		f.Add(byte(0), offer)
		f.Add(byte(1), offer)
	}
	servers := [2]*fuzzServer{
		newFuzzServer(f, Options{ReadLimit: 1 << 16, PingInterval: -1, Compression: true, CompressionThreshold: 1}),
		newFuzzServer(f, Options{ReadLimit: 1 << 16, PingInterval: -1, Compression: true, CompressionThreshold: 1, ContextTakeover: true}),
	}

	f.Fuzz(func(t *testing.T, flags byte, offer string) {
		if strings.ContainsAny(offer, "\r\n\x00") || !validHeaderValue(offer) {
			t.Skip("not a header value a client can send")
		}
		fs := servers[flags&1]
		nc, br, resp, _ := fs.dial(t, "Sec-WebSocket-Extensions: "+offer+"\r\n")
		defer nc.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d for an upgrade with an extension offer", resp.StatusCode)
		}
		up := fs.next(t)
		if up.err != nil {
			t.Fatal(up.err)
		}
		c := up.c
		defer func() { c.Terminate(nil); <-c.Done() }()
		go echo(c)

		answer := resp.Header.Values("Sec-WebSocket-Extensions")
		if len(answer) > 1 {
			t.Fatalf("%d extension headers", len(answer))
		}
		var deflate, serverNoContext, clientNoContext bool
		serverWindowBits := 15
		if len(answer) == 1 {
			params := strings.Split(answer[0], ";")
			if strings.TrimSpace(params[0]) != "permessage-deflate" {
				t.Fatalf("answered %q", answer[0])
			}
			deflate = true
			for _, p := range params[1:] {
				p = strings.TrimSpace(p)
				switch {
				case p == "server_no_context_takeover":
					serverNoContext = true
				case p == "client_no_context_takeover":
					clientNoContext = true
				case strings.HasPrefix(p, "server_max_window_bits=") && strings.Contains(offer, "server_max_window_bits"):
					bits, err := strconv.Atoi(strings.TrimPrefix(p, "server_max_window_bits="))
					if err != nil || bits < 8 || bits > 15 {
						t.Fatalf("answer %q: bad server_max_window_bits", answer[0])
					}
					serverWindowBits = bits
				default:
					t.Fatalf("answer %q has a parameter the client did not ask for or cannot follow", answer[0])
				}
			}
			if !offered(offer) {
				t.Fatalf("answered %q to %q, which offers no acceptable permessage-deflate", answer[0], offer)
			}
		} else if offered(offer) && acceptableOffer(offer) {
			t.Fatalf("declined %q", offer)
		}

		rc := &rawClient{tb: t, nc: nc, br: br, resp: resp}
		var comp *flate.Writer
		var compBuf bytes.Buffer
		var window []byte // the server's output so far, for its context
		msg := []byte("herald herald herald")
		for i := range 3 {
			var payload []byte
			rsv := byte(0)
			if deflate {
				if comp == nil || clientNoContext {
					compBuf.Reset()
					comp, _ = flate.NewWriter(&compBuf, 1)
				}
				start := compBuf.Len()
				_, _ = comp.Write(msg)
				_ = comp.Flush()
				payload = bytes.TrimSuffix(append([]byte(nil), compBuf.Bytes()[start:]...), []byte{0, 0, 0xff, 0xff})
				rsv = rsv1Bit
			} else {
				payload = msg
			}
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			rc.write(frame(true, rsv, opText, payload, true))
			fr, err := rc.readFrame()
			if err != nil {
				t.Fatalf("message %d: %v (server: %v)", i, err, c.Err())
			}
			got := fr.payload
			if fr.rsv1 {
				if !deflate {
					t.Fatal("compressed frame without permessage-deflate")
				}
				// compress/flate cannot keep to a smaller window than
				// 32 KiB, nor this reader check that the server did.
				if serverWindowBits < 15 {
					t.Fatalf("compressed frame with server_max_window_bits=%d", serverWindowBits)
				}
				if serverNoContext {
					window = nil
				}
				r := flate.NewReaderDict(io.MultiReader(bytes.NewReader(got), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})), window)
				got, err = io.ReadAll(r)
				if err != nil {
					t.Fatalf("message %d: inflate: %v", i, err)
				}
				window = append(window, got...)
				if len(window) > 32<<10 {
					window = window[len(window)-32<<10:]
				}
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("message %d: echoed %q, sent %q", i, got, msg)
			}
		}
	})
}

// offered reports whether offer has a permessage-deflate element at all.
func offered(offer string) bool {
	for ext := range strings.SplitSeq(offer, ",") {
		name, _, _ := strings.Cut(ext, ";")
		if strings.EqualFold(strings.TrimSpace(name), "permessage-deflate") {
			return true
		}
	}
	return false
}

// acceptableOffer reports whether some element of offer is one the
// server can honour (parseDeflateOffer, the code under test, agrees on
// what that is: this only catches a negotiation that ignores it).
func acceptableOffer(offer string) bool {
	for ext := range strings.SplitSeq(offer, ",") {
		if _, ok := parseDeflateOffer(ext); ok {
			return true
		}
	}
	return false
}

// validHeaderValue reports whether net/http would send v as a header
// value: visible ASCII, spaces and tabs.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f || b >= 0x80 {
			return false
		}
	}
	return true
}
