package suite

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestStartListeningPortTaken: the first port handed out is taken,
// before the server binds it, by another process's listener that
// accepts connections. The server (a real redis-server) fails to bind
// it and is started on another port; the taken port, where something
// answers, is never taken for the server's.
func TestStartListeningPortTaken(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not found: apt-get install -y redis-server")
	}
	taker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taker.Close()
	go func() {
		for {
			c, err := taker.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	taken := taker.Addr().(*net.TCPAddr).Port
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	handed := 0
	r := &runner{opts: Options{OutDir: out}, log: io.Discard, freePort: func() (int, error) {
		handed++
		if handed == 1 {
			return taken, nil
		}
		return freePort()
	}}
	p, port, err := r.startListening(context.Background(), "redis", bin, func(port int) ([]string, []string, error) {
		return nil, []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.stop(3 * time.Second)
	if port == taken || handed < 2 {
		t.Fatalf("redis taken to listen on %d, the other listener's port (%d ports handed out)", port, handed)
	}
	c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 7)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "+PONG\r\n" {
		t.Fatalf("PING on %d: %q %v", port, b, err)
	}
}
