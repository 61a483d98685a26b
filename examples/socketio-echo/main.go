// Command socketio-echo is the small app the published Socket.IO and
// Engine.IO protocol test suites (socketio/socket.io-protocol and
// socketio/engine.io-protocol, test-suite/) are run against: Socket.IO at
// /socket.io/ served by herald.Server (Config.SocketIO, the same core as
// protocol v1, whose /ws, /healthz and /metrics it also serves) and a bare
// Engine.IO echo at /engine.io/ (transport/engineio), with the settings
// those suites expect (pingInterval 300 ms, pingTimeout 200 ms, maxPayload
// 1,000,000, connectTimeout 1 s).
//
// Behaviour, as the suites' reference server:
//   - namespaces "/" and "/custom"; a CONNECT to any other is refused with
//     {"message":"Invalid namespace"};
//   - on connect to either, emit "auth" with the CONNECT's auth object;
//   - on "/", echo "message" back as "message-back" with all its arguments
//     (binary attachments included), and answer "message-with-ack" by
//     acking its arguments;
//   - on "/", "request-ack" (not in the suites; used by the socket.io-client
//     test) emits "ack-request" with its arguments and an ack, and sends
//     the client's answer back as "ack-response";
//   - the Engine.IO app at /engine.io/ echoes every message.
//
// Usage: socketio-echo [-addr localhost:3000] [-ping-timeout 200ms]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "localhost:3000", "address to listen on (the suites expect localhost:3000)")
	pingTimeout := flag.Duration("ping-timeout", suitePingTimeout, "Socket.IO pingTimeout (the suites expect 200ms; a client on a loaded machine may need more)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *pingTimeout, log); err != nil {
		fmt.Fprintln(os.Stderr, "socketio-echo:", err)
		os.Exit(1)
	}
}

func run(addr string, pingTimeout time.Duration, log *slog.Logger) error {
	tm := suiteTiming
	tm.pingTimeout = pingTimeout
	app, err := newApp(log, tm)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	// Herald's Serve reads the Socket.IO WebSocket handshakes itself
	// (cheaper connects) and hands every other request to srv.
	go func() { errc <- app.herald.Serve(ln, srv) }()
	log.Info("socketio-echo listening", "addr", ln.Addr().String()) // the port bound, with -addr on port 0
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = errors.Join(app.Shutdown(shutdownCtx), srv.Shutdown(shutdownCtx))
	if errors.Is(<-errc, http.ErrServerClosed) {
		return err
	}
	return err
}
