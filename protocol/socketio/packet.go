package socketio

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Type is the type of a Socket.IO packet, sent as one ASCII digit.
type Type byte

// The Socket.IO v5 packet types.
const (
	Connect      Type = 0
	Disconnect   Type = 1
	Event        Type = 2
	Ack          Type = 3
	ConnectError Type = 4
	BinaryEvent  Type = 5
	BinaryAck    Type = 6
)

var typeNames = [...]string{"CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR", "BINARY_EVENT", "BINARY_ACK"}

// String returns the spec's name for the type ("CONNECT", "EVENT", ...).
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Valid reports whether t is one of the seven Socket.IO v5 packet types.
func (t Type) Valid() bool { return t <= BinaryAck }

// IsBinary reports whether packets of type t carry binary attachments.
func (t Type) IsBinary() bool { return t == BinaryEvent || t == BinaryAck }

// takesID reports whether packets of type t may carry an ack id.
func (t Type) takesID() bool { return t == Event || t == Ack || t == BinaryEvent || t == BinaryAck }

// isAck reports whether packets of type t must carry an ack id.
func (t Type) isAck() bool { return t == Ack || t == BinaryAck }

// DefaultNamespace is the main namespace, left out of the encoded packet.
const DefaultNamespace = "/"

// MaxAckID is the largest ack id accepted: the largest integer a JavaScript
// number holds exactly.
const MaxAckID = 1<<53 - 1

// ErrInvalid is wrapped by every error reporting a malformed packet.
var ErrInvalid = errors.New("socketio: invalid packet")

// ErrTooLarge is wrapped by errors reporting input over a Limits bound.
var ErrTooLarge = errors.New("socketio: packet too large")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func tooLarge(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, args...))
}

// Limits bounds what the decoders accept from a peer. A zero field takes
// its value from DefaultLimits.
type Limits struct {
	// MaxPacketBytes bounds the text part of a packet and, separately, the
	// total size of its binary attachments.
	MaxPacketBytes int
	// MaxAttachments bounds the attachment count of a binary packet.
	MaxAttachments int
	// MaxNamespaceBytes bounds the length of a namespace name.
	MaxNamespaceBytes int
	// MaxArgs bounds the elements of an event's or ack's array (the
	// event name and its arguments): each is a json.RawMessage when the
	// adapter splits it, 24 B for as little as 2 B of a packet ("0,"), so
	// a 1 MB packet of tiny arguments made a 12 MB slice.
	MaxArgs int
}

// DefaultLimits are the limits used for zero Limits fields: 1 MB (the
// Engine.IO default maxPayload), 64 attachments, 256-byte namespaces,
// 1024 elements in an event's array.
var DefaultLimits = Limits{MaxPacketBytes: 1_000_000, MaxAttachments: 64, MaxNamespaceBytes: 256, MaxArgs: 1024}

func (l Limits) withDefaults() Limits {
	if l.MaxPacketBytes <= 0 {
		l.MaxPacketBytes = DefaultLimits.MaxPacketBytes
	}
	if l.MaxAttachments <= 0 {
		l.MaxAttachments = DefaultLimits.MaxAttachments
	}
	if l.MaxNamespaceBytes <= 0 {
		l.MaxNamespaceBytes = DefaultLimits.MaxNamespaceBytes
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = DefaultLimits.MaxArgs
	}
	return l
}

// Packet is one Socket.IO packet.
type Packet struct {
	Type Type
	// Namespace starts with "/"; "" is read as DefaultNamespace.
	Namespace string
	// HasID says whether ID is set: an EVENT that expects an answer, or an ACK.
	HasID bool
	ID    uint64
	// Data is the JSON payload, nil when the packet has none. In a binary
	// packet it holds placeholders where the attachments go.
	Data json.RawMessage
	// Attachments is the number of binary attachments that follow a
	// BINARY_EVENT or BINARY_ACK; it is 0 for the other types.
	Attachments int
}

// reservedEvents are the event names a peer may not emit.
var reservedEvents = map[string]bool{
	"connect": true, "connect_error": true, "disconnect": true,
	"disconnecting": true, "newListener": true, "removeListener": true,
}

