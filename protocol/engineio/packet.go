package engineio

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
)

// PacketType is the type of an Engine.IO packet, sent as one ASCII digit.
type PacketType byte

// The Engine.IO v4 packet types.
const (
	Open    PacketType = 0 // server to client: handshake data (JSON)
	Close   PacketType = 1 // request the transport be closed
	Ping    PacketType = 2 // heartbeat, or "probe" during an upgrade
	Pong    PacketType = 3 // answer to Ping, echoing its data
	Message PacketType = 4 // application data, text or binary
	Upgrade PacketType = 5 // client completes the upgrade to WebSocket
	Noop    PacketType = 6 // ends a pending poll during an upgrade
)

var typeNames = [...]string{"open", "close", "ping", "pong", "message", "upgrade", "noop"}

// String returns the spec's name for the type ("open", "message", ...).
func (t PacketType) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("PacketType(%d)", byte(t))
}

// Valid reports whether t is one of the seven Engine.IO v4 packet types.
func (t PacketType) Valid() bool { return t <= Noop }

// RecordSeparator separates the packets of an HTTP long-polling payload.
const RecordSeparator = 0x1e

// binaryPrefix marks a base64-encoded binary message in text form.
const binaryPrefix = 'b'

// ErrInvalid is wrapped by every error reporting malformed input.
var ErrInvalid = errors.New("engineio: invalid packet")

// ErrTooLarge is wrapped by errors reporting input over a size limit.
var ErrTooLarge = errors.New("engineio: payload too large")

// Packet is one Engine.IO packet. Binary is true only for a binary message
// (Type Message); its Data is then raw bytes, otherwise Data is the text that
// follows the type digit.
type Packet struct {
	Type   PacketType
	Data   []byte
	Binary bool
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// check reports whether p can be encoded at all.
func (p Packet) check() error {
	if !p.Type.Valid() {
		return invalid("unknown packet type %d", byte(p.Type))
	}
	if p.Binary && p.Type != Message {
		return invalid("binary %s packet: only messages carry binary data", p.Type)
	}
	return nil
}

// DecodeText decodes a packet in text form: a WebSocket text frame or one
// record of a polling payload. A leading 'b' marks a base64-encoded binary
// message. The returned Data does not alias b.
func DecodeText(b []byte) (Packet, error) {
	if len(b) == 0 {
		return Packet{}, invalid("empty packet")
	}
	if b[0] == binaryPrefix {
		if bytes.ContainsAny(b[1:], "\r\n") {
			return Packet{}, invalid("binary message: line break in base64")
		}
		data := make([]byte, base64.StdEncoding.DecodedLen(len(b)-1))
		n, err := base64.StdEncoding.Decode(data, b[1:])
		if err != nil {
			return Packet{}, invalid("binary message: bad base64: %v", err)
		}
		return Packet{Type: Message, Data: data[:n], Binary: true}, nil
	}
	if b[0] < '0' || b[0] > '0'+byte(Noop) {
		return Packet{}, invalid("unknown packet type %q", b[0])
	}
	return Packet{Type: PacketType(b[0] - '0'), Data: bytes.Clone(b[1:])}, nil
}

// DecodeBinary decodes a WebSocket binary frame: in revision 4 it is always a
// binary message whose data is the whole frame, with no type prefix.
func DecodeBinary(frame []byte) Packet {
	return Packet{Type: Message, Data: bytes.Clone(frame), Binary: true}
}

// DecodeFrame decodes a WebSocket frame; binary says whether it was a binary
// (opcode 2) or a text (opcode 1) frame.
func DecodeFrame(frame []byte, binary bool) (Packet, error) {
	if binary {
		return DecodeBinary(frame), nil
	}
	return DecodeText(frame)
}

// AppendText appends the text form of p to dst: the type digit and the data,
// or 'b' and the base64 of the data for a binary message (the polling form).
func AppendText(dst []byte, p Packet) ([]byte, error) {
	if err := p.check(); err != nil {
		return dst, err
	}
	if p.Binary {
		dst = append(dst, binaryPrefix)
		return base64.StdEncoding.AppendEncode(dst, p.Data), nil
	}
	dst = append(dst, '0'+byte(p.Type))
	return append(dst, p.Data...), nil
}

// EncodeText returns the text form of p (see AppendText).
func EncodeText(p Packet) ([]byte, error) { return AppendText(nil, p) }

// EncodeFrame returns p as a WebSocket frame: binary messages as a binary
// frame holding the raw data (binary is true), every other packet as a text
// frame.
func EncodeFrame(p Packet) (frame []byte, binary bool, err error) {
	if err := p.check(); err != nil {
		return nil, false, err
	}
	if p.Binary {
		return bytes.Clone(p.Data), true, nil
	}
	frame, err = AppendText(nil, p)
	return frame, false, err
}
