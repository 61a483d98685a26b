package testserver

import (
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an embedded nats-server owned by a test. Its port stays the same
// across Shutdown and Restart.
type NATS struct {
	t    testing.TB
	opts server.Options

	mu  sync.Mutex
	srv *server.Server
}

// StartNATS starts an embedded nats-server, with JetStream (file storage
// in a directory of the test's), on a free loopback port and shuts it
// down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      freePort(t),
		NoLog:     true,
		NoSigs:    true,
		JetStream: true,
		StoreDir:  t.TempDir(), // kept across Restart, as a server's disk is
	}}
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Shutdown)
	return n
}

func (n *NATS) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		return fmt.Errorf("testserver: nats on port %d already running", n.opts.Port)
	}
	opts := n.opts // the server keeps and mutates its options
	srv, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("testserver: nats: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(startTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("testserver: nats on port %d not ready", n.opts.Port)
	}
	n.srv = srv
	return nil
}

// Shutdown stops the server, closing every client connection, and waits
// for it. Shutting down a stopped server does nothing.
func (n *NATS) Shutdown() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Restart starts the server again on the same port, shutting it down first
// if it is running.
func (n *NATS) Restart() {
	n.t.Helper()
	n.Shutdown()
	if err := waitFor(startTimeout, n.start); err != nil {
		n.t.Fatal(err)
	}
}

// Addr returns host:port.
func (n *NATS) Addr() string { return hostPort(n.opts.Port) }

// URL returns nats://host:port.
func (n *NATS) URL() string { return "nats://" + n.Addr() }
