package transport

import (
	"sync"
)

// Prepared is a data message encoded once and written to many
// connections. The frame bytes (header and payload) are built lazily and
// cached: the plain frame on the first send to a connection without
// permessage-deflate, the compressed frame on the first send to one with
// it. Every recipient then gets the same byte slice, so a broadcast costs
// one encode and one compression however many connections it reaches.
//
// A Prepared is safe for concurrent use. The payload passed to
// NewPrepared must not be modified afterwards.
type Prepared struct {
	typ      MessageType
	payload  []byte
	compress bool // payload is at or above the threshold
	level    int

	plainOnce sync.Once
	plain     []byte

	deflateOnce sync.Once
	deflated    []byte // RSV1 frame, or the plain frame when deflate does not pay
}

// NewPrepared encodes a message of type typ. Payloads of at least
// threshold bytes are compressed for connections that negotiated
// permessage-deflate (0 means 1024, negative means always), at flate
// level level (0 means 1, BestSpeed). Nothing is built until the first
// send.
func NewPrepared(typ MessageType, payload []byte, threshold, level int) *Prepared {
	if threshold == 0 {
		threshold = DefaultCompressionThreshold
	}
	return &Prepared{
		typ:      typ,
		payload:  payload,
		compress: threshold < 0 || len(payload) >= threshold,
		level:    normLevel(level),
	}
}

// Payload returns the uncompressed message payload.
func (p *Prepared) Payload() []byte { return p.payload }

// Type returns the message type.
func (p *Prepared) Type() MessageType { return p.typ }

func (p *Prepared) opcode() byte {
	if p.typ == Binary {
		return opBinary
	}
	return opText
}

// plainFrame returns the cached uncompressed frame.
func (p *Prepared) plainFrame() []byte {
	p.plainOnce.Do(func() {
		b := make([]byte, 0, serverHeaderLen(len(p.payload))+len(p.payload))
		p.plain = appendFrame(b, p.opcode(), false, p.payload)
	})
	return p.plain
}

// deflateFrame returns the cached frame for a connection that negotiated
// permessage-deflate without server context takeover.
func (p *Prepared) deflateFrame() []byte {
	if !p.compress {
		return p.plainFrame()
	}
	p.deflateOnce.Do(func() {
		p.deflated = compressFrame(p.opcode(), p.payload, p.level)
		if p.deflated == nil {
			p.deflated = p.plainFrame()
		}
	})
	return p.deflated
}
