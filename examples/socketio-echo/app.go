package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/adapter/socketio"
	"github.com/heraldrt/herald/transport/engineio"
)

// The settings the protocol test suites expect.
const (
	pingInterval     = 300 * time.Millisecond
	suitePingTimeout = 200 * time.Millisecond
	maxPayload       = 1_000_000
	connectTimeout   = time.Second
	ackTimeout       = 5 * time.Second
	// authDelay spaces the "auth" event from the CONNECT reply. The suite
	// reads them with two successive one-shot listeners on a ws 8.5
	// WebSocket, which emits every frame of one TCP read synchronously:
	// two frames arriving together, as Herald's coalesced writes send
	// them, would reach only the first listener. The reference server
	// sends them in two writes, one event-loop turn apart.
	authDelay = 25 * time.Millisecond
)

// app serves Socket.IO at /socket.io/ through herald.Server (its Socket.IO
// endpoint, the same core as protocol v1), and the Engine.IO echo at
// /engine.io/ next to it on one mux.
type app struct {
	mux      *http.ServeMux
	herald   *herald.Server
	engineIO *engineio.Server
}

// timing is the Socket.IO heartbeat and connect timeout the app runs
// with.
type timing struct {
	pingInterval, pingTimeout, connectTimeout time.Duration
}

// suiteTiming is what the suites expect.
var suiteTiming = timing{pingInterval, suitePingTimeout, connectTimeout}

// newApp returns the example with the suites' settings, but for its
// timing: main's -ping-timeout, and the tests', which give a loaded
// machine more room (see suiteRunTiming and clientPingTimeout).
func newApp(log *slog.Logger, tm timing) (*app, error) {
	a := &app{mux: http.NewServeMux()}
	var err error
	a.herald, err = herald.New(herald.Config{
		Logger: log,
		SocketIO: herald.SocketIOConfig{
			Enabled:        true,
			Namespaces:     []string{"/custom"},
			PingInterval:   tm.pingInterval,
			PingTimeout:    tm.pingTimeout,
			MaxPayload:     maxPayload,
			ConnectTimeout: tm.connectTimeout,
			CORSOrigins:    []string{"*"},
			OnConnect:      onConnect,
			OnEvent:        onEvent,
		},
	})
	if err != nil {
		return nil, err
	}
	if a.engineIO, err = newEngineIOApp(); err != nil {
		return nil, err
	}
	a.mux.Handle("/engine.io/", a.engineIO)
	a.mux.Handle("/", a.herald) // /socket.io/, and Herald's /ws, /healthz, /readyz, /metrics
	return a, nil
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Shutdown closes every session of both endpoints.
func (a *app) Shutdown(ctx context.Context) error {
	return errors.Join(a.herald.Shutdown(ctx), a.engineIO.Shutdown(ctx))
}

// onConnect accepts "/" and "/custom" and emits "auth" with the CONNECT's
// auth object ({} when it had none), authDelay after the CONNECT reply.
func onConnect(_ context.Context, _ *herald.ConnInfo, s *socketio.Socket) error {
	auth := s.Auth()
	if auth == nil {
		auth = json.RawMessage(`{}`)
	}
	time.AfterFunc(authDelay, func() {
		_ = s.Emit("auth", socketio.Args{JSON: []json.RawMessage{auth}})
	})
	return nil
}

// onEvent echoes the events of "/".
func onEvent(_ context.Context, _ *herald.ConnInfo, s *socketio.Socket, event string, args socketio.Args, ack socketio.AckFunc) {
	if s.Namespace() != "/" {
		return
	}
	switch event {
	case "message":
		_ = s.Emit("message-back", args)
	case "message-with-ack":
		if ack != nil {
			_ = ack(args)
		}
	case "request-ack":
		_ = s.EmitWithAck("ack-request", args, ackTimeout, func(answer socketio.Args, err error) {
			if err == nil {
				_ = s.Emit("ack-response", answer)
			}
		})
	}
}
