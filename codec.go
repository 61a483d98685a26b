package herald

import (
	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/protocol"
	"github.com/heraldrt/herald/transport"
)

// v1Codec encodes broker messages as protocol v1 event frames.
type v1Codec struct{}

func (v1Codec) Slot() int { return 0 }

func (v1Codec) Encode(m *broker.Message) (transport.MessageType, []byte) {
	ev := protocol.Event{
		Room:   m.Room,
		Event:  m.Event,
		Data:   m.Data,
		MsgID:  m.MsgID,
		Offset: m.Offset,
		Epoch:  m.Epoch,
		Ack:    m.Ack,
		From:   m.From,
		TS:     m.PublishedAt / 1e6,
	}
	b := make([]byte, transport.FrameHeadroom, transport.FrameHeadroom+96+len(m.Data)+len(m.Room))
	return transport.Text, protocol.AppendEvent(b, &ev)
}
