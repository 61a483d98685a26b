package herald_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/heraldrt/herald"
)

// Mount Herald on the application's own mux, beside its REST routes, on one
// port: WebSockets on /ws, the app's API where it was.
func Example() {
	srv, err := herald.New(herald.Config{
		APIKeys: []string{"example-key-0123456789"},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hooks: herald.Hooks{
			OnEvent: func(ctx context.Context, c *herald.ConnInfo, event string, data json.RawMessage) (any, error) {
				return map[string]string{"hello": c.UserID}, nil
			},
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/todos", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `["write docs"]`)
	})
	mux.Handle("/", srv) // /ws, /healthz, /readyz, /metrics, /api/v1/...
	hs := httptest.NewServer(mux)
	defer hs.Close()
	defer srv.Shutdown(context.Background())

	// The app's own route still answers.
	resp, _ := http.Get(hs.URL + "/api/todos")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("todos:", string(body))

	// A client joins a room; the app publishes to it from the server side.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"X-Client-Id": {"ada"}}})
	if err != nil {
		panic(err)
	}
	defer c.CloseNow()
	read := func() string { _, b, _ := c.Read(ctx); return string(b) }
	read() // welcome
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","id":1,"room":"news"}`))
	fmt.Println(read())
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"emit","id":2,"event":"hi"}`))
	fmt.Println(read())

	if _, err := srv.Publish(ctx, "news", "headline", map[string]string{"title": "Herald ships"}); err != nil {
		panic(err)
	}
	var ev struct{ Type, Room, Event string }
	_ = json.Unmarshal([]byte(read()), &ev)
	fmt.Println(ev.Type, ev.Room, ev.Event)
	// Output:
	// todos: ["write docs"]
	// {"type":"reply","id":1,"data":{"room":"news"}}
	// {"type":"reply","id":2,"data":{"hello":"ada"}}
	// event news headline
}

// Send a message to every connection of one user, on every node.
func ExampleServer_PublishToUser() {
	srv, _ := herald.New(herald.Config{APIKeys: []string{"example-key-0123456789"}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer srv.Shutdown(context.Background())
	id, err := srv.PublishToUser(context.Background(), "ada", "invoice_paid", map[string]int{"amount": 42}, herald.WithAck())
	fmt.Println(id != "", err)
	// Output: true <nil>
}

// ExampleServer_Serve serves the application's routes and Herald on one
// port, with Herald's own accept path for WebSocket upgrades: they cost
// less CPU than through net/http, and every other request (the app's,
// /metrics, the API) is served by hs as before.
func ExampleServer_Serve() {
	srv, err := herald.New(herald.Config{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") })
	mux.Handle("/", srv)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln, hs) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/hello")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(string(body))

	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, "ws://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		panic(err)
	}
	_, welcome, _ := ws.Read(ctx)
	fmt.Println(strings.Contains(string(welcome), `"type":"welcome"`))
	ws.CloseNow()

	_ = srv.Shutdown(ctx)
	_ = hs.Shutdown(ctx)
	fmt.Println(<-served)
	// Output:
	// hello
	// true
	// http: Server closed
}
