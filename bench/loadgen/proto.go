package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Kind names a server family and the client protocol it speaks.
type Kind string

// The server kinds the load generator can drive. Herald and the Node ws
// peer both speak Herald protocol v1; the Socket.IO peer speaks the same
// scenario over Socket.IO v5 / Engine.IO v4; Herald's Socket.IO endpoint
// is driven as socket.io-client apps use it, with Herald's event
// convention (herald:join and herald:publish, answered through acks).
const (
	KindHerald         Kind = "herald"
	KindWS             Kind = "ws"
	KindSocketIO       Kind = "socketio"
	KindHeraldSocketIO Kind = "herald-socketio"
)

// socketIO reports whether k speaks Socket.IO.
func (k Kind) socketIO() bool { return k == KindSocketIO || k == KindHeraldSocketIO }

// ParseKind checks a kind name.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case KindHerald, KindWS, KindSocketIO, KindHeraldSocketIO:
		return k, nil
	}
	return "", fmt.Errorf("loadgen: unknown server kind %q (herald, ws, socketio, herald-socketio)", s)
}

// EndpointURL returns the WebSocket URL of a server of kind k at base
// (ws://127.0.0.1:PORT).
func (k Kind) EndpointURL(base string) string {
	if k.socketIO() {
		return base + "/socket.io/?EIO=4&transport=websocket"
	}
	return base + "/ws"
}

// errRefused marks a server-side refusal of a request.
var errRefused = errors.New("loadgen: refused")

// Open completes the application handshake after the WebSocket upgrade:
// for v1 it waits for the welcome frame; for Socket.IO it reads the
// Engine.IO open packet, connects to the main namespace and waits for the
// CONNECT reply (a CONNECT_ERROR, e.g. from the auth middleware, is an
// error).
func (k Kind) Open(c *WSConn, timeout time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	if !k.socketIO() {
		for {
			msg, err := c.Read()
			if err != nil {
				return err
			}
			if bytes.Contains(msg, []byte(`"type":"welcome"`)) {
				return nil
			}
		}
	}
	msg, err := c.Read()
	if err != nil {
		return err
	}
	if p, err := ParseSocketIO(msg); err != nil || p.EIO != eioOpen {
		return fmt.Errorf("loadgen: socket.io: want an open packet, got %q", truncate(msg))
	}
	if err := c.WriteText([]byte("40")); err != nil {
		return err
	}
	for {
		msg, err := c.Read()
		if err != nil {
			return err
		}
		p, err := ParseSocketIO(msg)
		if err != nil {
			return err
		}
		switch {
		case p.EIO == eioPing:
			if err := c.WriteText([]byte("3")); err != nil {
				return err
			}
		case p.EIO == eioMessage && p.SIO == sioConnect:
			return nil
		case p.EIO == eioMessage && p.SIO == sioConnectError:
			return fmt.Errorf("%w: socket.io connect_error %s", errRefused, p.Data)
		}
	}
}

// Join joins room (request id) and waits for the reply.
func (k Kind) Join(c *WSConn, room string, id int, timeout time.Duration) error {
	q := strconv.Quote(room)
	if k == KindHeraldSocketIO {
		return joinHeraldSocketIO(c, q, id, timeout)
	}
	var req []byte
	if k == KindSocketIO {
		req = fmt.Appendf(nil, `42["join",{"id":%d,"room":%s}]`, id, q)
	} else {
		req = fmt.Appendf(nil, `{"type":"join","id":%d,"room":%s}`, id, q)
	}
	if err := c.WriteText(req); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	idField := []byte(`"id":` + strconv.Itoa(id))
	for {
		msg, err := c.Read()
		if err != nil {
			return err
		}
		if k.Control(c, msg) {
			continue
		}
		if !hasField(msg, idField) {
			continue
		}
		if bytes.Contains(msg, []byte(`"reply"`)) {
			return nil
		}
		return fmt.Errorf("%w: join %s: %s", errRefused, room, truncate(msg))
	}
}

// joinHeraldSocketIO joins room (quoted) with Herald's herald:join event,
// ack id id, and waits for the ack: {"room":…} joined, {"error":…} refused.
func joinHeraldSocketIO(c *WSConn, quotedRoom string, id int, timeout time.Duration) error {
	if err := c.WriteText(fmt.Appendf(nil, `42%d["herald:join",{"room":%s}]`, id, quotedRoom)); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	for {
		msg, err := c.Read()
		if err != nil {
			return err
		}
		if KindHeraldSocketIO.Control(c, msg) {
			continue
		}
		p, err := ParseSocketIO(msg)
		if err != nil || p.EIO != eioMessage || p.SIO != sioAck || p.AckID != id {
			continue
		}
		if bytes.Contains(p.Data, []byte(`"error"`)) {
			return fmt.Errorf("%w: join %s: %s", errRefused, quotedRoom, truncate(msg))
		}
		return nil
	}
}

