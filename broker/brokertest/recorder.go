package brokertest

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldrt/herald/broker"
)

// Recorder is a broker.Handler that keeps everything it is handed. It never
// blocks, as the contract requires.
type Recorder struct {
	mu       sync.Mutex
	messages []*broker.Message
	controls []*broker.Control
	gaps     [][]string
}

var _ broker.Handler = (*Recorder)(nil)

// HandleMessage implements broker.Handler.
func (r *Recorder) HandleMessage(m *broker.Message) {
	r.mu.Lock()
	r.messages = append(r.messages, m)
	r.mu.Unlock()
}

// HandleControl implements broker.Handler.
func (r *Recorder) HandleControl(c *broker.Control) {
	r.mu.Lock()
	r.controls = append(r.controls, c)
	r.mu.Unlock()
}

// HandleGap implements broker.Handler.
func (r *Recorder) HandleGap(rooms []string) {
	r.mu.Lock()
	r.gaps = append(r.gaps, append([]string(nil), rooms...))
	r.mu.Unlock()
}

// Gaps returns every HandleGap call's rooms, in order.
func (r *Recorder) Gaps() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.gaps...)
}

// Messages returns the messages received for room, in arrival order.
func (r *Recorder) Messages(room string) []*broker.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*broker.Message
	for _, m := range r.messages {
		if m.Room == room {
			out = append(out, m)
		}
	}
	return out
}

// Count returns how many messages of room with the given MsgID arrived.
func (r *Recorder) Count(room, msgID string) int {
	n := 0
	for _, m := range r.Messages(room) {
		if m.MsgID == msgID {
			n++
		}
	}
	return n
}

// Controls returns the control messages whose Reason is reason.
func (r *Recorder) Controls(reason string) []*broker.Control {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*broker.Control
	for _, c := range r.controls {
		if c.Reason == reason {
			out = append(out, c)
		}
	}
	return out
}

// Eventually polls cond every few milliseconds until it holds, failing the
// test with msg after timeout.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(msg, args...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// InOrder waits up to timeout for count messages in room and checks that
// their MsgIDs are "0", "1", … in that order.
func (r *Recorder) InOrder(t testing.TB, room string, count int, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, func() bool { return len(r.Messages(room)) >= count },
		"%d of %d messages delivered within %v", len(r.Messages(room)), count, timeout)
	for i, m := range r.Messages(room) {
		if m.MsgID != strconv.Itoa(i) {
			t.Fatalf("position %d holds message %s: order lost", i, m.MsgID)
		}
	}
}
