package backend_test

import (
	"context"
	"log"
	"net/http"
	"os"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/backend"
)

// ExampleNew sends a Go program's connect and emit hooks to the
// application's backend, as `herald serve --backend-url` does.
func ExampleNew() {
	p, err := backend.New(backend.Config{
		URL:    "http://127.0.0.1:3000/herald",
		Hooks:  []string{backend.HookConnect, backend.HookEmit, backend.HookEvents},
		Secret: []byte(os.Getenv("HERALD_BACKEND_SECRET")),
	})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := herald.New(herald.Config{Hooks: p.Hooks()})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		_ = srv.Shutdown(context.Background())
		_ = p.Close(context.Background()) // after Shutdown: the drain's disconnected events are posted
	}()
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", srv))
}
