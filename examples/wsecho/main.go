// Command wsecho is a WebSocket echo server on Herald's own transport
// (package transport), for the Autobahn|Testsuite fuzzingclient
// (crossbario/autobahn-testsuite) and other conformance clients: every
// message comes back with its type, text or binary.
//
// It upgrades with a transport.Upgrader set up as `herald serve` sets up
// its own (permessage-deflate on, messages of 1 KiB or more compressed at
// level 1, no context takeover) and reads as Herald does, with TryRead
// and NotifyReadable (-read=blocking: a goroutine per connection in
// Read). What it changes for the suite: messages up to 64 MiB are read
// (the suite sends 16 MiB) and no heartbeat pings are sent (the suite
// counts every frame it did not ask for as a failure).
//
// Usage: wsecho [-addr localhost:9001] [-read=notify|blocking]
//
// Running the suite where Docker is available, from this directory (see
// docs/protocol.md, "WebSocket conformance"):
//
//	go run . &
//	docker run -it --rm -v ${PWD}/autobahn:/config -v ${PWD}/reports:/reports \
//	    --network host crossbario/autobahn-testsuite \
//	    wstest -m fuzzingclient -s /config/fuzzingclient.json
//
// The report is reports/index.html. TestAutobahnCases checks the same
// cases without Docker or Python.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "localhost:9001", "address to listen on (autobahn/fuzzingclient.json expects localhost:9001)")
	read := flag.String("read", "notify", `how connections are read: "notify" (TryRead and NotifyReadable, as Herald) or "blocking" (Read on a goroutine each)`)
	flag.Parse()
	if *read != "notify" && *read != "blocking" {
		fmt.Fprintln(os.Stderr, "wsecho: -read must be notify or blocking")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *read == "blocking", log); err != nil {
		fmt.Fprintln(os.Stderr, "wsecho:", err)
		os.Exit(1)
	}
}

func run(addr string, blocking bool, log *slog.Logger) error {
	echo := newEchoServer(blocking)
	srv := &http.Server{Addr: addr, Handler: echo, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("wsecho listening", "addr", addr, "blocking", blocking)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdown)
	if e := echo.Shutdown(shutdown); err == nil {
		err = e
	}
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}
