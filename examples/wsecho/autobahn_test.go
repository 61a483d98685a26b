package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAutobahnCases runs the cases of the Autobahn|Testsuite
// fuzzingclient (crossbario/autobahn-testsuite, 517 cases: 1.x framing,
// 2.x pings, 3.x reserved bits, 4.x opcodes, 5.x fragmentation, 6.x
// UTF-8, 7.x closing, 9.x large messages, 10.x auto-fragmentation, 12.x
// and 13.x permessage-deflate) against the echo server, once reading as
// Herald does (TryRead and NotifyReadable) and once with blocking Reads
// (but for 12.x and 13.x).
// Each case sends what the suite's case sends and is judged by the
// suite's rules: the events received must equal the case's OK outcome
// (a NON-STRICT one fails here too), and the connection must end as the
// case says: who sent the first close frame, the close code, a clean
// closing handshake where one is required, and the server, not the
// client, closing TCP. Informational cases (7.1.6, 7.13.x) only need the
// server to follow the protocol. Every server frame is checked too
// (unmasked, valid opcodes, reserved bits, control frame rules, UTF-8,
// close codes: never 1005, 1006 or 1015 on the wire).
//
// Sizes and counts of 9.x, 12.x and 13.x are cut (9.x messages are 1/16
// of the suite's, 12.x/13.x send a few messages per case instead of
// 1,000) so that the whole test runs in seconds; the cases' structure
// (fragment and chop sizes, compression parameters) is the suite's.
// The suite itself runs against cmd wsecho: see the package
// documentation.
func TestAutobahnCases(t *testing.T) {
	cases := autobahnCases()
	if n := len(cases); n != 517 {
		t.Fatalf("%d cases, the fuzzingclient runs 517", n)
	}
	for _, mode := range []struct {
		name     string
		blocking bool
	}{{"notify", false}, {"blocking", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			echo := newEchoServer(mode.blocking)
			ts := httptest.NewServer(echo)
			t.Cleanup(func() {
				ts.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := echo.Shutdown(ctx); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			})
			addr := strings.TrimPrefix(ts.URL, "http://")
			// The cases mostly wait on the socket: run many at once,
			// whatever -parallel says (t.Run may be called from several
			// goroutines).
			work := make(chan *autobahnCase)
			var workers sync.WaitGroup
			for range caseWorkers {
				workers.Go(func() {
					for kc := range work {
						t.Run(kc.id, func(t *testing.T) { runCase(t, addr, kc) })
					}
				})
			}
			for _, kc := range cases {
				// permessage-deflate does not depend on how the server
				// reads: 12.x and 13.x run in Herald's way only.
				if mode.blocking && kc.offer != "" {
					continue
				}
				work <- kc
			}
			close(work)
			workers.Wait()
		})
	}
}

// caseWorkers is how many cases of a mode run at once.
const caseWorkers = 16

// autobahnCase is one case: what it offers at the upgrade, what it does,
// and the outcome the suite counts as OK.
type autobahnCase struct {
	id   string // the suite's case id, e.g. "6.4.3"
	desc string
	// offer is the Sec-WebSocket-Extensions value sent, "" for none.
	offer string
	// run sends the case's frames and drives the connection to its end
	// (usually with c.finishCase(kc)). It may set verdict itself (9.x,
	// 12.x, 13.x judge the echo they get).
	run func(c *wsConn, kc *autobahnCase) (verdict string)
	// ok is the event list of the OK outcome; nonStrict, when not nil,
	// the NON-STRICT one (reported, and failing here).
	ok, nonStrict []event
	// byClient: the client starts the closing handshake; else the
	// server must fail the connection.
	byClient bool
	codes    []int // close codes the server may send
	// requireClean: the closing handshake must complete and the server
	// close TCP.
	requireClean bool
	// wrongEndpointFatal: when the wrong side closed, the case fails
	// whatever the events (6.x: the server did not see the bad UTF-8).
	wrongEndpointFatal bool
	informational      bool
}

// Outcomes, as the suite names them.
const (
	outcomeOK        = "OK"
	outcomeNonStrict = "NON-STRICT"
	outcomeFailed    = "FAILED"
)

