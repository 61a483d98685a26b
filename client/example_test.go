package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/client"
)

// exampleServer starts a Herald server for the examples and returns its
// WebSocket URL and a function that stops it.
func exampleServer(hooks herald.Hooks) (*herald.Server, string, func()) {
	srv, err := herald.New(herald.Config{
		Hooks:        hooks,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		APIKeys:      []string{testAPIKey},
		DrainTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", func() {
		_ = srv.Shutdown(context.Background())
		hs.Close()
	}
}

// Join a room, publish to it, and receive the message back.
func Example() {
	_, url, stop := exampleServer(herald.Hooks{})
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, url, client.WithClientID("alice"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	got := make(chan client.Event, 1)
	c.On("message", func(ev client.Event) { got <- ev })
	if err := c.Join(ctx, "chat"); err != nil {
		log.Fatal(err)
	}
	if _, err := c.Publish(ctx, "chat", "message", map[string]string{"text": "hello"}); err != nil {
		log.Fatal(err)
	}
	ev := <-got
	fmt.Println(ev.Room, ev.Event, string(ev.Data))
	// Output: chat message {"text":"hello"}
}

// Dial with the options a production client usually sets: a token that is
// fetched again on every reconnect, reconnect delays, and a view of the
// connection's state.
func ExampleDial() {
	_, url, stop := exampleServer(herald.Hooks{})
	defer stop()

	states := make(chan client.State, 10)
	c, err := client.Dial(context.Background(), url,
		client.WithTokenProvider(func(ctx context.Context) (string, error) {
			return "token-from-your-identity-provider", nil
		}),
		client.WithReconnect(500*time.Millisecond, time.Minute),
		client.WithStateHandler(func(s client.State) { states <- s }),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-states, <-states)
	_ = c.Close()
	fmt.Println(<-states, c.Err())
	// Output:
	// connecting connected
	// closed herald/client: closed
}

// Messages published with ack are acknowledged by the client once the
// handlers have returned; a redelivery is not handed to them again.
func ExampleWithAck() {
	_, url, stop := exampleServer(herald.Hooks{})
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, url, client.WithAckBatch(100*time.Millisecond, 64))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	got := make(chan client.Event, 1)
	c.On("order", func(ev client.Event) { got <- ev })
	if err := c.Join(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	msgID, err := c.Publish(ctx, "orders", "order", 42, client.WithAck())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println((<-got).MsgID == msgID)
	// Output: true
}

// Emit sends a custom event to the server application's OnEvent hook and
// returns its reply; a hook error comes back as a *client.ServerError.
func ExampleClient_Emit() {
	_, url, stop := exampleServer(herald.Hooks{
		OnEvent: func(_ context.Context, _ *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
			if event == "price" {
				return map[string]any{"sku": json.RawMessage(data), "cents": 1999}, nil
			}
			return nil, &herald.EventError{Code: "unknown_event", Message: event}
		},
	})
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, url)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	reply, err := c.Emit(ctx, "price", "A-42")
	fmt.Println(string(reply), err)

	_, err = c.Emit(ctx, "refund", nil)
	var se *client.ServerError
	if errors.As(err, &se) {
		fmt.Println(se.Code, se.Message)
	}
	// Output:
	// {"cents":1999,"sku":"A-42"} <nil>
	// unknown_event refund
}

// Join remembers the room: after a reconnect the client joins it again by
// itself. A refusal is a *client.ServerError.
func ExampleClient_Join() {
	_, url, stop := exampleServer(herald.Hooks{})
	defer stop()
	ctx := context.Background()

	c, err := client.Dial(ctx, url, client.WithClientID("bob"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	fmt.Println(c.Join(ctx, "lobby"))
	err = c.Join(ctx, "user:alice") // another user's private room
	var se *client.ServerError
	fmt.Println(errors.As(err, &se), se.Code)
	fmt.Println(c.Rooms())
	// Output:
	// <nil>
	// true forbidden
	// [lobby]
}
