// Command demoserver runs Herald with the demo page on one port, for the
// browser test (clients/js/test/browser.test.js) until `herald serve --demo`
// exists:
//
//	go run ./demo/internal/demoserver --addr 127.0.0.1:8080 --api-key KEY
//	open http://127.0.0.1:8080/demo/
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

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/demo"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demoserver:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	apiKey := flag.String("api-key", "", "API key for /api/v1/publish (empty: one is generated and logged)")
	heartbeat := flag.Duration("heartbeat-interval", herald.DefaultHeartbeatInterval, "interval between pings, and the heartbeatMs clients are told")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg := herald.Config{Logger: logger, HeartbeatInterval: *heartbeat}
	if *apiKey != "" {
		cfg.APIKeys = []string{*apiKey}
	}
	srv, err := herald.New(cfg)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(demo.Prefix, demo.Handler())
	mux.Handle("/", srv)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return err
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "demo", "http://"+ln.Addr().String()+demo.Prefix) // addr: the port bound, with --addr on port 0

	select {
	case err := <-serveErr:
		_ = srv.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	stop()
	drainCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(drainCtx)
	if herr := hs.Shutdown(drainCtx); herr != nil && !errors.Is(herr, http.ErrServerClosed) {
		err = errors.Join(err, herr)
	}
	return err
}
