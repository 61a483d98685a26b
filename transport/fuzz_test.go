package transport

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"unicode/utf8"
)

// FuzzReadFrames feeds arbitrary bytes to Read as the client side of a
// connection. Bit 0 of flags negotiates permessage-deflate, bit 1 client
// context takeover. Read must never panic, and every message it returns
// must respect the type, UTF-8 and size rules.
func FuzzReadFrames(f *testing.F) {
	f.Add(byte(0), mframe(true, opText, []byte("hello")))
	f.Add(byte(1), frame(true, rsv1Bit, opText, deflateBytes(f, []byte("hello hello hello"), 1), true))
	f.Fuzz(func(t *testing.T, flags byte, data []byte) {
		const limit = 4096
		var neg negotiated
		if flags&1 != 0 {
			neg.deflate = deflateOn
			if flags&3 == 3 {
				neg.deflate |= deflateClientContext
			}
		}
		opts := Options{ReadLimit: limit, PingInterval: -1}.withDefaults()
		srv, cli := net.Pipe()
		c := newConn(srv, nil, &opts, neg)
		c.start()

		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _ = cli.Write(data)
			// All input consumed: closing makes a waiting Read see EOF.
			_ = cli.Close()
		}()
		go func() {
			defer wg.Done()
			_, _ = io.Copy(io.Discard, cli) // pongs and close frames
		}()

		for range 1000 {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				break
			}
			if typ != Text && typ != Binary {
				t.Errorf("message type %d", typ)
			}
			if typ == Text && !utf8.Valid(msg) {
				t.Error("invalid UTF-8 in a text message")
			}
			if len(msg) > limit {
				t.Errorf("message of %d bytes over the %d limit", len(msg), limit)
			}
		}
		c.Terminate(nil)
		<-c.Done()
		_ = cli.Close()
		wg.Wait()
	})
}
