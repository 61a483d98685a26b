package nats

import (
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// Config configures a Broker.
type Config struct {
	// URL of the NATS server(s), comma-separated. Default nats.DefaultURL.
	URL string
	// Prefix is the first token of every subject. Default "herald".
	Prefix string
	// Name of the connection as the server shows it. Default "herald".
	Name string
	// PublishBufferBytes is how many bytes of publications nats.go keeps
	// while reconnecting and sends, in order and after resubscribing, once
	// the connection is back. Zero makes Publish fail fast with
	// broker.ErrUnavailable while disconnected; a full buffer fails the same
	// way.
	PublishBufferBytes int
	// ReconnectWait is the pause between reconnect attempts. Default 250ms.
	ReconnectWait time.Duration
	// Options are extra nats.go options (credentials, TLS, ...), applied
	// after the broker's own.
	Options []nats.Option
	// Logger receives connection state changes and asynchronous errors
	// (such as a slow consumer). Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.URL == "" {
		out.URL = nats.DefaultURL
	}
	if out.Prefix == "" {
		out.Prefix = "herald"
	}
	if out.Name == "" {
		out.Name = "herald"
	}
	if out.ReconnectWait <= 0 {
		out.ReconnectWait = 250 * time.Millisecond
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}