// Validate checks p against the rules of its type, as Decode does.
func (p Packet) Validate(l Limits) error {
	l = l.withDefaults()
	if !p.Type.Valid() {
		return invalid("unknown packet type %d", byte(p.Type))
	}
	if err := checkNamespace(p.namespace(), l); err != nil {
		return err
	}
	if p.HasID {
		if !p.Type.takesID() {
			return invalid("%s packet with an ack id", p.Type)
		}
		if p.ID > MaxAckID {
			return invalid("ack id %d above %d", p.ID, uint64(MaxAckID))
		}
	} else if p.Type.isAck() {
		return invalid("%s packet without an ack id", p.Type)
	}
	if p.Type.IsBinary() {
		if p.Attachments < 0 || p.Attachments > l.MaxAttachments {
			return tooLarge("%d attachments, limit %d", p.Attachments, l.MaxAttachments)
		}
	} else if p.Attachments != 0 {
		return invalid("%s packet with attachments", p.Type)
	}
	return p.checkPayload()
}

func (p Packet) namespace() string {
	if p.Namespace == "" {
		return DefaultNamespace
	}
	return p.Namespace
}

func checkNamespace(ns string, l Limits) error {
	if ns[0] != '/' {
		return invalid("namespace %q does not start with /", ns)
	}
	if len(ns) > l.MaxNamespaceBytes {
		return tooLarge("namespace of %d bytes, limit %d", len(ns), l.MaxNamespaceBytes)
	}
	if !utf8.ValidString(ns) {
		return invalid("namespace is not UTF-8")
	}
	for _, r := range ns {
		if r < 0x20 || r == 0x7f || r == ',' {
			return invalid("namespace %q holds a control character or comma", ns)
		}
	}
	return nil
}

