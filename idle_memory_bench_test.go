//go:build linux

package herald_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/heraldrt/herald"
)

// BenchmarkIdleConnMemory is the idle scenario of herald bench in one
// process: b.N connections, each connected through Server.Serve and
// joined to one of 10 rooms, then left idle; live-B/conn is the live
// heap they add (after two collections), garbage excluded, which herald
// bench's heap figure includes. The clients are bare sockets, so the
// heap is the server's. Run it with -benchtime 4000x (b.N sockets are
// opened at once). With HERALD_IDLE_HEAP_PROFILE set to a file name it
// writes the heap profile there while the connections are open.
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, kind := range []string{"v1", "socketio", "socketio-net-http"} {
		b.Run(kind, func(b *testing.B) { benchIdleConns(b, kind != "v1", kind != "socketio-net-http") })
	}
}

func benchIdleConns(b *testing.B, sio, fast bool) {
	cfg := herald.Config{SocketIO: herald.SocketIOConfig{Enabled: true},
		Logger: slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	srv := startRawServer(b, cfg, fast)
	rc := newRawClient(b, srv.addr)
	target := "/ws"
	if sio {
		target = "/socket.io/?EIO=4&transport=websocket"
	}
	req := []byte("GET " + target + " HTTP/1.1\r\nHost: " + srv.addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	var joins [10][]byte
	for i := range joins {
		msg := fmt.Sprintf(`{"type":"join","id":1,"room":"bench-%d"}`, i)
		if sio {
			msg = fmt.Sprintf(`421["herald:join",{"room":"bench-%d"}]`, i)
		}
		joins[i] = maskedFrame(1, []byte(msg))
	}
	connectFrame := maskedFrame(1, []byte("40"))
	open := func(i int) (int, error) {
		fd, err := rc.socket()
		if err != nil {
			return -1, err
		}
		steps := []func() error{
			func() error { return syscall.Connect(fd, rc.sa) },
			func() error { _, err := syscall.Write(fd, req); return err },
			func() error { return rc.readUntil(fd, welcomeRead) },
		}
		if sio {
			steps = append(steps,
				func() error { _, err := syscall.Write(fd, connectFrame); return err },
				func() error { return rc.readUntil(fd, frameRead) })
		}
		steps = append(steps,
			func() error { _, err := syscall.Write(fd, joins[i%len(joins)]); return err },
			func() error { return rc.readUntil(fd, frameRead) })
		for _, s := range steps {
			if err := s(); err != nil {
				syscall.Close(fd)
				return -1, err
			}
		}
		return fd, nil
	}
	fd, err := open(0) // warm up: the rooms exist from now on
	if err != nil {
		b.Fatal(err)
	}
	fds := make([]int, 0, b.N+1)
	fds = append(fds, fd)
	defer func() {
		// Closed all at once: the server's cleanup of thousands of
		// sessions can outlast the test server's Shutdown deadline on a
		// loaded machine, so it is waited for here, with a longer one.
		for _, fd := range fds {
			syscall.Close(fd)
		}
		waitFor(b, time.Minute, "connections closed", func() bool { return srv.srv.Connections() == 0 })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.srv.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
	}()
	live := func() runtime.MemStats {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms
	}
	before := live()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fd, err := open(i + 1)
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		fds = append(fds, fd)
	}
	b.StopTimer()
	time.Sleep(100 * time.Millisecond) // what runs after each connect's last frame
	after := live()
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(b.N), "live-B/conn")
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/float64(b.N), "inuse-B/conn")
	if path := os.Getenv("HERALD_IDLE_HEAP_PROFILE"); path != "" {
		// For a look at what the connections hold (go test
		// -memprofilerate 1): the heap profile while they are open.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
	}
	if n := srv.srv.Connections(); n != b.N+1 {
		b.Fatalf("%d connections, want %d", n, b.N+1)
	}
}
