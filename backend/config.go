package backend

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldrt/herald/internal/id"
)

// Hook names: the path each is posted to under Config.URL.
const (
	HookConnect = "connect"
	HookJoin    = "join"
	HookPublish = "publish"
	HookEmit    = "emit"
	HookEvents  = "events"
)

// AllHooks lists the hooks in the order the docs present them.
var AllHooks = []string{HookConnect, HookJoin, HookPublish, HookEmit, HookEvents}

// Defaults for zero Config fields.
const (
	DefaultTimeout          = 2 * time.Second
	DefaultMaxConcurrent    = 64
	DefaultRetries          = 1
	DefaultBreakerFailures  = 5
	DefaultBreakerCooldown  = 5 * time.Second
	DefaultEventsBatch      = 100
	DefaultEventsQueue      = 100000
	DefaultEventsQueueBytes = 64 << 20
	DefaultEventsMaxAge     = time.Hour
	DefaultLeaseTTL         = 10 * time.Second
	DefaultTokenCookie      = "token"
)

// Config configures a Proxy. URL and Hooks are required; every other
// zero field gets the default it documents.
type Config struct {
	// URL is the backend's base URL; each hook is POSTed to URL/<hook>.
	URL string
	// Hooks lists the hooks sent to the backend: connect, join, publish,
	// emit, events.
	Hooks []string
	// Secret signs every request (X-Herald-Signature); empty: unsigned,
	// which New allows but a backend on a shared network should refuse.
	Secret []byte
	// Timeout bounds one hook call, retries included. Default 2s.
	Timeout time.Duration
	// HookTimeouts overrides Timeout per hook name.
	HookTimeouts map[string]time.Duration
	// MaxConcurrent bounds the calls in flight on this node; a call that
	// finds no slot within its timeout fails with backend_timeout.
	// Default 64.
	MaxConcurrent int
	// Retries is how many times connect and join (questions, safe to ask
	// twice) are retried after a failure that left no answer, within
	// their timeout; publish and emit are retried only when the request
	// could not be sent at all. Default 1; negative: never.
	Retries int
	// BreakerFailures consecutive failures open the circuit breaker:
	// calls then fail at once with backend_unavailable for
	// BreakerCooldown, after which one call probes the backend and closes
	// it on success. Defaults 5 and 5s.
	BreakerFailures int
	BreakerCooldown time.Duration
	// TokenCookie and NoQueryToken say where the connect hook finds the
	// client's token (as auth/jwt does): the cookie (default "token"),
	// "Authorization: Bearer", a "bearer.<token>" subprotocol, the
	// "token" query parameter unless NoQueryToken.
	TokenCookie  string
	NoQueryToken bool

	// Queue holds the events hook's webhooks until the backend took them.
	// Default: in memory (lost with the process); use
	// backend/redisqueue with a Redis engine.
	Queue Queue
	// EventsBatch is the most events posted in one request. Default 100.
	EventsBatch int
	// EventsQueue bounds the memory queue (events); over it new events
	// are given up (counted). Default 100000.
	EventsQueue int
	// EventsQueueBytes bounds the memory queue in bytes (the events'
	// JSON, which carries the connection's Data from the connect hook):
	// over it new events are given up (counted, reason queue_full).
	// A Queue set below has its own bound (backend/redisqueue:
	// Config.MaxBytes). Default 64 MiB.
	EventsQueueBytes int64
	// EventsMaxAge is how long a batch is retried (with backoff up to
	// 10s) before it is given up (counted and logged). Default 1h.
	EventsMaxAge time.Duration
	// NodeName names this node in events (Event.Node). Default: random.
	NodeName string
	// LeaseTTL is how often the queue's Maintain runs: every quarter of
	// it. Default 10s; set it to the queue's lease.
	LeaseTTL time.Duration

	// H2C sends requests to an http:// URL over HTTP/2 without TLS (h2c
	// with prior knowledge: the backend must speak it); default HTTP/1.1.
	// https:// URLs negotiate HTTP/2 or HTTP/1.1 either way.
	H2C bool
	// Client sends the requests. Default: keep-alive connections, as many
	// idle as MaxConcurrent, and H2C.
	Client *http.Client
	// Registerer receives the metrics (herald_backend_*). Default: none.
	Registerer prometheus.Registerer
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// ErrConfig wraps every configuration error.
var ErrConfig = errors.New("backend: invalid config")

func (c *Config) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = DefaultBreakerFailures
	}
	if c.BreakerCooldown == 0 {
		c.BreakerCooldown = DefaultBreakerCooldown
	}
	if c.TokenCookie == "" {
		c.TokenCookie = DefaultTokenCookie
	}
	if c.EventsBatch == 0 {
		c.EventsBatch = DefaultEventsBatch
	}
	if c.EventsQueue == 0 {
		c.EventsQueue = DefaultEventsQueue
	}
	if c.EventsQueueBytes == 0 {
		c.EventsQueueBytes = DefaultEventsQueueBytes
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = DefaultEventsMaxAge
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.NodeName == "" {
		c.NodeName = "node-" + id.New(5)
	}
	if c.Client == nil {
		c.Client = defaultClient(c.MaxConcurrent, c.H2C)
	}
}

func (c *Config) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(c.URL)
	if c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return bad("URL", "must be an http:// or https:// URL (got %q)", c.URL)
	}
	if len(c.Hooks) == 0 {
		return bad("Hooks", "name at least one of %s", strings.Join(AllHooks, ", "))
	}
	for _, h := range c.Hooks {
		if !known(h) {
			return bad("Hooks", "%q is not one of %s", h, strings.Join(AllHooks, ", "))
		}
	}
	for h, d := range c.HookTimeouts {
		if !known(h) || d <= 0 {
			return bad("HookTimeouts", "%q: want a known hook and a positive duration (got %s)", h, d)
		}
	}
	switch {
	case c.Timeout < 0:
		return bad("Timeout", "must be positive (got %s)", c.Timeout)
	case c.MaxConcurrent < 0:
		return bad("MaxConcurrent", "must be positive (got %d)", c.MaxConcurrent)
	case c.BreakerFailures < 0 || c.BreakerCooldown < 0:
		return bad("BreakerFailures/BreakerCooldown", "must be positive")
	case c.EventsBatch < 0 || c.EventsQueue < 0 || c.EventsQueueBytes < 0 || c.EventsMaxAge < 0 || c.LeaseTTL < 0:
		return bad("EventsBatch/EventsQueue/EventsQueueBytes/EventsMaxAge/LeaseTTL", "must be positive")
	}
	return nil
}

func known(h string) bool {
	for _, k := range AllHooks {
		if h == k {
			return true
		}
	}
	return false
}

// ParseHooks splits a comma list of hook names, rejecting unknown ones.
func ParseHooks(list string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(list, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if !known(h) {
			return nil, fmt.Errorf("%q is not one of %s", h, strings.Join(AllHooks, ", "))
		}
		out = append(out, h)
	}
	return out, nil
}

// defaultClient keeps connections alive (as many idle as calls may be in
// flight) and, with h2c, speaks HTTP/2 without TLS to http:// URLs.
func defaultClient(maxConns int, h2c bool) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxConns
	t.MaxIdleConnsPerHost = maxConns
	t.IdleConnTimeout = 90 * time.Second
	if h2c {
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		p.SetHTTP2(true)
		t.Protocols = p
	}
	return &http.Client{Transport: t}
}
