package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/heraldrt/herald"
)

// serveConfig is what `herald serve` reads from flags and environment.
type serveConfig struct {
	addr      string
	logFormat string
	logLevel  string
	server    herald.Config
}

func parseServe(args []string, stderr io.Writer) (*serveConfig, error) {
	f := newEnvFlags("serve", stderr)
	sc := &serveConfig{}
	cfg := &sc.server
	addr := f.String("addr", "127.0.0.1:8080", "listen address (host:port)")
	logFormat := f.String("log-format", "json", "log format: json or text")
	logLevel := f.String("log-level", "info", "log level: debug, info, warn or error")
	path := f.String("path", herald.DefaultPath, "WebSocket endpoint path")
	apiKey := f.String("api-key", "", "server API key(s) for /api/v1, comma-separated for rotation; empty: one is generated at start and logged once")
	hb := f.Duration("heartbeat-interval", herald.DefaultHeartbeatInterval, "interval between pings (negative disables)")
	hbTimeout := f.Duration("heartbeat-timeout", herald.DefaultHeartbeatTimeout, "time a client has to answer a ping before it is terminated")
	noCompression := f.Bool("no-compression", false, "disable permessage-deflate")
	threshold := f.Int("compression-threshold", herald.DefaultCompressionThreshold, "compress only messages of at least this many bytes")
	level := f.Int("compression-level", herald.DefaultCompressionLevel, "deflate level 1 (fastest) to 9 (smallest)")
	takeover := f.Bool("compression-context-takeover", false, "keep the compression window across messages (more memory per connection)")
	readLimit := f.Int("read-limit", herald.DefaultReadLimit, "largest client message in bytes, after decompression (over it: close 1009)")
	queue := f.Int("send-queue", herald.DefaultSendQueueSize, "per-connection send queue, in messages (full: disconnect with 4008)")
	writeTimeout := f.Duration("write-timeout", herald.DefaultWriteTimeout, "timeout of one socket write")
	maxRooms := f.Int("max-rooms", herald.DefaultMaxRoomsPerConn, "rooms one connection may join")
	drain := f.Duration("drain-timeout", herald.DefaultDrainTimeout, "on SIGTERM, how long clients get to leave before the rest are terminated")
	retry := f.Duration("drain-retry-after", herald.DefaultDrainRetryAfter, "typical retryAfterMs told to clients on drain (jittered 0.5x-1.5x)")
	ackTimeout := f.Duration("ack-timeout", herald.DefaultAckTimeout, "redeliver a message published with ack if not acknowledged within this time")
	ackRetries := f.Int("ack-retries", herald.DefaultAckRetries, "redeliveries of an unacknowledged message before it is given up")
	sessionTTL := f.Duration("session-ttl", herald.DefaultSessionTTL, "how long a session outlives its connection's last sign of life")
	nodeID := f.String("node-id", "", "name of this node in logs and sessions (default: random)")
	if err := f.parse(args); err != nil {
		return nil, err
	}
	sc.addr, sc.logFormat, sc.logLevel = *addr, *logFormat, *logLevel
	cfg.Path = *path
	if *apiKey != "" {
		for _, k := range strings.Split(*apiKey, ",") {
			if k = strings.TrimSpace(k); k != "" {
				cfg.APIKeys = append(cfg.APIKeys, k)
			}
		}
	}
	cfg.HeartbeatInterval, cfg.HeartbeatTimeout = *hb, *hbTimeout
	cfg.DisableCompression, cfg.CompressionThreshold, cfg.CompressionLevel = *noCompression, *threshold, *level
	cfg.CompressionContextTakeover = *takeover
	cfg.ReadLimit, cfg.SendQueueSize, cfg.WriteTimeout = int64(*readLimit), *queue, *writeTimeout
	cfg.MaxRoomsPerConn = *maxRooms
	cfg.DrainTimeout, cfg.DrainRetryAfter = *drain, *retry
	cfg.AckTimeout, cfg.AckRetries = *ackTimeout, *ackRetries
	cfg.SessionTTL, cfg.NodeID = *sessionTTL, *nodeID
	return sc, nil
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not json or text", format)
}

func serve(args []string, stdout, stderr io.Writer) int {
	sc, err := parseServe(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald serve: %v\n", err)
		return 2
	}
	logger, err := newLogger(sc.logFormat, sc.logLevel, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "herald serve: %v\n", err)
		return 2
	}
	sc.server.Logger = logger

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	srv, err := herald.New(sc.server)
	if err != nil {
		fmt.Fprintf(stderr, "herald serve: %v\n", err)
		return 2
	}
	ln, err := net.Listen("tcp", sc.addr)
	if err != nil {
		fmt.Fprintf(stderr, "herald serve: listen: %v\n", err)
		_ = srv.Shutdown(context.Background())
		return 1
	}
	// The binary mounts Herald exactly as a library user would: on a mux,
	// beside other routes.
	mux := http.NewServeMux()
	mux.Handle("/", srv)
	hs := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "ws_path", sc.server.Path, "version", version)

	select {
	case err := <-serveErr:
		logger.Error("http server failed", "err", err)
		_ = srv.Shutdown(context.Background())
		return 1
	case <-ctx.Done():
	}
	stop() // a second signal kills the process the default way
	logger.Info("signal received: draining")
	drainCtx, cancel := context.WithTimeout(context.Background(), sc.server.DrainTimeoutOrDefault()+5*time.Second)
	defer cancel()
	code := 0
	if err := srv.Shutdown(drainCtx); err != nil {
		logger.Error("drain finished with errors", "err", err)
		code = 1
	}
	httpCtx, cancelHTTP := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelHTTP()
	if err := hs.Shutdown(httpCtx); err != nil {
		logger.Error("http shutdown", "err", err)
	}
	logger.Info("exit", "code", code)
	_ = os.Stderr.Sync()
	return code
}
