package client

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
)

// queueSize bounds the events waiting for the dispatch goroutine; when it
// is full the reader stops reading, and a server whose send queue then
// fills disconnects the Client as a slow consumer (4008). Their bytes are
// bounded too (queueBytes).
const queueSize = 1024

// Client is a connection to a Herald server that survives reconnects.
// Create it with Dial and stop it with Close.
//
// Locks: mu and hmu are never held together, nor while a handler runs or
// a channel operation blocks.
type Client struct {
	url  string
	opts options

	ctx    context.Context // cancelled when the Client stops: ends every wait
	cancel context.CancelFunc
	queue  chan item     // reader and supervisor → dispatch goroutine
	queued queueBytes    // the bytes of the frames in queue
	done   chan struct{} // closed once every goroutine has returned
	acks   acker
	nextID atomic.Uint64
	gen    atomic.Uint64 // connection generation
	// longMsgID: an event's msgId over protocol.MaxMsgIDLen was logged.
	longMsgID atomic.Bool

	mu          sync.Mutex
	cur         *conn         // the usable connection, nil while (re)connecting
	ready       chan struct{} // closed when cur is set
	rooms       map[string]struct{}
	positions   map[string]position    // of rooms that keep history
	pending     map[string]chan result // request id → its caller
	state       State
	sessionID   string
	resumeToken string
	resumed     bool
	userID      string
	err         error // why the Client stopped
	closeErr    error // the close handshake's error, returned by Close

	hmu      sync.RWMutex
	handlers map[string][]func(Event)
	any      []func(Event)
}

// result is a reply or error frame handed to the request waiting for it.
type result struct {
	data json.RawMessage
	err  error
}

// Dial connects to the Herald endpoint at url (ws:// or wss://, e.g.
// "ws://127.0.0.1:8080/ws") and returns once the server's welcome arrived.
// ctx bounds only this first connection: if it fails, Dial returns the
// error (a *HandshakeError when the server refused the upgrade) and no
// Client. Later connections are made in the background until Close.
func Dial(ctx context.Context, url string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{
		url:       url,
		opts:      o,
		queue:     make(chan item, queueSize),
		done:      make(chan struct{}),
		ready:     make(chan struct{}),
		rooms:     make(map[string]struct{}),
		positions: make(map[string]position),
		pending:   make(map[string]chan result),
		handlers:  make(map[string][]func(Event)),
		any:       slices.Clone(o.onEvent),
	}
	c.acks.init(o.ackMax)
	c.queued.max = o.queueBytes
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.dispatch()

	c.setState(Connecting)
	cn, err := c.connect(ctx)
	if err != nil {
		c.stop(err)
		c.setState(Closed)
		close(c.queue)
		<-c.done
		return nil, err
	}
	ready := c.ready
	go c.run(cn)
	select {
	case <-ready:
	case <-c.ctx.Done():
		// Lost before it was usable: run is already reconnecting or has
		// stopped; either way the Client is the caller's to Close.
	case <-ctx.Done():
	}
	return c, nil
}

// Close closes the connection cleanly (1000), stops reconnecting, and waits
// until every goroutine of the Client, handlers included, has returned. It
// must not be called from a handler. It returns the close handshake's
// error, if any; calling it again returns the same.
func (c *Client) Close() error {
	c.stop(ErrClosed)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// stop records why the Client stops (the first reason wins) and ends every
// wait.
func (c *Client) stop(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.cancel()
}

// Done is closed once the Client has stopped, by Close or because the
// server said not to reconnect, and every goroutine has returned.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the Client runs, ErrClosed after Close, the
// *CloseError with which the server ended it for good, or the
// *HandshakeError with which it refused a reconnect for good (400, 404, or
// 401/403: at once with a fixed token, after 3 in a row with a token
// provider).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// stopErr is what calls return once the Client stopped.
func (c *Client) stopErr() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// State returns the Client's current state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Resumed reports whether the latest connection resumed the previous
// session (the server restored its rooms) rather than starting a new one.
func (c *Client) Resumed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resumed
}

// SessionID returns the session id of the latest welcome.
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// UserID returns the user id the server gave this Client in the latest
// welcome; its own room is "user:" + UserID().
func (c *Client) UserID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userID
}

// On registers fn for events named event, in any room. Handlers run on the
// dispatch goroutine in registration order, after OnAny's. Register them
// before Join so no event is missed; an event to the user's own room may
// come before Dial returns (see WithEventHandler).
func (c *Client) On(event string, fn func(Event)) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.handlers[event] = append(c.handlers[event], fn)
}

// OnAny registers fn for every event. An event dispatched before it is
// registered is not given to it: for events to the user's own room, which
// may come as soon as the connection is up, see WithEventHandler.
func (c *Client) OnAny(fn func(Event)) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	c.any = append(c.any, fn)
}

// setState records s and queues it for the state handler.
func (c *Client) setState(s State) {
	c.mu.Lock()
	changed := c.state != s
	c.state = s
	c.mu.Unlock()
	if changed || s == Connecting {
		c.queue <- item{state: s, isState: true}
	}
}
