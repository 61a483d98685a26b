package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald/client"
)

// A server that sends large events faster than the Client's handlers take
// them (a hostile or broken one: Herald's own would disconnect such a
// client as slow first) makes the Client hold what it has read and not
// yet dispatched. The 1,024 places of the dispatch queue alone would let
// it hold 1,024 frames of up to the read limit (256 MiB of these 256 KiB
// events, 2 GiB at the defaults); the queue's bytes are bounded too
// (DefaultQueueBytes, 16 MiB), past which the Client stops reading and the
// server's writes wait. What the server manages to write is then that
// bound, the frame the reader holds, and the sockets' kernel buffers (up
// to 32 MiB of receive buffer and 4 MiB of send buffer on loopback).
// Once the handler returns, the events held are dispatched.
func TestQueueBytesBoundAgainstAFloodingServer(t *testing.T) {
	t.Parallel()
	const size = 256 << 10
	data, _ := json.Marshal(strings.Repeat("x", size))
	event, _ := json.Marshal(map[string]any{"type": "event", "room": "r", "event": "big", "data": json.RawMessage(data)})
	var written atomic.Int64
	flooded := make(chan struct{})
	handling := make(chan struct{}) // the test's handler is in place
	var once sync.Once
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"welcome","protocol":1,"connectionId":"c1"}`)); err != nil {
			return
		}
		first := false
		once.Do(func() { first = true })
		if !first {
			// A reconnect: nothing more to send; read until it closes.
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
		}
		defer close(flooded)
		<-handling
		// Write until a write has waited 2 s for the Client to read:
		// it has stopped reading (or 512 MiB went, twice what the queue's
		// places alone let through).
		for written.Load() < 512<<20 {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := ws.Write(wctx, websocket.MessageText, event)
			cancel()
			if err != nil {
				return
			}
			written.Add(int64(len(event)))
		}
	}))
	t.Cleanup(hs.Close)

	release := make(chan struct{})
	var got atomic.Int64
	c := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"))
	c.OnAny(func(client.Event) {
		got.Add(1)
		<-release // a handler busy with the first event
	})
	close(handling) // events dispatched before a handler is set go to none
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	select {
	case <-flooded:
	case <-time.After(60 * time.Second):
		t.Fatal("the server's writes never waited")
	}
	const most = client.DefaultQueueBytes + 40<<20 // and the kernel's buffers, frames in flight
	if w := written.Load(); w > most {
		t.Fatalf("the server wrote %d MiB to a Client whose handler is busy, over %d MiB", w>>20, most>>20)
	} else {
		t.Logf("the server wrote %d MiB before its writes waited", w>>20)
	}
	close(release)
	// What the queue held is dispatched: at least its bound's worth (each
	// event counts twice: the frame and its data).
	const held = client.DefaultQueueBytes/(2*size) - 1
	waitFor(t, 10*time.Second, "the held events dispatched", func() bool { return got.Load() >= held })
}

// A server that sends events with long msgIds made the Client remember
// each (4,096 of them, to drop redeliveries) and acknowledge it: at the
// read limit, 8 GiB; here, 256 ids of 64 KiB, 16 MiB. Only msgIds of at most 128 bytes (Herald's are about
// 20) are remembered and acknowledged now; the events are still
// delivered. Not parallel: it measures the heap.
func TestLongMsgIDsAreNotKept(t *testing.T) {
	const events, idSize = 256, 64 << 10
	handling := make(chan struct{}) // the test's handler is in place
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"welcome","protocol":1,"connectionId":"c1"}`)); err != nil {
			return
		}
		ws.SetReadLimit(-1) // the old Client's acks carried the long ids
		gone := make(chan struct{})
		go func() { // read until the Client goes: acks, its close
			defer close(gone)
			for {
				if _, _, err := ws.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		<-handling
		pad := strings.Repeat("m", idSize-8)
		for i := range events {
			ev := fmt.Sprintf(`{"type":"event","room":"r","event":"e","msgId":"%08d%s","ack":true,"data":1}`, i, pad)
			if err := ws.Write(ctx, websocket.MessageText, []byte(ev)); err != nil {
				break
			}
		}
		<-gone
	}))
	t.Cleanup(hs.Close)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var got atomic.Int64
	c := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"))
	c.OnAny(func(client.Event) { got.Add(1) })
	close(handling) // events dispatched before a handler is set go to none
	waitFor(t, 60*time.Second, "every event delivered", func() bool { return got.Load() >= events })
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grown by %d MiB after %d events with %d KiB msgIds", grown>>20, events, idSize>>10)
	if grown > 8<<20 {
		t.Fatalf("the Client holds %d MiB more after %d events with %d KiB msgIds (%d MiB of ids)", grown>>20, events, idSize>>10, events*idSize>>20)
	}
	if err := c.Close(); err != nil {
		t.Log(err)
	}
}

// A direct message the server sends right after the welcome (Herald's
// own does for anything published to the user meanwhile: a queued
// notification, the app's greeting) can be dispatched before Dial
// returns, so before any handler registered with OnAny after it.
// WithEventHandler puts a handler in place before the first frame.
func TestEventHandlerSeesDirectMessagesBeforeDialReturns(t *testing.T) {
	t.Parallel()
	const dms = 50
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		frames := []string{`{"type":"welcome","protocol":1,"connectionId":"c1","userId":"ada"}`}
		for i := range dms {
			frames = append(frames, fmt.Sprintf(`{"type":"event","room":"user:ada","event":"dm","msgId":"m%d","data":%d}`, i, i))
		}
		for _, f := range frames {
			if err := ws.Write(ctx, websocket.MessageText, []byte(f)); err != nil {
				return
			}
		}
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	}))
	t.Cleanup(hs.Close)
	var got atomic.Int64
	dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"), client.WithEventHandler(func(e client.Event) {
		if e.Room == "user:ada" {
			got.Add(1)
		}
	}))
	waitFor(t, 10*time.Second, "every direct message handled", func() bool { return got.Load() == dms })
}
