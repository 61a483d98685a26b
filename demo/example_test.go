package demo_test

import (
	"log"
	"net/http"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/demo"
)

// The demo page needs Herald's /ws on the same host: mount both on one mux.
func ExampleHandler() {
	srv, err := herald.New(herald.Config{})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(demo.Prefix, demo.Handler()) // the chat at /demo/
	mux.Handle("/", srv)                    // /ws, /healthz, /api/v1/publish, …
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mux))
}
