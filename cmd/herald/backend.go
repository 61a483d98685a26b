package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/heraldrt/herald"
	"github.com/heraldrt/herald/backend"
	"github.com/heraldrt/herald/internal/metrics"
)

// backendConfig is what `herald serve` reads about the application's
// backend (the proxy hooks and webhooks).
type backendConfig struct {
	url          string
	hooks        []string
	secret       string
	timeout      time.Duration
	hookTimeouts map[string]time.Duration
	maxCalls     int
	h2c          bool
	eventsQueue  int
	eventsBytes  int
}

// on reports whether any hook goes to the backend.
func (bc *backendConfig) on() bool { return bc.url != "" }

// has reports whether hook goes to the backend.
func (bc *backendConfig) has(hook string) bool {
	for _, h := range bc.hooks {
		if h == hook {
			return true
		}
	}
	return false
}

// validate checks the backend settings, naming each as the user gave it
// (flag, variable or config file key).
func (bc *backendConfig) validate(f *envFlags) error {
	switch {
	case bc.url == "" && len(bc.hooks) > 0:
		return fmt.Errorf("%s needs --backend-url", f.origin("backend-hooks"))
	case bc.url == "":
		return nil
	case len(bc.hooks) == 0:
		return fmt.Errorf("%s needs --backend-hooks (a comma list of connect, join, publish, emit, events)", f.origin("backend-url"))
	case len(bc.secret) < 32:
		return fmt.Errorf("%s: the secret has %d bytes; at least 32 are needed, since the backend verifies every request with it (e.g. openssl rand -hex 32)",
			f.origin("backend-secret"), len(bc.secret))
	case bc.timeout <= 0:
		return fmt.Errorf("%s: must be positive (got %s)", f.origin("backend-hook-timeout"), bc.timeout)
	case bc.maxCalls <= 0:
		return fmt.Errorf("%s: must be positive (got %d)", f.origin("backend-max-calls"), bc.maxCalls)
	case bc.eventsQueue <= 0:
		return fmt.Errorf("%s: must be positive (got %d)", f.origin("backend-events-queue"), bc.eventsQueue)
	case bc.eventsBytes <= 0:
		return fmt.Errorf("%s: must be positive (got %d)", f.origin("backend-events-queue-bytes"), bc.eventsBytes)
	}
	if u, err := url.Parse(bc.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an http:// or https:// URL", f.origin("backend-url"), bc.url)
	}
	return nil
}

// wire builds the proxy and installs its hooks in cfg, whose metrics
// registry it shares. The Redis queue for webhooks comes with a Redis
// engine (see engineConfig.eventsQueue).
func (bc *backendConfig) wire(cfg *herald.Config, q backend.Queue, node string, logger *slog.Logger) (*backend.Proxy, error) {
	if cfg.Registry == nil {
		cfg.Registry = metrics.NewRegistry()
	}
	p, err := backend.New(backend.Config{
		URL: bc.url, Hooks: bc.hooks, Secret: []byte(bc.secret), Timeout: bc.timeout, HookTimeouts: bc.hookTimeouts, MaxConcurrent: bc.maxCalls,
		H2C: bc.h2c, EventsQueue: bc.eventsQueue, EventsQueueBytes: int64(bc.eventsBytes), Queue: q, NodeName: node, LeaseTTL: cfg.LeaseTTL,
		Registerer: cfg.Registry, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	cfg.Hooks = p.Hooks()
	return p, nil
}

// closeProxy posts the webhooks of the drain for a few seconds at most.
func closeProxy(p *backend.Proxy, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		logger.Warn("backend events queue close", "err", err)
	}
}

// parseHookTimeouts reads HOOK=DURATION pairs, comma-separated.
func parseHookTimeouts(s string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, kv := range splitList(s) {
		name, v, ok := strings.Cut(kv, "=")
		name = strings.TrimSpace(name)
		if !ok {
			return nil, fmt.Errorf("%q is not HOOK=DURATION (e.g. connect=1s)", kv)
		}
		if _, err := backend.ParseHooks(name); err != nil || name == "" {
			return nil, fmt.Errorf("%q is not one of %s", name, strings.Join(backend.AllHooks, ", "))
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s: %q is not a positive duration with a unit (e.g. 1s)", name, v)
		}
		out[name] = d
	}
	return out, nil
}
