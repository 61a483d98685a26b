package transport

import (
	"sync"
	"sync/atomic"
)

// Prepared is a data message encoded once and written to many
// connections. The plain frame (header and payload) is built at once and
// holds the message's only copy: Payload is a view into it, so a message
// kept after it was sent (e.g. until the client acknowledges it) costs
// its frame's bytes once. The compressed frame is built on the first send
// to a connection that negotiated permessage-deflate and cached. Every
// recipient gets the same byte slices, so a broadcast costs one encode and
// one compression however many connections it reaches.
//
// A Prepared is safe for concurrent use.
type Prepared struct {
	typ      MessageType
	payload  []byte // plain[len(plain)-n:]
	plain    []byte
	compress bool // payload is at or above the threshold
	level    int

	deflateOnce sync.Once
	deflated    []byte // RSV1 frame, or the plain frame when deflate does not pay

	holders atomic.Int32 // see Retain
}

// NewPrepared encodes a message of type typ, copying payload into its
// frame. Payloads of at least threshold bytes are compressed for
// connections that negotiated permessage-deflate (0 means 1024, negative
// means always), at flate level level (0 means 1, BestSpeed), on the
// first send to such a connection.
func NewPrepared(typ MessageType, payload []byte, threshold, level int) *Prepared {
	if threshold == 0 {
		threshold = DefaultCompressionThreshold
	}
	p := &Prepared{
		typ:      typ,
		compress: threshold < 0 || len(payload) >= threshold,
		level:    normLevel(level),
	}
	b := make([]byte, 0, serverHeaderLen(len(payload))+len(payload))
	p.plain = appendFrame(b, p.opcode(), false, payload)
	p.payload = p.plain[len(p.plain)-len(payload):]
	return p
}

// FrameHeadroom is the room NewPreparedInPlace needs in front of a
// payload: the longest frame header a server writes.
const FrameHeadroom = 10

// NewPreparedInPlace is NewPrepared for a payload encoded at
// b[FrameHeadroom:]: the frame header is written into the room in front
// of it, so the payload is neither copied nor held twice. b must not be
// used by the caller afterwards.
func NewPreparedInPlace(typ MessageType, b []byte, threshold, level int) *Prepared {
	if threshold == 0 {
		threshold = DefaultCompressionThreshold
	}
	payload := b[FrameHeadroom:]
	p := &Prepared{
		typ:      typ,
		compress: threshold < 0 || len(payload) >= threshold,
		level:    normLevel(level),
	}
	start := FrameHeadroom - serverHeaderLen(len(payload))
	putServerHeader(b[start:], p.opcode(), false, len(payload))
	p.plain = b[start:len(b):len(b)]
	p.payload = payload
	return p
}

// Size returns the bytes the message holds: its plain frame. A compressed
// copy, made for connections that negotiated permessage-deflate, is not
// counted.
func (p *Prepared) Size() int { return len(p.plain) }

// Retain records one more holder that keeps p after sending it (such as
// a connection waiting for the client's acknowledgement) and reports
// whether it is the first, so that memory held by many holders of one
// broadcast can be counted once. Each Retain is paired with one Unretain.
func (p *Prepared) Retain() (first bool) { return p.holders.Add(1) == 1 }

// Unretain ends one Retain and reports whether it was the last holder.
func (p *Prepared) Unretain() (last bool) { return p.holders.Add(-1) == 0 }

// Retained reports whether p has a holder (see Retain).
func (p *Prepared) Retained() bool { return p.holders.Load() > 0 }

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

// plainFrame returns the uncompressed frame.
func (p *Prepared) plainFrame() []byte { return p.plain }

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
