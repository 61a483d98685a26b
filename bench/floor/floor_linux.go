//go:build linux

package floor

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

const (
	maxRequest  = 8 << 10  // bytes of an upgrade request
	maxMessage  = 64 << 10 // bytes of a client message
	maxBacklog  = 16 << 20 // bytes queued for a client that does not read
	acceptGUID  = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	opText      = 1
	opClose     = 8
	opPing      = 9
	opPong      = 10
	readBufSize = 64 << 10
)

// conn is one client. Between events it holds no buffer: in and out are
// nil unless a partial frame or an unwritten rest is waiting.
type conn struct {
	fd     int
	open   bool     // upgraded
	in     []byte   // unparsed bytes
	out    []byte   // bytes the socket did not take yet
	rooms  []string // joined
	closed bool
}

type server struct {
	auth  *verifier // nil: anonymous clients
	ep    int
	ln    int
	conns map[int]*conn
	rooms map[string][]*conn
	buf   []byte
	seq   uint64
	ids   uint64
}

// Serve listens on addr (host:port) and serves anonymous clients until
// ctx ends.
func Serve(ctx context.Context, addr string) error {
	return Run(ctx, Config{Addr: addr})
}

// Run serves cfg until ctx ends. The loop runs on one locked OS thread.
func Run(ctx context.Context, cfg Config) error {
	addr := cfg.Addr
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return fmt.Errorf("floor: want an IPv4 host:port, got %q", addr)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(ln)
	_ = unix.SetsockoptInt(ln, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(ln, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return fmt.Errorf("floor: bind %s: %w", addr, err)
	}
	if err := unix.Listen(ln, 4096); err != nil {
		return err
	}
	if cfg.Listening != nil {
		sa, err := unix.Getsockname(ln)
		if err != nil {
			return err
		}
		bound := sa.(*unix.SockaddrInet4)
		cfg.Listening(netip.AddrPortFrom(netip.AddrFrom4(bound.Addr), uint16(bound.Port)).String())
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ln, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ln)}); err != nil {
		return err
	}
	s := &server{ep: ep, ln: ln, conns: map[int]*conn{}, rooms: map[string][]*conn{}, buf: make([]byte, readBufSize)}
	if len(cfg.JWTSecret) > 0 {
		s.auth = newVerifier(cfg.JWTSecret)
	}
	defer func() {
		for _, c := range s.conns {
			unix.Close(c.fd)
		}
	}()
	events := make([]unix.EpollEvent, 256)
	for ctx.Err() == nil {
		n, err := unix.EpollWait(ep, events, 200)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == ln {
				s.accept()
				continue
			}
			c := s.conns[fd]
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 {
				s.flush(c)
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !c.closed {
				s.read(c)
			}
		}
	}
	return nil
}

