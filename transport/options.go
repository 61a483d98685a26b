package transport

import "time"

// Defaults applied by Upgrade to zero-valued Options fields.
const (
	DefaultReadLimit            = 64 << 10
	DefaultCompressionThreshold = 1024
	DefaultCompressionLevel     = 1
	DefaultSendQueueSize        = 256
	DefaultWriteTimeout         = 10 * time.Second
	DefaultPingInterval         = 30 * time.Second
	DefaultPongTimeout          = 10 * time.Second
	DefaultControlFrameRate     = 50
)

// maxControlFrameRate is the highest ControlFrameRate the per-connection
// counter (16 bits) can enforce.
const maxControlFrameRate = 1<<16 - 2

// Options configures one connection. The zero value works: every zero
// field takes the default named in its comment.
type Options struct {
	// ReadLimit is the largest data message accepted, in bytes after
	// decompression. Default 64 KiB. A larger message closes the
	// connection with 1009 "message too big: limit N bytes".
	ReadLimit int64
	// Compression negotiates permessage-deflate (RFC 7692) when the client
	// offers it. Off in the zero value.
	Compression bool
	// CompressionThreshold is the smallest payload, in bytes, that is
	// compressed. 0 means 1024; a negative value compresses everything.
	CompressionThreshold int
	// CompressionLevel is the compress/flate level, 1..9 or -2
	// (HuffmanOnly). 0 means 1 (BestSpeed).
	CompressionLevel int
	// ContextTakeover lets the connection keep its flate state across
	// messages when the client allows it. It improves the ratio for
	// streams of similar messages but costs a flate writer (~600 KiB at
	// high levels) per connection and rules out sharing a Prepared's
	// compressed bytes: such a connection compresses every message
	// itself. Default false: the server always answers
	// server_no_context_takeover and client_no_context_takeover.
	ContextTakeover bool
	// SendQueueSize bounds the per-connection send queue, in messages:
	// once that many wait while the socket is full, the connection is
	// closed as a slow consumer (4008). While the socket still takes data
	// the queue may grow to 4× this (the server, not the peer, is behind).
	// Default 256.
	SendQueueSize int
	// WriteTimeout bounds each write call that has to wait for the peer
	// (at most 256 KiB, or one larger frame, per call): a peer that reads
	// nothing for this long is dropped. Default 10s.
	WriteTimeout time.Duration
	// PingInterval is the heartbeat period. Default 30s; negative
	// disables heartbeats.
	PingInterval time.Duration
	// PongTimeout is how long after a ping the peer has to send any
	// frame before the connection is terminated with
	// ErrHeartbeatTimeout. Default 10s.
	PongTimeout time.Duration
	// ControlFrameRate is the most ping and pong frames a peer may send
	// in one second (of the heartbeat clock). A peer over it is closed
	// with 1008 "too many control frames": each ping costs the server a
	// read and a pong, and a flood of them would take a core. Default
	// 50; at most 65534; negative: no limit.
	ControlFrameRate int
	// Subprotocols lists the supported subprotocols in server preference
	// order; the first one the client also offers is selected. Only the
	// first 255 entries are considered.
	Subprotocols []string
}

// withDefaults returns o with every zero field replaced by its default.
func (o Options) withDefaults() Options {
	if o.ReadLimit <= 0 {
		o.ReadLimit = DefaultReadLimit
	}
	if o.CompressionThreshold == 0 {
		o.CompressionThreshold = DefaultCompressionThreshold
	}
	o.CompressionLevel = normLevel(o.CompressionLevel)
	if o.SendQueueSize <= 0 {
		o.SendQueueSize = DefaultSendQueueSize
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.PingInterval == 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = DefaultPongTimeout
	}
	switch {
	case o.ControlFrameRate == 0:
		o.ControlFrameRate = DefaultControlFrameRate
	case o.ControlFrameRate > maxControlFrameRate:
		o.ControlFrameRate = maxControlFrameRate
	}
	return o
}
