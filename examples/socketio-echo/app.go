package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/heraldrt/herald/adapter/socketio"
	"github.com/heraldrt/herald/transport/engineio"
)

// The settings the protocol test suites expect.
const (
	pingInterval   = 300 * time.Millisecond
	pingTimeout    = 200 * time.Millisecond
	maxPayload     = 1_000_000
	connectTimeout = time.Second
	ackTimeout     = 5 * time.Second
	// authDelay spaces the "auth" event from the CONNECT reply. The suite
	// reads them with two successive one-shot listeners on a ws 8.5
	// WebSocket, which emits every frame of one TCP read synchronously:
	// two frames arriving together, as Herald's coalesced writes send
	// them, would reach only the first listener. The reference server
	// sends them in two writes, one event-loop turn apart.
	authDelay = 25 * time.Millisecond
)

// app serves Socket.IO at /socket.io/ and an Engine.IO echo at /engine.io/.
type app struct {
	mux       *http.ServeMux
	socketIO  *engineio.Server
	engineIO  *engineio.Server
	namespace *socketio.Server
}

func newApp(log *slog.Logger) (*app, error) {
	a := &app{mux: http.NewServeMux()}
	var err error
	a.namespace, err = socketio.New(socketio.Config{
		Namespaces:     []string{"/custom"},
		ConnectTimeout: connectTimeout,
		OnConnect:      onConnect,
		OnEvent:        onEvent,
		OnProtocolError: func(_ context.Context, err error) {
			log.Debug("socket.io protocol error", "err", err)
		},
	})
	if err != nil {
		return nil, err
	}
	base := engineio.Config{
		PingInterval: pingInterval,
		PingTimeout:  pingTimeout,
		MaxPayload:   maxPayload,
		CORS:         engineio.CORS{Origins: []string{"*"}},
	}

	sioCfg := base
	sioCfg.OnConnection = func(es *engineio.Socket, r *http.Request) engineio.Handler {
		h, _ := a.namespace.ServeEngine(context.WithoutCancel(r.Context()), a.socketIO, es)
		return h
	}
	if a.socketIO, err = engineio.New(sioCfg); err != nil {
		return nil, err
	}

	if a.engineIO, err = newEngineIOApp(); err != nil {
		return nil, err
	}

	a.mux.Handle("/socket.io/", a.socketIO)
	a.mux.Handle("/engine.io/", a.engineIO)
	// For load balancers (deploy/nginx_socketio_test.go waits on it).
	a.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return a, nil
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Shutdown closes every session of both endpoints.
func (a *app) Shutdown(ctx context.Context) error {
	return errors.Join(a.socketIO.Shutdown(ctx), a.engineIO.Shutdown(ctx))
}

// onConnect accepts "/" and "/custom" and emits "auth" with the CONNECT's
// auth object ({} when it had none), authDelay after the CONNECT reply.
func onConnect(_ context.Context, s *socketio.Socket, _ *socketio.ConnectRequest) (socketio.ConnectResult, error) {
	auth := s.Auth()
	if auth == nil {
		auth = json.RawMessage(`{}`)
	}
	time.AfterFunc(authDelay, func() {
		_ = s.Emit("auth", socketio.Args{JSON: []json.RawMessage{auth}})
	})
	return socketio.ConnectResult{}, nil
}

// onEvent echoes the events of "/".
func onEvent(_ context.Context, s *socketio.Socket, event string, args socketio.Args, ack socketio.AckFunc) {
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
