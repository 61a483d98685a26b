package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// WebSocket opcodes the client deals with.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxMessage bounds a message the client accepts (the scenarios send 4 KB).
const maxMessage = 1 << 20

// errClosed is returned by Read once the server sent a close frame.
var errClosed = errors.New("loadgen: server closed the connection")

// WSConn is a minimal client-side WebSocket connection: no extensions, one
// reader, writers serialised by a mutex. It exists instead of a full client
// library so that ten thousand of them cost little memory and CPU in the
// load generator, and so that each can be bound to a source address.
type WSConn struct {
	nc       net.Conn
	br       *bufio.Reader
	buf      []byte // fragmented message being assembled; reused
	wscratch []byte // payload of the last frame read; reused

	wmu  sync.Mutex
	wbuf []byte
	mask uint32
}

// DialOptions tune Dial.
type DialOptions struct {
	// LocalIP is the source address (e.g. 127.0.0.3); nil lets the kernel
	// choose.
	LocalIP net.IP
	// Header is added to the upgrade request (e.g. Authorization).
	Header http.Header
	// ReadBuffer is the size of the buffered reader (default 4096).
	ReadBuffer int
}

// Dial opens a WebSocket connection to rawURL (ws://host:port/path?query).
func Dial(ctx context.Context, rawURL string, o DialOptions) (*WSConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("loadgen: only ws:// URLs are supported, got %q", rawURL)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	if o.LocalIP != nil {
		d.LocalAddr = &net.TCPAddr{IP: o.LocalIP}
	}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	} else {
		_ = nc.SetDeadline(time.Now().Add(15 * time.Second))
	}
	var keyb [16]byte
	_, _ = rand.Read(keyb[:])
	key := base64.StdEncoding.EncodeToString(keyb[:])
	req := make([]byte, 0, 512)
	req = fmt.Appendf(req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", u.RequestURI(), u.Host, key)
	for k, vs := range o.Header {
		for _, v := range vs {
			req = fmt.Appendf(req, "%s: %s\r\n", k, v)
		}
	}
	req = append(req, "\r\n"...)
	if _, err := nc.Write(req); err != nil {
		nc.Close()
		return nil, err
	}
	size := o.ReadBuffer
	if size <= 0 {
		size = 4096
	}
	br := bufio.NewReaderSize(nc, size)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("loadgen: handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		nc.Close()
		return nil, fmt.Errorf("loadgen: handshake: %s: %s", resp.Status, body)
	}
	if resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key) {
		nc.Close()
		return nil, errors.New("loadgen: handshake: bad Sec-WebSocket-Accept")
	}
	_ = nc.SetDeadline(time.Time{})
	return &WSConn{nc: nc, br: br, mask: binary.LittleEndian.Uint32(keyb[:4]) | 1}, nil
}

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// SetReadDeadline sets the deadline of the next reads.
func (c *WSConn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// Read returns the next text or binary message. It answers pings itself.
// The returned slice is valid until the next Read.
func (c *WSConn) Read() ([]byte, error) {
	c.buf = c.buf[:0]
	for {
		fin, op, payload, err := c.readFrame()
		if err != nil {
			return nil, err
		}
		switch op {
		case opPing:
			if err := c.WriteFrame(opPong, payload); err != nil {
				return nil, err
			}
			continue
		case opPong:
			continue
		case opClose:
			_ = c.WriteFrame(opClose, payload)
			return nil, errClosed
		}
		if op == opContinuation || !fin || len(c.buf) > 0 {
			c.buf = append(c.buf, payload...)
			if len(c.buf) > maxMessage {
				return nil, errors.New("loadgen: message too big")
			}
			if !fin {
				continue
			}
			return c.buf, nil
		}
		return payload, nil
	}
}

// readFrame reads one frame into a scratch buffer, valid until the next
// call.
func (c *WSConn) readFrame() (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	b, err := c.br.Peek(2)
	if err != nil {
		return false, 0, nil, err
	}
	h[0], h[1] = b[0], b[1]
	_, _ = c.br.Discard(2)
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	if h[1]&0x80 != 0 {
		return false, 0, nil, errors.New("loadgen: masked frame from server")
	}
	n := int64(h[1] & 0x7f)
	switch n {
	case 126:
		b, err := c.br.Peek(2)
		if err != nil {
			return false, 0, nil, err
		}
		n = int64(binary.BigEndian.Uint16(b))
		_, _ = c.br.Discard(2)
	case 127:
		b, err := c.br.Peek(8)
		if err != nil {
			return false, 0, nil, err
		}
		n = int64(binary.BigEndian.Uint64(b))
		_, _ = c.br.Discard(8)
	}
	if n < 0 || n > maxMessage {
		return false, 0, nil, errors.New("loadgen: frame too big")
	}
	scratch := c.scratch(int(n))
	if _, err := io.ReadFull(c.br, scratch); err != nil {
		return false, 0, nil, err
	}
	return fin, op, scratch, nil
}

// scratch returns a buffer of n bytes that does not alias c.buf.
func (c *WSConn) scratch(n int) []byte {
	if cap(c.wscratch) < n {
		c.wscratch = make([]byte, n, max(n, 512))
	}
	return c.wscratch[:n]
}

// WriteText sends one text message.
func (c *WSConn) WriteText(p []byte) error { return c.WriteFrame(opText, p) }

// WriteFrame sends one masked frame with opcode op.
func (c *WSConn) WriteFrame(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := c.wbuf[:0]
	b = append(b, 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	c.mask = c.mask*1664525 + 1013904223
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], c.mask)
	b = append(b, key[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range b[start:] {
		b[start+i] ^= key[i&3]
	}
	c.wbuf = b
	_, err := c.nc.Write(b)
	return err
}

// Close sends a close frame (1000) and resets the connection without
// waiting, so that neither side keeps the socket in TIME_WAIT: the churn
// scenario opens tens of thousands of connections.
func (c *WSConn) Close() error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.WriteFrame(opClose, []byte{0x03, 0xe8})
	if tc, ok := c.nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c.nc.Close()
}