func runCase(t *testing.T, addr string, kc *autobahnCase) {
	h := fnv.New64a()
	h.Write([]byte(kc.id))
	c := dial(t, addr, kc.offer, h.Sum64())
	verdict := kc.run(c, kc)
	if !c.ended {
		c.finish()
	}
	if c.writeErr != nil {
		t.Errorf("%s: the client could not write: %v", kc.id, c.writeErr)
	}
	for _, v := range c.violations {
		t.Errorf("%s: server broke the protocol: %s", kc.id, v)
	}
	if kc.informational {
		return
	}
	if verdict == "" {
		verdict = outcomeFailed
		switch {
		case eventsEqual(c.events, kc.ok):
			verdict = outcomeOK
		case kc.nonStrict != nil && eventsEqual(c.events, kc.nonStrict):
			verdict = outcomeNonStrict
		}
	}
	closing := judgeClose(c, kc)
	if kc.wrongEndpointFatal && c.closedByMe != kc.byClient {
		verdict = outcomeFailed
	}
	if verdict != outcomeOK || closing != outcomeOK {
		t.Errorf("case %s (%s): %s, close %s\n  got  %v\n  want %v",
			kc.id, kc.desc, verdict, closing, c.events, kc.ok)
	}
}

// judgeClose applies the suite's rules to how the connection ended.
func judgeClose(c *wsConn, kc *autobahnCase) string {
	switch {
	case c.closedByMe != kc.byClient:
		return "FAILED (the connection was failed by the wrong endpoint)"
	case kc.requireClean && !c.wasClean:
		return "UNCLEAN (the closing handshake did not complete, or the server did not close TCP)"
	case c.closeGot && c.remoteCode != 0 && !slices.Contains(kc.codes, c.remoteCode):
		return fmt.Sprintf("WRONG CODE (%d, want one of %v or none)", c.remoteCode, kc.codes)
	case c.droppedByMe:
		return "FAILED BY CLIENT (the server did not close TCP)"
	}
	return outcomeOK
}

// finishCase ends a case as the fuzzingclient does after its frames:
// when the client closes, it waits for the OK events and then starts
// the closing handshake; otherwise it waits for the server to fail the
// connection (answering its close frame) and to close TCP.
func (c *wsConn) finishCase(kc *autobahnCase) {
	if kc.byClient {
		if kc.nonStrict == nil {
			c.await(kc.ok)
		}
		c.closeByClient(kc.codes[0], "")
		return
	}
	c.finish()
}

// Helpers for the case tables.

func msg(s string) event     { return event{kind: "message", payload: s} }
func binMsg(s string) event  { return event{kind: "message", payload: s, binary: true} }
func pong(s string) event    { return event{kind: "pong", payload: s} }
func timeout(s string) event { return event{kind: "timeout", payload: s} }
func evs(e ...event) []event { return append([]event{}, e...) }
func none() []event          { return []event{} }
func repeat(s string, n int) string {
	return strings.Repeat(s, n/len(s)+1)[:n]
}

// echoCase: the frames go out, the server echoes, the client closes
// normally and cleanly.
func echoCase(id, desc string, ok []event, send func(c *wsConn)) *autobahnCase {
	return &autobahnCase{
		id: id, desc: desc, ok: ok, byClient: true, codes: []int{1000}, requireClean: true,
		run: func(c *wsConn, kc *autobahnCase) string { send(c); c.finishCase(kc); return "" },
	}
}

// failCase: the server must fail the connection with one of codes;
// before that it may answer what came before the violation (ok, and
// nonStrict when the suite also accepts nothing).
func failCase(id, desc string, codes []int, ok, nonStrict []event, send func(c *wsConn)) *autobahnCase {
	return &autobahnCase{
		id: id, desc: desc, ok: ok, nonStrict: nonStrict, codes: codes,
		run: func(c *wsConn, kc *autobahnCase) string { send(c); c.finishCase(kc); return "" },
	}
}

const (
	protocolError  = 1002
	invalidPayload = 1007
)
