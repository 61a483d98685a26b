package backend

import (
	"context"
	"errors"
	"sync"
)

// Queue holds one node's webhook events, in order, until the backend has
// taken them. Implementations are safe for concurrent use; only the
// node's dispatcher calls Peek and Ack.
type Queue interface {
	// Push appends e.
	Push(ctx context.Context, e QueuedEvent) error
	// Peek returns up to max events from the head, oldest first, without
	// removing them.
	Peek(ctx context.Context, max int) ([][]byte, error)
	// Ack removes the n events at the head, which Peek returned.
	Ack(ctx context.Context, n int) error
	// Len returns how many events this node's queue holds.
	Len(ctx context.Context) (int, error)
	// Maintain renews this node's lease and takes over the queues of
	// nodes whose lease lapsed, adding their events and the disconnected
	// events of the connections they held to this node's queue. It
	// returns how many events it took over. The dispatcher calls it every
	// quarter of Config.LeaseTTL.
	Maintain(ctx context.Context) (int, error)
	// Close releases the queue; empty says this node's queue is empty,
	// so that a shared queue can forget the node at once instead of
	// waiting for its lease to lapse.
	Close(ctx context.Context, empty bool) error
}

// QueueBytes is implemented by a Queue that knows the bytes it holds
// (MemoryQueue, backend/redisqueue): the dispatcher reports them as
// herald_backend_events_queued_bytes.
type QueueBytes interface {
	// Bytes returns the bytes this node's queue holds.
	Bytes(ctx context.Context) (int64, error)
}

// QueuedEvent is one event as a Queue stores it.
type QueuedEvent struct {
	// Body is the event's JSON, as posted.
	Body []byte
	// ConnID is the connection the event is about.
	ConnID string
	// Open is set with a connected event: the disconnected event another
	// node posts if this node dies while the connection is open.
	Open []byte
	// Closed is set with a disconnected event: the connection is no
	// longer open.
	Closed bool
}

// ErrQueueFull is returned by Push when the queue holds as many events as
// it may; the event is given up.
var ErrQueueFull = errors.New("backend: events queue full")

// MemoryQueue is a Queue in this process's memory: bounded in events and
// in bytes, and lost with the process (a crashed node's disconnected
// events are never sent).
type MemoryQueue struct {
	max      int
	maxBytes int64 // 0: DefaultEventsQueueBytes
	mu       sync.Mutex
	items    [][]byte
	bytes    int64 // of items
}

// NewMemoryQueue returns a MemoryQueue holding at most max events, and at
// most DefaultEventsQueueBytes of them unless LimitBytes says otherwise.
func NewMemoryQueue(max int) *MemoryQueue { return &MemoryQueue{max: max} }

// LimitBytes bounds the bytes of the events q holds (their JSON): an event
// that would take it over is refused with ErrQueueFull. maxBytes <= 0
// restores DefaultEventsQueueBytes. Each event carries its connection's
// Data, so a bound in events alone did not bound the memory.
func (q *MemoryQueue) LimitBytes(maxBytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.maxBytes = maxBytes
}

// Push implements Queue.
func (q *MemoryQueue) Push(_ context.Context, e QueuedEvent) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	limit := q.maxBytes
	if limit <= 0 {
		limit = DefaultEventsQueueBytes
	}
	if len(q.items) >= q.max || q.bytes+int64(len(e.Body)) > limit {
		return ErrQueueFull
	}
	q.items = append(q.items, e.Body)
	q.bytes += int64(len(e.Body))
	return nil
}

// Peek implements Queue.
func (q *MemoryQueue) Peek(_ context.Context, max int) ([][]byte, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max, len(q.items))
	return append([][]byte(nil), q.items[:n]...), nil
}

// Ack implements Queue.
func (q *MemoryQueue) Ack(_ context.Context, n int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.items))
	for _, b := range q.items[:n] {
		q.bytes -= int64(len(b))
	}
	clear(q.items[:n])
	q.items = q.items[n:]
	if len(q.items) == 0 {
		q.items = nil
	}
	return nil
}

// Len implements Queue.
func (q *MemoryQueue) Len(context.Context) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items), nil
}

// Bytes implements QueueBytes: the bytes of the events q holds.
func (q *MemoryQueue) Bytes(context.Context) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes, nil
}

// Maintain implements Queue: a memory queue has no lease.
func (q *MemoryQueue) Maintain(context.Context) (int, error) { return 0, nil }

// Close implements Queue.
func (q *MemoryQueue) Close(context.Context, bool) error { return nil }