// checkPayload enforces what each type may carry, as the reference parser
// does: CONNECT an optional object, DISCONNECT nothing, CONNECT_ERROR an
// object or a string, EVENT an array led by a non-reserved event name
// (string) or a number, ACK an array.
func (p Packet) checkPayload() error {
	if p.Data == nil {
		switch p.Type {
		case Connect, Disconnect:
			return nil
		default:
			return invalid("%s packet without a payload", p.Type)
		}
	}
	if !json.Valid(p.Data) {
		return invalid("payload is not valid JSON")
	}
	first := firstByte(p.Data)
	switch p.Type {
	case Connect:
		if first != '{' {
			return invalid("CONNECT payload must be an object")
		}
	case Disconnect:
		return invalid("DISCONNECT packet with a payload")
	case ConnectError:
		if first != '{' && first != '"' {
			return invalid("CONNECT_ERROR payload must be an object or a string")
		}
	case Event, BinaryEvent:
		// Only the name is looked at: the arguments are split (not
		// decoded) by whoever handles the event (SplitArray).
		var name []byte
		if first == '[' {
			name = firstElement(p.Data)
		}
		if len(name) == 0 {
			return invalid("%s payload must be a non-empty array", p.Type)
		}
		switch name[0] {
		case '"':
			if len(name) >= 2 && !hasEscape(name[1:len(name)-1]) {
				// The usual name, looked up without making it a
				// string (which would allocate per event).
				if s := name[1 : len(name)-1]; reservedEvents[string(s)] {
					return invalid("reserved event name %q", s)
				}
				break
			}
			name, err := EventName(name)
			if err != nil {
				return err
			}
			if reservedEvents[name] {
				return invalid("reserved event name %q", name)
			}
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		default:
			return invalid("event name must be a string or a number")
		}
	case Ack, BinaryAck:
		if first != '[' {
			return invalid("%s payload must be an array", p.Type)
		}
	}
	if p.Type.IsBinary() {
		return checkPlaceholders(p.Data, p.Attachments)
	}
	return nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// Decode decodes the text message of a packet. For a binary type the
// returned packet still lacks its attachments: pass it to NewReconstructor.
// Data does not alias msg.
func Decode(msg []byte, l Limits) (Packet, error) { return decode(msg, l, false) }

// DecodeOwned is Decode for a message the caller owns and hands over
// (an Engine.IO message, which belongs to its handler): Data aliases msg
// instead of being a copy, so msg must not change afterwards.
func DecodeOwned(msg []byte, l Limits) (Packet, error) { return decode(msg, l, true) }

func decode(msg []byte, l Limits, owned bool) (Packet, error) {
	l = l.withDefaults()
	if len(msg) > l.MaxPacketBytes {
		return Packet{}, tooLarge("%d bytes, limit %d", len(msg), l.MaxPacketBytes)
	}
	if len(msg) == 0 {
		return Packet{}, invalid("empty packet")
	}
	if msg[0] < '0' || msg[0] > '0'+byte(BinaryAck) {
		return Packet{}, invalid("unknown packet type %q", msg[0])
	}
	p := Packet{Type: Type(msg[0] - '0'), Namespace: DefaultNamespace}
	rest := msg[1:]

	if p.Type.IsBinary() {
		n, digits := leadingNumber(rest, 10)
		if digits == 0 || digits >= len(rest) || rest[digits] != '-' {
			return Packet{}, invalid("%s packet without an attachment count", p.Type)
		}
		if n > uint64(l.MaxAttachments) {
			return Packet{}, tooLarge("%d attachments, limit %d", n, l.MaxAttachments)
		}
		p.Attachments = int(n)
		rest = rest[digits+1:]
	}

	if len(rest) > 0 && rest[0] == '/' {
		end := bytes.IndexByte(rest, ',')
		if end < 0 {
			end = len(rest) // "1/admin": the comma may be left off at the end
		}
		if end > l.MaxNamespaceBytes {
			return Packet{}, tooLarge("namespace of %d bytes, limit %d", end, l.MaxNamespaceBytes)
		}
		p.Namespace = string(rest[:end])
		rest = rest[min(end+1, len(rest)):]
	}

	if n, digits := leadingNumber(rest, 17); digits > 0 {
		if digits > 16 || n > MaxAckID {
			return Packet{}, invalid("ack id above %d", uint64(MaxAckID))
		}
		p.HasID, p.ID = true, n
		rest = rest[digits:]
	}

	if len(rest) > 0 {
		p.Data = rest
		if !owned {
			p.Data = bytes.Clone(rest)
		}
	}
	if err := p.Validate(l); err != nil {
		return Packet{}, err
	}
	if p.Type.takesID() { // an event or ack: an array
		if n := countElements(p.Data, l.MaxArgs); n > l.MaxArgs {
			return Packet{}, tooLarge("more than %d elements in the %s array", l.MaxArgs, p.Type)
		}
	}
	return p, nil
}

// leadingNumber parses up to max leading ASCII digits of b, returning their
// value and count (max+1 digits means "too many").
func leadingNumber(b []byte, max int) (n uint64, digits int) {
	for digits < len(b) && digits <= max && b[digits] >= '0' && b[digits] <= '9' {
		n = n*10 + uint64(b[digits]-'0')
		digits++
	}
	return n, digits
}

// noLimits bounds nothing: the encoder trusts the sizes its caller chose.
var noLimits = Limits{MaxPacketBytes: maxInt, MaxAttachments: maxInt, MaxNamespaceBytes: maxInt, MaxArgs: maxInt}

const maxInt = int(^uint(0) >> 1)

// Append appends the text message of p to dst after checking it with
// Validate, without size limits. The attachments of a binary packet are
// sent after it, each as its own binary message, in placeholder order.
func Append(dst []byte, p Packet) ([]byte, error) {
	if err := p.Validate(noLimits); err != nil {
		return dst, err
	}
	dst = append(dst, '0'+byte(p.Type))
	if p.Type.IsBinary() {
		dst = strconv.AppendInt(dst, int64(p.Attachments), 10)
		dst = append(dst, '-')
	}
	ns := p.namespace()
	if ns != DefaultNamespace {
		dst = append(dst, ns...)
		dst = append(dst, ',')
	}
	if p.HasID {
		dst = strconv.AppendUint(dst, p.ID, 10)
	}
	return append(dst, p.Data...), nil
}

// EncodedLen returns how many bytes Append adds for p at most: a
// buffer with that much room takes the packet without growing.
func EncodedLen(p Packet) int {
	n := 1 + len(p.Data)
	if p.Type.IsBinary() {
		n += 20 + 1
	}
	if ns := p.namespace(); ns != DefaultNamespace {
		n += len(ns) + 1
	}
	if p.HasID {
		n += 20
	}
	return n
}

// Encode returns the text message of p (see Append), in one allocation.
func Encode(p Packet) ([]byte, error) { return Append(make([]byte, 0, EncodedLen(p)), p) }
