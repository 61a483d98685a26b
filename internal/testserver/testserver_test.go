package testserver

import (
	"net"
	"testing"

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
	dial := func() error {
		c, err := net.Dial("tcp", n.Addr())
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatal(err)
	}
	n.Shutdown()
	if dial() == nil {
		t.Fatal("dial succeeded after Shutdown")
	}
	n.Restart()
	if err := dial(); err != nil {
		t.Fatal(err)
	}
}
