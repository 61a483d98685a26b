package testserver

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

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
// in a directory of the test's), on a loopback port the server picks
// itself (so no other process can take it first), and shuts it down when
// the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{t: t, opts: server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
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

// fatalLog keeps the first fatal error a server logs: an embedded server
// that cannot listen says so only there, and would otherwise be waited
// for until the start timeout.
type fatalLog struct {
	once sync.Once
	err  chan string
}

func (l *fatalLog) Fatalf(format string, v ...any) {
	l.once.Do(func() { l.err <- fmt.Sprintf(format, v...) })
}
func (*fatalLog) Noticef(string, ...any) {}
func (*fatalLog) Warnf(string, ...any)   {}
func (*fatalLog) Errorf(string, ...any)  {}
func (*fatalLog) Debugf(string, ...any)  {}
func (*fatalLog) Tracef(string, ...any)  {}

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
	fatal := &fatalLog{err: make(chan string, 1)}
	srv.SetLogger(fatal, false, false)
	go srv.Start()
	stop := func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	for deadline := time.Now().Add(startTimeout); !srv.ReadyForConnections(25 * time.Millisecond); {
		select {
		case msg := <-fatal.err:
			stop()
			if strings.Contains(msg, "address already in use") {
				return fmt.Errorf("%w: nats on port %d: %s", errPortTaken, n.opts.Port, msg)
			}
			return fmt.Errorf("testserver: nats on port %d: %s", n.opts.Port, msg)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("testserver: nats on port %d not ready", n.opts.Port)
		}
	}
	if n.opts.Port == server.RANDOM_PORT {
		n.opts.Port = srv.Addr().(*net.TCPAddr).Port // Restart binds it again
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
