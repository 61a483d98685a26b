//go:build linux

package floor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBroadcast runs the floor server for real: welcome, join, a publish
// reaching every member once, a bad message answered with an error, a
// member that leaves dropped from the room.
func TestBroadcast(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	// Port 0: the server binds a free port and names it; a port picked
	// free here could be taken by another test's server first.
	listening := make(chan string, 1)
	go func() {
		served <- Run(ctx, Config{Addr: "127.0.0.1:0", Listening: func(a string) { listening <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	var addr string
	select {
	case addr = <-listening:
	case err := <-served:
		t.Fatalf("Run: %v", err)
	}

	tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
	defer tcancel()
	read := func(c *websocket.Conn) string {
		t.Helper()
		_, m, err := c.Read(tctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(m)
	}
	var members []*websocket.Conn
	for i := 0; i < 3; i++ {
		c, _, err := websocket.Dial(tctx, "ws://"+addr+"/ws", nil) // it listens: Listening was called
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if m := read(c); !strings.Contains(m, `"type":"welcome"`) {
			t.Fatalf("first frame %s", m)
		}
		if err := c.Write(tctx, websocket.MessageText, []byte(`{"type":"join","id":7,"room":"r%s"}`)); err != nil {
			t.Fatal(err)
		}
		if m := read(c); m != `{"type":"reply","id":7,"data":{"room":"r%s"}}` {
			t.Fatalf("join reply %s", m)
		}
		members = append(members, c)
	}
	publish := []byte(`{"type":"publish","id":"p","room":"r%s","event":"e","data":{"n":1}}`)
	if err := members[0].Write(tctx, websocket.MessageText, publish); err != nil {
		t.Fatal(err)
	}
	for i, c := range members {
		if m := read(c); !strings.HasPrefix(m, `{"type":"event","room":"r%s","event":"e","data":{"n":1},"msgId":"1","ts":`) {
			t.Fatalf("member %d got %s", i, m)
		}
	}
	if m := read(members[0]); m != `{"type":"reply","id":"p","data":{"msgId":"1"}}` {
		t.Fatalf("publish reply %s", m)
	}
	if err := members[1].Write(tctx, websocket.MessageText, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if m := read(members[1]); !strings.Contains(m, `"code":"bad_message"`) {
		t.Fatalf("bad message answered with %s", m)
	}
	members[1].Close(websocket.StatusNormalClosure, "")
	if err := members[0].Write(tctx, websocket.MessageText, publish); err != nil {
		t.Fatal(err)
	}
	if m := read(members[2]); !strings.Contains(m, `"msgId":"2"`) {
		t.Fatalf("second event %s", m)
	}
}
