package hub

import (
	"sync"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/transport"
)

// MaxCodecs is the number of wire encodings a Delivery can cache: slot 0
// is protocol v1's JSON, slot 1 Socket.IO's main namespace "/", and the
// others Socket.IO's further namespaces (herald.SocketIOConfig).
const MaxCodecs = 4

// Codec turns a message into a wire frame for one protocol. Slot must be
// unique per codec and below MaxCodecs.
type Codec interface {
	Slot() int
	// Encode returns the message type and the encoded message after
	// transport.FrameHeadroom bytes of room, which the frame header is
	// written into (transport.NewPreparedInPlace): the message is held
	// once, as its frame.
	Encode(m *broker.Message) (transport.MessageType, []byte)
}

// Delivery is one message on its way to the local members of a room. Each
// codec's frame is built on first use and then shared by every member that
// speaks that protocol, so encoding work does not grow with room size.
type Delivery struct {
	Msg              *broker.Message
	threshold, level int
	frames           [MaxCodecs]struct {
		once sync.Once
		p    *transport.Prepared
	}
}

// NewDelivery returns a Delivery for m; the Hub makes one per fan-out.
func NewDelivery(m *broker.Message, compressionThreshold, compressionLevel int) *Delivery {
	return &Delivery{Msg: m, threshold: compressionThreshold, level: compressionLevel}
}

// Frame returns the prepared frame of d in codec c, encoding it if this is
// the first member asking for it.
func (d *Delivery) Frame(c Codec) *transport.Prepared {
	f := &d.frames[c.Slot()]
	f.once.Do(func() {
		typ, b := c.Encode(d.Msg)
		f.p = transport.NewPreparedInPlace(typ, b, d.threshold, d.level)
	})
	return f.p
}
