// Command socketio-echo is the small app the published Engine.IO and
// Socket.IO protocol test suites run against (socketio/engine.io-protocol
// and socketio/socket.io-protocol): an Engine.IO server at /engine.io/
// that echoes every message, and a Socket.IO server at /socket.io/, with
// the settings the suites expect (pingInterval 300 ms, pingTimeout
// 200 ms, maxPayload 1,000,000).
//
//	go run ./examples/socketio-echo -addr localhost:3000
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "localhost:3000", "listen address (the suites use localhost:3000)")
	flag.Parse()

	mux := http.NewServeMux()
	eng, err := newEngineIOApp()
	if err != nil {
		log.Fatal(err)
	}
	mux.Handle("/engine.io/", eng)

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = eng.Shutdown(sctx)
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("socketio-echo listening on http://%s (Engine.IO at /engine.io/)", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