func (s *server) accept() {
	for {
		fd, _, err := unix.Accept4(s.ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or an error the next event will show again
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if err := unix.EpollCtl(s.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			unix.Close(fd)
			continue
		}
		s.conns[fd] = &conn{fd: fd}
	}
}

func (s *server) read(c *conn) {
	for !c.closed {
		n, err := unix.Read(c.fd, s.buf)
		if errors.Is(err, unix.EAGAIN) {
			return
		}
		if err != nil || n == 0 {
			s.drop(c)
			return
		}
		data := s.buf[:n]
		if len(c.in) > 0 {
			c.in = append(c.in, data...)
			data = c.in
		}
		rest := s.consume(c, data)
		if c.closed {
			return
		}
		c.in = nil
		if len(rest) > 0 {
			c.in = append([]byte(nil), rest...) // rest points into s.buf or the old c.in
		}
		if len(c.in) > maxRequest+maxMessage {
			s.drop(c)
			return
		}
	}
}

// consume handles every complete request or frame in data and returns the
// incomplete rest.
func (s *server) consume(c *conn, data []byte) []byte {
	for !c.closed {
		if !c.open {
			end := bytes.Index(data, []byte("\r\n\r\n"))
			if end < 0 {
				return data
			}
			s.upgrade(c, data[:end])
			data = data[end+4:]
			continue
		}
		if len(data) < 2 {
			return data
		}
		fin, op, masked := data[0]&0x80 != 0, data[0]&0x0f, data[1]&0x80 != 0
		length, hdr := int(data[1]&0x7f), 2
		switch length {
		case 126:
			if len(data) < 4 {
				return data
			}
			length, hdr = int(binary.BigEndian.Uint16(data[2:])), 4
		case 127:
			if len(data) < 10 {
				return data
			}
			l := binary.BigEndian.Uint64(data[2:])
			if l > maxMessage {
				s.closeWith(c, 1009, "message too big")
				return nil
			}
			length, hdr = int(l), 10
		}
		if !fin || !masked || length > maxMessage {
			s.closeWith(c, 1002, "fragmented, unmasked or too big")
			return nil
		}
		if len(data) < hdr+4+length {
			return data
		}
		key := data[hdr : hdr+4]
		payload := data[hdr+4 : hdr+4+length]
		for i := range payload {
			payload[i] ^= key[i&3]
		}
		data = data[hdr+4+length:]
		switch op {
		case opText:
			s.message(c, payload)
		case opPing:
			s.write(c, frame(nil, opPong, payload))
		case opClose:
			s.closeWith(c, 1000, "")
		}
	}
	return nil
}

func (s *server) upgrade(c *conn, req []byte) {
	lines := bytes.Split(req, []byte("\r\n"))
	var key, token []byte
	for _, l := range lines[1:] {
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		switch {
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Key")):
			key = bytes.TrimSpace(value)
		case bytes.EqualFold(name, []byte("Authorization")):
			v := bytes.TrimSpace(value)
			if len(v) > 7 && bytes.EqualFold(v[:7], []byte("Bearer ")) {
				token = v[7:]
			}
		}
	}
	if !bytes.HasPrefix(lines[0], []byte("GET /ws")) || len(key) == 0 {
		s.write(c, []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		s.drop(c)
		return
	}
	s.ids++
	user := "anon-" + strconv.FormatUint(s.ids, 10)
	if s.auth != nil {
		sub, err := s.auth.verify(token, time.Now())
		if err != nil {
			s.write(c, []byte("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			s.drop(c)
			return
		}
		user = sub
	}
	h := sha1.Sum(append(key, acceptGUID...))
	resp := make([]byte, 0, 256)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = base64.StdEncoding.AppendEncode(resp, h[:])
	resp = append(resp, "\r\n\r\n"...)
	welcome := make([]byte, 0, 128+len(user))
	welcome = append(welcome, `{"type":"welcome","protocol":1,"connectionId":"`...)
	welcome = strconv.AppendUint(welcome, s.ids, 10)
	welcome = append(welcome, `","userId":`...)
	welcome = strconv.AppendQuote(welcome, user)
	welcome = append(welcome, `,"heartbeatMs":0,"resumed":false}`...)
	c.open = true
	s.write(c, frame(resp, opText, welcome)) // the 101 and the welcome in one write
}

type request struct {
	Type  string          `json:"type"`
	ID    json.RawMessage `json:"id"`
	Room  string          `json:"room"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func (s *server) message(c *conn, msg []byte) {
	var m request
	if err := json.Unmarshal(msg, &m); err != nil {
		s.write(c, frame(nil, opText, []byte(`{"type":"error","code":"bad_message","message":"invalid JSON"}`)))
		return
	}
	switch m.Type {
	case "join":
		if m.Room == "" {
			s.reply(c, m.ID, `{"type":"error","id":`, `,"code":"bad_request","message":"room required"}`)
			return
		}
		if !has(c.rooms, m.Room) {
			c.rooms = append(c.rooms, m.Room)
			s.rooms[m.Room] = append(s.rooms[m.Room], c)
		}
		s.reply(c, m.ID, `{"type":"reply","id":`, `,"data":{"room":`+strconv.Quote(m.Room)+`}}`)
	case "publish":
		if !has(c.rooms, m.Room) {
			s.reply(c, m.ID, `{"type":"error","id":`, `,"code":"not_joined","message":"join first"}`)
			return
		}
		s.seq++
		ev := make([]byte, 0, 128+len(m.Room)+len(m.Event)+len(m.Data))
		ev = append(ev, `{"type":"event","room":`...)
		ev = strconv.AppendQuote(ev, m.Room)
		ev = append(ev, `,"event":`...)
		ev = strconv.AppendQuote(ev, m.Event)
		ev = append(ev, `,"data":`...)
		ev = append(ev, m.Data...)
		ev = append(ev, `,"msgId":"`...)
		ev = strconv.AppendUint(ev, s.seq, 10)
		ev = append(ev, `","ts":`...)
		ev = strconv.AppendInt(ev, time.Now().UnixMilli(), 10)
		ev = append(ev, '}')
		f := frame(nil, opText, ev) // framed once, written once per member
		for _, member := range s.rooms[m.Room] {
			s.write(member, f)
		}
		s.reply(c, m.ID, `{"type":"reply","id":`, `,"data":{"msgId":"`+strconv.FormatUint(s.seq, 10)+`"}}`)
	default:
		s.reply(c, m.ID, `{"type":"error","id":`, `,"code":"unknown_type","message":"unknown type"}`)
	}
}

// reply sends before, the request's id (or null), after.
func (s *server) reply(c *conn, id json.RawMessage, before, after string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	msg := make([]byte, 0, len(before)+len(id)+len(after))
	msg = append(append(append(msg, before...), id...), after...)
	s.write(c, frame(nil, opText, msg))
}

// write sends b with one write(2); what the socket does not take waits
// in c.out for EPOLLOUT.
func (s *server) write(c *conn, b []byte) {
	if c.closed {
		return
	}
	if len(c.out) > 0 {
		if len(c.out)+len(b) > maxBacklog {
			s.drop(c)
			return
		}
		c.out = append(c.out, b...)
		return
	}
	n, err := unix.Write(c.fd, b)
	if errors.Is(err, unix.EAGAIN) {
		n, err = 0, nil
	}
	if err != nil {
		s.drop(c)
		return
	}
	if n < len(b) {
		c.out = append([]byte(nil), b[n:]...)
		_ = unix.EpollCtl(s.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(c.fd)})
	}
}

func (s *server) flush(c *conn) {
	for len(c.out) > 0 {
		n, err := unix.Write(c.fd, c.out)
		if errors.Is(err, unix.EAGAIN) {
			return
		}
		if err != nil {
			s.drop(c)
			return
		}
		c.out = c.out[n:]
	}
	c.out = nil
	_ = unix.EpollCtl(s.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(c.fd)})
}

// closeWith sends a close frame and drops the connection.
func (s *server) closeWith(c *conn, code int, reason string) {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	s.write(c, frame(nil, opClose, append(p, reason...)))
	s.drop(c)
}

func (s *server) drop(c *conn) {
	if c.closed {
		return
	}
	c.closed = true
	for _, r := range c.rooms {
		members := s.rooms[r]
		for i, m := range members {
			if m == c {
				members[i] = members[len(members)-1]
				members[len(members)-1] = nil
				members = members[:len(members)-1]
				break
			}
		}
		if len(members) == 0 {
			delete(s.rooms, r)
		} else {
			s.rooms[r] = members
		}
	}
	delete(s.conns, c.fd)
	unix.Close(c.fd) // also removes it from the epoll set
}

func has(rooms []string, room string) bool {
	for _, r := range rooms {
		if r == room {
			return true
		}
	}
	return false
}

// frame appends an unmasked, final server frame to dst.
func frame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, byte(n))
	case n <= 0xffff:
		dst = append(dst, 126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}
