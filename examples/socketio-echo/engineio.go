package main

import (
	"net/http"

	"github.com/heraldrt/herald/transport/engineio"
)

// newEngineIOApp is the Engine.IO app of the engine.io-protocol test
// suite: every message, text or binary, is sent back to its sender.
func newEngineIOApp() (*engineio.Server, error) { return engineio.New(engineIOConfig()) }

// engineIOConfig is the app's configuration, with the settings the suite
// expects.
func engineIOConfig() engineio.Config {
	return engineio.Config{
		PingInterval: pingInterval,
		PingTimeout:  suitePingTimeout,
		MaxPayload:   1_000_000,
		CORS:         engineio.CORS{Origins: []string{"*"}},
		OnConnection: func(*engineio.Socket, *http.Request) engineio.Handler { return echo{} },
	}
}

// echo sends each message back as it came.
type echo struct{}

func (echo) OnMessage(s *engineio.Socket, data []byte, binary bool) {
	if binary {
		_ = s.SendBinary(data)
	} else {
		_ = s.SendText(data)
	}
}

func (echo) OnClose(*engineio.Socket, error) {}
