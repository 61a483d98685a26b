package socketio

import (
	"sync"

	sio "github.com/heraldrt/herald/protocol/socketio"
)

// Event is an event to send to Socket.IO clients.
type Event struct {
	Name string
	Args Args
	// Offset, when not empty, is appended as the event's last argument:
	// a client with connection state recovery on keeps the last one it
	// received and sends it back (ConnectRequest.Offset) when it
	// reconnects.
	Offset string
}

// Prepared is an event encoded once for the sockets of one namespace
// (Socket.Send). It is immutable and safe to share.
type Prepared struct {
	ns   string
	text []byte
	bin  [][]byte

	engineOnce sync.Once
	engine     any
}

// Prepare encodes ev for namespace ns: an EVENT packet, or a BINARY_EVENT
// with its attachments when ev.Args has any. The attachments are not
// copied: they must not change while the event is sent.
func Prepare(ns string, ev Event) (*Prepared, error) { return prepare(ns, ev, false, 0) }

func prepare(ns string, ev Event, hasID bool, id uint64) (*Prepared, error) {
	typ := sio.Event
	if len(ev.Args.Binary) > 0 {
		typ = sio.BinaryEvent
	}
	text, err := sio.Encode(sio.Packet{Type: typ, Namespace: ns, HasID: hasID, ID: id,
		Data: eventPayload(ev.Name, ev.Args, ev.Offset), Attachments: len(ev.Args.Binary)})
	if err != nil {
		return nil, err
	}
	return &Prepared{ns: ns, text: text, bin: ev.Args.Binary}, nil
}

// Namespace returns the namespace p was prepared for.
func (p *Prepared) Namespace() string { return p.ns }

// Text returns the encoded Socket.IO packet (without the Engine.IO
// message type); it must not be modified.
func (p *Prepared) Text() []byte { return p.text }

// Attachments returns the binary attachments sent after Text.
func (p *Prepared) Attachments() [][]byte { return p.bin }

// Size returns the bytes the event takes on the wire, attachments
// included (without the Engine.IO framing).
func (p *Prepared) Size() int {
	n := len(p.text)
	for _, b := range p.bin {
		n += len(b)
	}
	return n
}

// Engine returns the engine's own encoding of p, built by build the first
// time and shared by every later call: a PreparedConn uses it to frame the
// event once for all its recipients (an Engine.IO server's prepared
// messages, say). build must not keep text or bin beyond what it returns,
// nor modify them.
func (p *Prepared) Engine(build func(text []byte, bin [][]byte) any) any {
	p.engineOnce.Do(func() { p.engine = build(p.text, p.bin) })
	return p.engine
}
