package engineio

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	eio "github.com/heraldrt/herald/protocol/engineio"
)

// collector records the messages of the fuzzed sessions and echoes
// them, so that the sessions' polling buffers hold something.
type collector struct {
	mu   sync.Mutex
	msgs []eio.Packet
}

func (c *collector) OnMessage(s *Socket, data []byte, binary bool) {
	c.mu.Lock()
	c.msgs = append(c.msgs, eio.Packet{Type: eio.Message, Data: data, Binary: binary})
	c.mu.Unlock()
	_ = s.Send(s.Server().NewMessage(data, binary))
}

func (c *collector) OnClose(*Socket, error) {}

// FuzzPollingPost posts any body to a polling session through the
// server's handler: it never panics, answers 200, 400 or 413, and the
// messages the handler gets are exactly those of the payload up to the
// first packet that ends the session, and what the session buffered
// (their echoes) is given back to the queue budget once it ends.
func FuzzPollingPost(f *testing.F) {
	for _, s := range []string{"4hello", "4test1\x1e4test2\x1e4test3", "4hello\x1ebAQIDBA==", "abc", "1", "3",
		"2", "4a\x1e1\x1e4b", "b!!", "\x1e", "", "6\x1e5\x1e0", "4\xff\xfe", "bAQID\nBA=="} {
		f.Add([]byte(s))
	}
	const limit = 4096
	col := &collector{}
	srv, err := New(Config{MaxPayload: limit, PingInterval: time.Hour, PingTimeout: time.Hour,
		OnConnection: func(*Socket, *http.Request) Handler { return col }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	f.Fuzz(func(t *testing.T, body []byte) {
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("GET", "/?EIO=4&transport=polling", nil))
		var h struct{ SID string }
		if err := json.Unmarshal(w.Body.Bytes()[1:], &h); err != nil {
			t.Fatalf("handshake %q: %v", w.Body.String(), err)
		}
		col.mu.Lock()
		col.msgs = nil
		col.mu.Unlock()

		w = httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest("POST", "/?EIO=4&transport=polling&sid="+h.SID, bytes.NewReader(body)))
		want, derr := eio.DecodePayload(body, limit)
		switch {
		case len(body) > limit:
			if w.Code != 413 {
				t.Fatalf("%d-byte body: %d", len(body), w.Code)
			}
		case derr != nil:
			if w.Code != 400 {
				t.Fatalf("invalid body %q: %d %q", body, w.Code, w.Body)
			}
		case w.Code != 200 || w.Body.String() != "ok":
			t.Fatalf("valid body %q: %d %q", body, w.Code, w.Body)
		}
		var msgs []eio.Packet
		if derr == nil {
		loop:
			for _, p := range want {
				switch p.Type {
				case eio.Message:
					msgs = append(msgs, p)
				case eio.Close, eio.Ping:
					break loop
				}
			}
		}
		col.mu.Lock()
		got := col.msgs
		col.mu.Unlock()
		if len(got) != len(msgs) {
			t.Fatalf("body %q: handler got %d messages, want %d", body, len(got), len(msgs))
		}
		for i := range msgs {
			if got[i].Binary != msgs[i].Binary || !bytes.Equal(got[i].Data, msgs[i].Data) {
				t.Fatalf("message %d: %+v, want %+v", i, got[i], msgs[i])
			}
		}
		if so := srv.Socket(h.SID); so != nil {
			so.finish(ErrForcedClose)
		}
		if n := srv.QueuedBytes(); n != 0 {
			t.Fatalf("body %q: %d bytes still counted as queued once the session ended", body, n)
		}
	})
}
