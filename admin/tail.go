package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/heraldrt/herald/broker"
	"github.com/heraldrt/herald/hub"
	"github.com/heraldrt/herald/protocol"
)

// Event tail limits: what one console watching a busy room may cost.
const (
	// maxTails bounds the tails open on one node at once.
	maxTails = 4
	// tailMax ends a tail after this long; the page offers to reopen it.
	tailMax = 15 * time.Minute
	// tailRate and tailBurst bound the events a tail passes on per
	// second; the rest are counted and reported as dropped.
	tailRate  = 20
	tailBurst = 20
	// tailBuffer bounds the events waiting for the stream's writer.
	tailBuffer = 64
	// tailDataMax bounds the bytes of data shown per event.
	tailDataMax = 1024
	// tailKeepAlive is the interval of comments that keep proxies from
	// closing a quiet stream.
	tailKeepAlive = 15 * time.Second
)

// tails counts the tails open on the node.
type tails struct {
	mu sync.Mutex
	n  int
}

func (t *tails) acquire() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n >= maxTails {
		return false
	}
	t.n++
	return true
}

func (t *tails) release() {
	t.mu.Lock()
	t.n--
	t.mu.Unlock()
}

// tailMember is a hub member that keeps, within its rate, the messages
// of the room it watches. Deliver is called on the fan-out path: it
// only appends under a mutex, or counts a drop.
type tailMember struct {
	mu      sync.Mutex
	bucket  bucket
	buf     []*broker.Message
	dropped int
	ready   chan struct{} // signalled when buf or dropped changed
}

func newTailMember() *tailMember { return &tailMember{ready: make(chan struct{}, 1)} }

// Deliver implements hub.Member.
func (t *tailMember) Deliver(d *hub.Delivery) {
	t.mu.Lock()
	if len(t.buf) < tailBuffer && t.bucket.take(time.Now(), tailBurst, time.Second/tailRate) {
		t.buf = append(t.buf, d.Msg)
	} else {
		t.dropped++
	}
	t.mu.Unlock()
	select {
	case t.ready <- struct{}{}:
	default:
	}
}

func (t *tailMember) take() ([]*broker.Message, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	buf, dropped := t.buf, t.dropped
	t.buf, t.dropped = nil, 0
	return buf, dropped
}

// tailEvent is one message as the tail shows it.
type tailEvent struct {
	At        int64           `json:"t"` // publish time, Unix milliseconds
	Room      string          `json:"room"`
	Event     string          `json:"event"`
	MsgID     string          `json:"msgId"`
	Offset    uint64          `json:"offset,omitempty"`
	From      string          `json:"from,omitempty"`
	CID       string          `json:"cid,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Truncated int             `json:"truncated,omitempty"` // size of data left out
}

func eventOf(m *broker.Message) tailEvent {
	ev := tailEvent{At: m.PublishedAt / 1e6, Room: m.Room, Event: m.Event, MsgID: m.MsgID, Offset: m.Offset, From: m.From, CID: m.CorrelationID, Data: m.Data}
	if len(m.Data) > tailDataMax {
		ev.Data, ev.Truncated = nil, len(m.Data)
	}
	return ev
}

// serveTail streams, as server-sent events, what is published to one
// room or to one user's room, from any node, while the request lasts.
func (c *Console) serveTail(w http.ResponseWriter, r *http.Request, a admin) {
	q := r.URL.Query()
	room := q.Get("room")
	if u := q.Get("user"); u != "" {
		if room != "" {
			writeError(w, http.StatusBadRequest, "bad_request", `give "room" or "user", not both`)
			return
		}
		room = protocol.UserRoomPrefix + u
	}
	if err := protocol.ValidateRoom(room); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	if !c.tails.acquire() {
		writeError(w, http.StatusTooManyRequests, "busy", errTailBusy.Error()+fmt.Sprintf(" (at most %d)", maxTails))
		return
	}
	defer c.tails.release()
	tm := newTailMember()
	leave, err := c.node.Tail(r.Context(), room, tm)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "broker_unavailable", "cannot watch the room: "+err.Error())
		return
	}
	defer leave()
	c.log.Info("admin tail opened", "admin_session", a.label, "room", room)
	defer c.log.Info("admin tail closed", "admin_session", a.label, "room", room)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "event: open\ndata: %s\n\n", mustJSON(map[string]any{"room": room, "ratePerSec": tailRate, "maxSec": int(tailMax / time.Second)}))
	if rc.Flush() != nil {
		return
	}
	end := time.NewTimer(tailMax)
	defer end.Stop()
	keep := time.NewTicker(tailKeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.stop:
			fmt.Fprint(w, "event: end\ndata: {\"reason\":\"node shutting down\"}\n\n")
			_ = rc.Flush()
			return
		case <-end.C:
			fmt.Fprint(w, "event: end\ndata: {\"reason\":\"time limit\"}\n\n")
			_ = rc.Flush()
			return
		case <-keep.C:
			fmt.Fprint(w, ": keep-alive\n\n")
		case <-tm.ready:
			msgs, dropped := tm.take()
			for _, m := range msgs {
				fmt.Fprintf(w, "data: %s\n\n", mustJSON(eventOf(m)))
			}
			if dropped > 0 {
				fmt.Fprintf(w, "event: dropped\ndata: {\"count\":%d}\n\n", dropped)
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
