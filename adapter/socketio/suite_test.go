package socketio

import (
	"testing"
	"time"
)

// The Socket.IO cases of the published test suite
// (socketio/socket.io-protocol, test-suite/test-suite.js), one test each,
// over an in-memory connection: the packets are those of the suite
// without their Engine.IO "4" prefix. examples/socketio-echo runs the
// suite itself over real sockets.

func TestSuiteConnectMainNamespace(t *testing.T) {
	t.Parallel()
	c, conn := newClient(t, echoConfig())
	c.HandleText([]byte("0"))
	sidReply(t, conn.next(t, 1)[0], "0", "sid")
	conn.expect(t, text(`2["auth",{}]`))
}

func TestSuiteConnectMainNamespaceWithPayload(t *testing.T) {
	t.Parallel()
	c, conn := newClient(t, echoConfig())
	c.HandleText([]byte(`0{"token":"123"}`))
	sidReply(t, conn.next(t, 1)[0], "0", "sid")
	conn.expect(t, text(`2["auth",{"token":"123"}]`))
}

func TestSuiteConnectCustomNamespace(t *testing.T) {
	t.Parallel()
	c, conn := newClient(t, echoConfig())
	c.HandleText([]byte("0/custom,"))
	sidReply(t, conn.next(t, 1)[0], "0/custom,", "sid")
	conn.expect(t, text(`2/custom,["auth",{}]`))
}

func TestSuiteConnectCustomNamespaceWithPayload(t *testing.T) {
	t.Parallel()
	c, conn := newClient(t, echoConfig())
	c.HandleText([]byte(`0/custom,{"token":"abc"}`))
	sidReply(t, conn.next(t, 1)[0], "0/custom,", "sid")
	conn.expect(t, text(`2/custom,["auth",{"token":"abc"}]`))
}

func TestSuiteUnknownNamespace(t *testing.T) {
	t.Parallel()
	c, conn := newClient(t, echoConfig())
	c.HandleText([]byte("0/random"))
	conn.expect(t, text(`4/random,{"message":"Invalid namespace"}`))
	conn.quiet(t) // the connection stays open
	c.HandleText([]byte("0"))
	sidReply(t, conn.next(t, 1)[0], "0", "sid")
}

func TestSuiteInvalidHandshake(t *testing.T) {
	t.Parallel()
	c, conn := newClient(t, echoConfig())
	c.HandleText([]byte("4abc"))
	if r := conn.waitClosed(t); r != ReasonParseError {
		t.Fatalf("closed with %q", r)
	}
}

func TestSuiteNoHandshake(t *testing.T) {
	t.Parallel()
	cfg := echoConfig()
	cfg.ConnectTimeout = 50 * time.Millisecond
	_, conn := newClient(t, cfg)
	if r := conn.waitClosed(t); r != ReasonConnectTimeout {
		t.Fatalf("closed with %q", r)
	}
}

func TestSuiteDisconnectMainNamespace(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	c.HandleText([]byte("1"))
	// The suite then waits for the next Engine.IO ping: the connection
	// stays open, and the connect timeout no longer applies.
	time.Sleep(1200 * time.Millisecond)
	conn.quiet(t)
	if c.Socket("/") != nil {
		t.Fatal("still in /")
	}
}

func TestSuiteConnectThenDisconnectCustomNamespace(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	c.HandleText([]byte("0/custom"))
	sidReply(t, conn.next(t, 1)[0], "0/custom,", "sid")
	conn.expect(t, text(`2/custom,["auth",{}]`))
	c.HandleText([]byte("1/custom"))
	c.HandleText([]byte(`2["message","message to main namespace"]`))
	conn.expect(t, text(`2["message-back","message to main namespace"]`))
}

func TestSuitePlainTextPacket(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	c.HandleText([]byte(`2["message",1,"2",{"3":[true]}]`))
	conn.expect(t, text(`2["message-back",1,"2",{"3":[true]}]`))
}

func TestSuiteBinaryAttachments(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	c.HandleText([]byte(`52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`))
	c.HandleBinary([]byte{1, 2, 3})
	c.HandleBinary([]byte{4, 5, 6})
	conn.expect(t,
		text(`52-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`),
		binary(1, 2, 3), binary(4, 5, 6))
}

func TestSuitePlainTextPacketWithAck(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	c.HandleText([]byte(`2456["message-with-ack",1,"2",{"3":[false]}]`))
	conn.expect(t, text(`3456[1,"2",{"3":[false]}]`))
}

func TestSuiteBinaryAttachmentsWithAck(t *testing.T) {
	t.Parallel()
	c, conn := connected(t)
	c.HandleText([]byte(`52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`))
	c.HandleBinary([]byte{1, 2, 3})
	c.HandleBinary([]byte{4, 5, 6})
	conn.expect(t,
		text(`62-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`),
		binary(1, 2, 3), binary(4, 5, 6))
}

func TestSuiteInvalidFormats(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, packet string }{
		{"unknown packet type", "4abc"},
		{"invalid payload format", "2{}"},
		{"invalid ack id", `2abc["message-with-ack",1,"2",{"3":[false]}]`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, conn := connected(t)
			c.HandleText([]byte(tt.packet))
			if r := conn.waitClosed(t); r != ReasonParseError {
				t.Fatalf("closed with %q", r)
			}
		})
	}
}