// AppendPublish appends the frame that publishes data (a JSON value) to
// room as event "e".
func (k Kind) AppendPublish(dst []byte, room string, data []byte) []byte {
	switch k {
	case KindHeraldSocketIO:
		dst = append(dst, `42["herald:publish",{"room":`...)
	case KindSocketIO:
		dst = append(dst, `42["publish",{"room":`...)
	default:
		dst = append(dst, `{"type":"publish","room":`...)
	}
	dst = strconv.AppendQuote(dst, room)
	dst = append(dst, `,"event":"e","data":`...)
	dst = append(dst, data...)
	if k.socketIO() {
		return append(dst, "}]"...)
	}
	return append(dst, '}')
}

// Control handles a protocol-level frame that needs no scenario
// processing (the Engine.IO ping, answered with a pong) and reports
// whether msg was one.
func (k Kind) Control(c *WSConn, msg []byte) bool {
	if k.socketIO() && len(msg) == 1 && msg[0] == eioPing {
		_ = c.WriteText([]byte{eioPong})
		return true
	}
	return false
}

// hasField reports whether msg holds field (e.g. `"id":1`) not followed by
// another digit.
func hasField(msg, field []byte) bool {
	for {
		i := bytes.Index(msg, field)
		if i < 0 {
			return false
		}
		msg = msg[i+len(field):]
		if len(msg) == 0 || msg[0] < '0' || msg[0] > '9' {
			return true
		}
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// Engine.IO v4 packet types (one ASCII digit) and Socket.IO v5 packet
// types (the next digit, inside an Engine.IO message).
const (
	eioOpen    = '0'
	eioClose   = '1'
	eioPing    = '2'
	eioPong    = '3'
	eioMessage = '4'

	sioConnect      = '0'
	sioDisconnect   = '1'
	sioEvent        = '2'
	sioAck          = '3'
	sioConnectError = '4'
)

// SIOPacket is a parsed Engine.IO text packet and, for messages, the
// Socket.IO packet inside it.
type SIOPacket struct {
	EIO   byte            // Engine.IO type, '0'–'6'
	SIO   byte            // Socket.IO type, '0'–'6', when EIO is '4'
	Nsp   string          // namespace, "/" when absent
	AckID int             // -1 when absent
	Event string          // first array element of an EVENT
	Args  json.RawMessage // the remaining array elements of an EVENT, as a JSON array
	Data  json.RawMessage // the JSON after the header for other packets
}

// ParseSocketIO parses one Engine.IO v4 text packet (a WebSocket text
// message; v4 never batches over WebSocket).
func ParseSocketIO(msg []byte) (SIOPacket, error) {
	p := SIOPacket{Nsp: "/", AckID: -1}
	if len(msg) == 0 || msg[0] < '0' || msg[0] > '6' {
		return p, fmt.Errorf("loadgen: socket.io: bad engine.io packet %q", truncate(msg))
	}
	p.EIO = msg[0]
	if p.EIO != eioMessage {
		p.Data = json.RawMessage(msg[1:])
		return p, nil
	}
	rest := msg[1:]
	if len(rest) == 0 || rest[0] < '0' || rest[0] > '6' {
		return p, fmt.Errorf("loadgen: socket.io: bad socket.io packet %q", truncate(msg))
	}
	p.SIO, rest = rest[0], rest[1:]
	if p.SIO == '5' || p.SIO == '6' { // binary event/ack: attachments count first
		i := bytes.IndexByte(rest, '-')
		if i < 0 {
			return p, fmt.Errorf("loadgen: socket.io: bad binary packet %q", truncate(msg))
		}
		rest = rest[i+1:]
	}
	if len(rest) > 0 && rest[0] == '/' {
		i := bytes.IndexByte(rest, ',')
		if i < 0 {
			p.Nsp, rest = string(rest), nil
		} else {
			p.Nsp, rest = string(rest[:i]), rest[i+1:]
		}
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n > 0 {
		id, err := strconv.Atoi(string(rest[:n]))
		if err != nil {
			return p, fmt.Errorf("loadgen: socket.io: bad ack id in %q", truncate(msg))
		}
		p.AckID, rest = id, rest[n:]
	}
	if p.SIO != sioEvent && p.SIO != '5' {
		p.Data = json.RawMessage(rest)
		return p, nil
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(rest, &arr); err != nil || len(arr) == 0 {
		return p, fmt.Errorf("loadgen: socket.io: bad event payload %q", truncate(msg))
	}
	if err := json.Unmarshal(arr[0], &p.Event); err != nil {
		return p, fmt.Errorf("loadgen: socket.io: event name is not a string in %q", truncate(msg))
	}
	args, _ := json.Marshal(arr[1:])
	p.Args = args
	return p, nil
}
