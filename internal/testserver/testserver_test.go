package testserver

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRedisKillRestart(t *testing.T) {
	t.Parallel()
	r := StartRedis(t)
	if _, err := command(r.Addr(), "PING"); err != nil {
		t.Fatal(err)
	}
	r.Kill()
	if _, err := command(r.Addr(), "PING"); err == nil {
		t.Fatal("PING succeeded after Kill")
	}
	r.Restart()
	if got, err := command(r.Addr(), "PING"); err != nil || got != "PONG" {
		t.Fatalf("PING after Restart = %q, %v", got, err)
	}
}

func TestRedisCluster(t *testing.T) {
	t.Parallel()
	c := StartRedisCluster(t)
	if len(c.Addrs()) != 3 {
		t.Fatalf("got %d nodes", len(c.Addrs()))
	}
	for _, a := range c.Addrs() {
		if _, err := command(a, "CLUSTER", "INFO"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNATSShutdownRestart(t *testing.T) {
	t.Parallel()
	n := StartNATS(t)
	if err := natsGreets(n.Addr()); err != nil {
		t.Fatal(err)
	}
	n.Shutdown()
	// A refused dial is not required: once the port is free, another
	// test process may listen on it. Nothing there may speak NATS.
	if natsGreets(n.Addr()) == nil {
		t.Fatal("a NATS server still answers after Shutdown")
	}
	n.Restart()
	if err := natsGreets(n.Addr()); err != nil {
		t.Fatal(err)
	}
}

// natsGreets returns nil when a NATS server answers at addr: it sends
// INFO as soon as a client connects.
func natsGreets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != "INFO " {
		return fmt.Errorf("%s greets with %q, not INFO", addr, b)
	}
	return nil
}
