package transport

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by Upgrade to zero-valued Options fields.
const (
	DefaultReadLimit            = 64 << 10
	DefaultCompressionThreshold = 1024
	DefaultCompressionLevel     = 1
	DefaultSendQueueSize        = 256
	DefaultSendQueueBytes       = 4 << 20
	DefaultMaxQueuedBytes       = 1 << 30
	DefaultMaxReadingBytes      = 256 << 20
	DefaultMaxTakeoverBytes     = 256 << 20
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
	// streams of similar messages but costs a flate writer (1.2 MB at
	// level 1, 810 KB at levels 2-9) per connection and a 32 KiB window
	// of the client's messages, bounded together by MaxTakeoverBytes, and
	// rules out sharing a Prepared's compressed bytes: such a connection
	// compresses every message itself. Default false: the server always
	// answers server_no_context_takeover and client_no_context_takeover.
	ContextTakeover bool
	// MaxTakeoverBytes bounds the compression state that all of an
	// Upgrader's connections with context takeover keep between messages
	// (ContextTakeover, where the client allows it): a flate writer each,
	// made at its first compressed message (1.2 MB at level 1, 810 KB at
	// levels 2-9, 730 KB HuffmanOnly), and the 32 KiB window of the
	// client's compressed messages, made at the first one. A client that
	// allows takeover makes the server keep both for its connection's
	// life by receiving one message over CompressionThreshold and sending
	// one compressed: without a bound 10,000 such connections hold 12 GB.
	// A connection whose writer does not fit compresses each message on
	// its own from then on, as without takeover (which a peer that
	// allowed takeover decodes all the same); one whose window does not
	// fit is closed with 1013 (try again later) and Err reports
	// ErrReadsFull. Default 256 MiB (about 200 writers at level 1).
	MaxTakeoverBytes int64
	// Takeover, when set, is the budget the connections count their
	// context takeover state in instead of one of the Upgrader's own:
	// several Upgraders then share one bound; MaxTakeoverBytes is ignored.
	Takeover *ReadBudget
	// SendQueueSize bounds the per-connection send queue, in messages:
	// once that many wait while the socket is full, the connection is
	// closed as a slow consumer (4008). While the socket still takes data
	// the queue may grow to 4× this (the server, not the peer, is behind).
	// Default 256.
	SendQueueSize int
	// SendQueueBytes bounds the per-connection send queue in bytes (the
	// frames' uncompressed size): a message that would take the queue
	// over it closes the connection as a slow consumer (4008), whether
	// or not the socket still takes data. A message larger than the bound
	// is still queued when the queue is empty. What a connection holds
	// is at most this queue plus one batch being written to a slow peer
	// (taken from the queue, so no larger than it). Default 4 MiB; at
	// most 2 GiB.
	SendQueueBytes int64
	// MaxQueuedBytes bounds the bytes queued by all connections of one
	// Upgrader together, batches being written to slow peers included,
	// each connection counting the frames it queues (a broadcast frame
	// shared by many connections counts once per connection). A message
	// that arrives while the total is at the bound closes, with 1013 (try
	// again later), the tracked holder (see QueueBudget) holding the most,
	// a connection whose write waits for its peer, if it holds more than
	// the message's own connection would, and is queued; else it closes
	// its own connection. Err reports ErrQueuesFull either way.
	// Default 1 GiB.
	MaxQueuedBytes int64
	// Queues, when set, is the budget the connections count their queues
	// in instead of one of the Upgrader's own: several Upgraders, and
	// other holders of bytes queued for peers (an Engine.IO server's
	// long-polling buffers), then share one bound, the budget's limit;
	// MaxQueuedBytes is ignored.
	Queues *QueueBudget
	// MaxReadingBytes bounds the bytes that all connections of one
	// Upgrader hold together in read buffers beyond the pooled 4 KiB one:
	// the buffer of a frame larger than it that is still arriving, a
	// fragmented or compressed message's assembly buffer while its
	// fragments arrive, and, in Read (not TryRead), a frame over 4 KiB
	// while its payload arrives. A client can make the server hold up to
	// ReadLimit that way by declaring a large frame and sending its start
	// slowly, before it has been authenticated; without this bound 15,000
	// such clients at a 1 MB limit hold 15 GB. A message over 4 KiB that
	// Read or TryRead returns after inflating or reassembling it, or that
	// Read waited for, counts too, until the connection's next Read or
	// TryRead, while the application handles it: a compressed message of
	// a hundred bytes inflates to a whole ReadLimit. A connection whose buffer
	// would take the total over the bound is closed with 1013 (try again
	// later) and Err reports ErrReadsFull; frames of at most 4 KiB never
	// count. Default 256 MiB: thousands of large messages in flight at
	// once (4,000 of 64 KiB, 268 of 1 MB), far more than honest clients
	// send at the same instant, while an attacker's hold stays a small
	// part of a server's memory.
	MaxReadingBytes int64
	// Reading, when set, is the budget the connections count their read
	// buffers in instead of one of the Upgrader's own: several Upgraders
	// then share one bound, the budget's limit; MaxReadingBytes is
	// ignored.
	Reading *ReadBudget
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

	// queues counts what the Upgrader's connections queue; set by
	// NewUpgrader (Queues, or a budget of its own).
	queues *QueueBudget
	// reading counts the read buffers of the Upgrader's connections; set
	// by NewUpgrader (Reading, or a budget of its own).
	reading *ReadBudget
	// takeover counts their context takeover state; set by NewUpgrader
	// (Takeover, or a budget of its own).
	takeover *ReadBudget
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
	if o.SendQueueBytes <= 0 {
		o.SendQueueBytes = DefaultSendQueueBytes
	}
	o.SendQueueBytes = min(o.SendQueueBytes, math.MaxInt32)
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if o.MaxReadingBytes <= 0 {
		o.MaxReadingBytes = DefaultMaxReadingBytes
	}
	if o.MaxTakeoverBytes <= 0 {
		o.MaxTakeoverBytes = DefaultMaxTakeoverBytes
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

// QueueBudget counts bytes queued for peers against one bound: those of
// the connections of one Upgrader (see Options.MaxQueuedBytes), or of
// several and of any other holder that takes and gives back its bytes
// (see Options.Queues). It is safe for concurrent use.
//
// A holder that does not read what is queued for it (a connection whose
// write waits for the peer; an Engine.IO long-polling session with
// packets waiting for its next GET) is tracked, so that when the budget
// is full the one holding the most is closed to make room, rather than
// whichever holder happens to queue the next message: a few slow clients
// could otherwise fill the budget and have every other client closed.
type QueueBudget struct {
	used  atomic.Int64
	limit int64
	// freeing is what evicted holders still count in used until their
	// close is done: room already made, which take does not count.
	freeing atomic.Int64
	evicted atomic.Int64
	onLimit func()

	mu sync.Mutex
	// holders maps each tracked holder to the bytes it holds beyond what
	// its heldBytes reports (a connection's write waiting for the peer).
	holders map[holder]int64
}

// holder is something holding bytes in a QueueBudget that can be closed
// to give them back.
type holder interface {
	// heldBytes returns what it holds now (beyond what it was tracked
	// with), or -1 when it is closing already.
	heldBytes() int64
	// evict closes it; held is what the budget believes it holds. It
	// reports whether it started closing; if so, the bytes it did not
	// give back by the time evict returns count in freeing until they
	// are (see QueueBudget.freed).
	evict(b *QueueBudget, held int64) bool
}

// Evictable is a holder of bytes in a QueueBudget, other than a Conn,
// that the budget may close when it is full (see Track).
type Evictable interface {
	// QueuedBytes returns the bytes it holds in the budget now, or -1
	// when it is closing already.
	QueuedBytes() int64
	// Evict closes it, giving back what it holds in the budget before it
	// returns, and reports whether it did (false when it was closing
	// already).
	Evict() bool
}

type evictable struct{ e Evictable }

func (h evictable) heldBytes() int64                   { return h.e.QueuedBytes() }
func (h evictable) evict(_ *QueueBudget, _ int64) bool { return h.e.Evict() }

// NewQueueBudget returns a budget of limit bytes (DefaultMaxQueuedBytes
// when limit is not positive).
func NewQueueBudget(limit int64) *QueueBudget {
	if limit <= 0 {
		limit = DefaultMaxQueuedBytes
	}
	return &QueueBudget{limit: limit}
}

// Take counts n more bytes, unless the total is already at the limit: a
// holder under the limit may pass it by its last message, as a
// connection's queue may, so that one message is never refused by the
// budget alone. What Take counted is given back with Give.
func (b *QueueBudget) Take(n int64) bool { return b.take(n) }

// Give gives back n bytes counted by Take.
func (b *QueueBudget) Give(n int64) { b.give(n) }

// Used returns the bytes counted now.
func (b *QueueBudget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Track makes h a candidate for eviction while the budget is full: a
// holder whose client is not reading what it holds. Untrack it when its
// client reads again, and when it closes.
func (b *QueueBudget) Track(h Evictable) { b.track(evictable{h}, 0) }

// Untrack ends Track.
func (b *QueueBudget) Untrack(h Evictable) { b.untrack(evictable{h}) }

// MakeRoom closes the tracked holder that holds the most, if it holds
// more than self (nil if self is not an Evictable) will once n more
// bytes are queued, and reports whether it did: the caller may then
// Take again. When it reports false the caller is the one to close. It
// must be called without any lock that Evict or QueuedBytes take.
func (b *QueueBudget) MakeRoom(self Evictable, n int64) bool {
	var h holder
	if self != nil {
		h = evictable{self}
	}
	return b.makeRoom(h, n)
}

// OnLimit sets f to run each time the budget, full, has a holder closed:
// one closed to make room, or the one whose message did not fit when no
// other holds more (e.g. to count it in a metric). Call it before the
// budget is used.
func (b *QueueBudget) OnLimit(f func()) { b.onLimit = f }

// Evicted returns how many holders the budget has closed to make room.
func (b *QueueBudget) Evicted() int64 {
	if b == nil {
		return 0
	}
	return b.evicted.Load()
}

func (b *QueueBudget) track(h holder, base int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	if b.holders == nil {
		b.holders = make(map[holder]int64)
	}
	b.holders[h] = base
	b.mu.Unlock()
}

func (b *QueueBudget) untrack(h holder) {
	if b == nil {
		return
	}
	b.mu.Lock()
	delete(b.holders, h)
	b.mu.Unlock()
}

// maxEvictions bounds the holders closed for one message: each holds
// more than the sender, so a few make room unless the budget is full of
// small holders, and then the sender is as good a choice as any.
const maxEvictions = 4

// makeRoom is MakeRoom. No holder's lock is taken while b.mu is held:
// holders track and untrack themselves under their own locks.
func (b *QueueBudget) makeRoom(self holder, n int64) bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	type candidate struct {
		h    holder
		base int64
	}
	cands := make([]candidate, 0, len(b.holders))
	selfHeld := n
	for h, base := range b.holders {
		if h == self {
			selfHeld += base
			continue
		}
		cands = append(cands, candidate{h, base})
	}
	b.mu.Unlock()
	if self != nil {
		selfHeld += max(self.heldBytes(), 0)
	}
	var victim holder
	most := selfHeld
	for _, c := range cands {
		held := c.h.heldBytes()
		if held < 0 {
			continue // closing: its bytes come back anyway
		}
		if held += c.base; held > most {
			victim, most = c.h, held
		}
	}
	if victim == nil {
		b.limitHit() // the caller closes itself
		return false
	}
	b.untrack(victim)
	if victim.evict(b, most) {
		b.evicted.Add(1)
		b.limitHit()
	}
	return true
}

func (b *QueueBudget) limitHit() {
	if b.onLimit != nil {
		b.onLimit()
	}
}

// freed ends the count in freeing of bytes an evicted holder has given
// back.
func (b *QueueBudget) freed(n int64) {
	if b != nil && n != 0 {
		b.freeing.Add(-n)
	}
}

// take adds n bytes unless the total is already at the limit, not
// counting what evicted holders are about to give back. A nil budget
// (Options not made by NewUpgrader) takes everything.
func (b *QueueBudget) take(n int64) bool {
	if b == nil {
		return true
	}
	if b.used.Load()-b.freeing.Load() >= b.limit {
		return false
	}
	b.used.Add(n)
	return true
}

// give returns n bytes taken with take or add.
func (b *QueueBudget) give(n int64) {
	if b != nil && n != 0 {
		b.used.Add(-n)
	}
}

// add counts n bytes that cannot be refused (a batch already taken).
func (b *QueueBudget) add(n int64) {
	if b != nil {
		b.used.Add(n)
	}
}

// ReadBudget counts bytes held in connections' read buffers beyond the
// pooled one (see Options.MaxReadingBytes) against one bound. Unlike a
// QueueBudget it never lets the total pass the limit. It is safe for
// concurrent use.
type ReadBudget struct {
	used     atomic.Int64
	refused  atomic.Int64
	limit    int64
	onRefuse func()
}

// NewReadBudget returns a budget of limit bytes (DefaultMaxReadingBytes
// when limit is not positive).
func NewReadBudget(limit int64) *ReadBudget {
	if limit <= 0 {
		limit = DefaultMaxReadingBytes
	}
	return &ReadBudget{limit: limit}
}

// OnRefuse sets f to run on every refusal (a connection about to be
// closed with 1013), e.g. to count it in a metric. Call it before the
// budget is used.
func (b *ReadBudget) OnRefuse(f func()) { b.onRefuse = f }

// Used returns the bytes counted now.
func (b *ReadBudget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Refused returns how many connections have been closed because their
// read buffer did not fit in the budget.
func (b *ReadBudget) Refused() int64 {
	if b == nil {
		return 0
	}
	return b.refused.Load()
}

// Take counts n more bytes held by another holder of client input in
// the budget (an Engine.IO long-polling POST body while it arrives) if
// the total stays within the limit. A refusal counts in Refused and runs
// OnRefuse, as a connection's does. What Take counted is given back with
// Give.
func (b *ReadBudget) Take(n int64) bool { return b.take(n) }

// Give gives back n bytes counted by Take.
func (b *ReadBudget) Give(n int64) { b.give(n) }

// take counts n more bytes if the total stays within the limit. A nil
// budget (Options not made by NewUpgrader) takes everything.
func (b *ReadBudget) take(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		b.refused.Add(1)
		if b.onRefuse != nil {
			b.onRefuse()
		}
		return false
	}
	return true
}

// give returns n bytes counted by take.
func (b *ReadBudget) give(n int64) {
	if b != nil && n > 0 {
		b.used.Add(-n)
	}
}
