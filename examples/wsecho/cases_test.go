package main

import (
	"fmt"
	"time"
)

// The fuzzingclient's cases 1.x to 7.x and 10.x, written from their
// descriptions and expectations in crossbario/autobahn-testsuite
// (autobahntestsuite/case/case*.py). A reserved-bits value rsv is the
// three bits RSV1..RSV3 as one number, as the suite's sendFrame takes it
// (4 is RSV1).

// autobahnCases returns every case, in the suite's order.
func autobahnCases() []*autobahnCase {
	var cs []*autobahnCase
	cs = append(cs, framingCases()...)
	cs = append(cs, pingCases()...)
	cs = append(cs, reservedBitsCases()...)
	cs = append(cs, opcodeCases()...)
	cs = append(cs, fragmentationCases()...)
	cs = append(cs, utf8Cases()...)
	cs = append(cs, closeCases()...)
	cs = append(cs, bigMessageCases()...)
	cs = append(cs, autoFragmentCase())
	cs = append(cs, deflateCases()...)
	return cs
}

// 1.x: text and binary messages of the lengths around the frame header's
// length encodings, one sent in chops of 997 bytes.
func framingCases() []*autobahnCase {
	var cs []*autobahnCase
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536, 65536}
	for i, n := range sizes {
		chop := 0
		if i == 7 {
			chop = 997
		}
		text := repeat("*", n)
		cs = append(cs, echoCase(fmt.Sprintf("1.1.%d", i+1), fmt.Sprintf("text message of %d bytes, chop %d", n, chop),
			evs(msg(text)), func(c *wsConn) { c.send(opText, []byte(text), sendOpts{chop: chop}) }))
	}
	for i, n := range sizes {
		chop := 0
		if i == 7 {
			chop = 997
		}
		bin := repeat("\xfe", n)
		cs = append(cs, echoCase(fmt.Sprintf("1.2.%d", i+1), fmt.Sprintf("binary message of %d bytes, chop %d", n, chop),
			evs(binMsg(bin)), func(c *wsConn) { c.send(opBinary, []byte(bin), sendOpts{chop: chop}) }))
	}
	return cs
}

// 2.x: pings are answered with their payload, unsolicited pongs are
// ignored, a ping over 125 bytes fails the connection.
func pingCases() []*autobahnCase {
	ping := func(id, desc, payload string, chop int) *autobahnCase {
		return echoCase(id, desc, evs(pong(payload)), func(c *wsConn) {
			c.send(opPing, []byte(payload), sendOpts{chop: chop})
		})
	}
	unsolicited := func(id, payload string) *autobahnCase {
		return echoCase(id, "unsolicited pong, then close", none(), func(c *wsConn) {
			c.send(opPong, []byte(payload), sendOpts{})
			c.closeFrame(closeBody(1000, ""))
		})
	}
	tenPings := func(id string, chop int) *autobahnCase {
		var want []event
		for i := range 10 {
			want = append(want, pong(fmt.Sprintf("payload-%d", i)))
		}
		return echoCase(id, "10 pings", want, func(c *wsConn) {
			for i := range 10 {
				c.send(opPing, fmt.Appendf(nil, "payload-%d", i), sendOpts{chop: chop})
			}
		})
	}
	return []*autobahnCase{
		ping("2.1", "ping without payload", "", 0),
		ping("2.2", "ping with text payload", "Hello, world!", 0),
		ping("2.3", "ping with binary payload", "\x00\xff\xfe\xfd\xfc\xfb\x00\xff", 0),
		ping("2.4", "ping with 125 bytes", repeat("\xfe", 125), 0),
		failCase("2.5", "ping with 126 bytes", []int{protocolError}, none(), nil, func(c *wsConn) {
			c.send(opPing, []byte(repeat("\xfe", 126)), sendOpts{})
		}),
		ping("2.6", "ping with 125 bytes, octet-wise chops", repeat("\xfe", 125), 1),
		unsolicited("2.7", ""),
		unsolicited("2.8", "unsolicited pong payload"),
		echoCase("2.9", "unsolicited pong, then ping", evs(pong("ping payload")), func(c *wsConn) {
			c.send(opPong, []byte("unsolicited pong payload"), sendOpts{})
			c.send(opPing, []byte("ping payload"), sendOpts{})
		}),
		tenPings("2.10", 0),
		tenPings("2.11", 1),
	}
}

// 3.x: reserved bits without an extension that defines them fail the
// connection; what came before is echoed.
func reservedBitsCases() []*autobahnCase {
	const hello = "Hello, world!"
	after := func(id string, rsv byte, o sendOpts) *autobahnCase {
		return failCase(id, fmt.Sprintf("text, then text with RSV=%d, then ping", rsv), []int{protocolError},
			evs(msg(hello)), none(), func(c *wsConn) {
				c.send(opText, []byte(hello), o)
				bad := o
				bad.rsv = rsv
				c.send(opText, []byte(hello), bad)
				c.send(opPing, nil, o)
			})
	}
	return []*autobahnCase{
		failCase("3.1", "text with RSV=1", []int{protocolError}, none(), nil, func(c *wsConn) {
			c.send(opText, []byte(hello), sendOpts{rsv: 1})
		}),
		after("3.2", 2, sendOpts{}),
		after("3.3", 3, sendOpts{sync: true}),
		after("3.4", 4, sendOpts{chop: 1}),
		failCase("3.5", "binary with RSV=5", []int{protocolError}, none(), nil, func(c *wsConn) {
			c.send(opBinary, []byte("\x00\xff\xfe\xfd\xfc\xfb\x00\xff"), sendOpts{rsv: 5})
		}),
		failCase("3.6", "binary with RSV=6", []int{protocolError}, none(), nil, func(c *wsConn) {
			c.send(opBinary, []byte(hello), sendOpts{rsv: 6})
		}),
		failCase("3.7", "close with RSV=7", []int{protocolError}, none(), nil, func(c *wsConn) {
			c.send(opClose, nil, sendOpts{rsv: 7})
		}),
	}
}

// 4.x: reserved opcodes fail the connection.
func opcodeCases() []*autobahnCase {
	const hello = "Hello, world!"
	alone := func(id string, op byte, payload string) *autobahnCase {
		return failCase(id, fmt.Sprintf("reserved opcode %d", op), []int{protocolError}, none(), nil, func(c *wsConn) {
			c.send(op, []byte(payload), sendOpts{})
		})
	}
	after := func(id string, op byte, payload string, chop int) *autobahnCase {
		return failCase(id, fmt.Sprintf("text, then reserved opcode %d, then ping", op), []int{protocolError},
			evs(msg(hello)), none(), func(c *wsConn) {
				c.send(opText, []byte(hello), sendOpts{chop: chop})
				c.send(op, []byte(payload), sendOpts{chop: chop})
				c.send(opPing, nil, sendOpts{chop: chop})
			})
	}
	return []*autobahnCase{
		alone("4.1.1", 3, ""),
		alone("4.1.2", 4, "reserved opcode payload"),
		after("4.1.3", 5, "", 0),
		after("4.1.4", 6, hello, 0),
		after("4.1.5", 7, hello, 1),
		alone("4.2.1", 11, ""),
		alone("4.2.2", 12, "reserved opcode payload"),
		after("4.2.3", 13, "", 0),
		after("4.2.4", 14, hello, 0),
		after("4.2.5", 15, hello, 1),
	}
}

// 5.x: fragmentation: control frames are never fragmented, a
// continuation needs a message to continue, a new message cannot start
// inside one, and pings are answered between fragments.
func fragmentationCases() []*autobahnCase {
	type frameSpec struct {
		op      byte
		payload string
		fin     bool
	}
	sendAll := func(c *wsConn, frames []frameSpec, o sendOpts) {
		for _, f := range frames {
			fo := o
			fo.notFin = !f.fin
			c.send(f.op, []byte(f.payload), fo)
		}
	}
	fails := func(id, desc string, o sendOpts, frames ...frameSpec) *autobahnCase {
		return failCase(id, desc, []int{protocolError}, none(), nil, func(c *wsConn) { sendAll(c, frames, o) })
	}
	echoes := func(id, desc string, want []event, o sendOpts, frames ...frameSpec) *autobahnCase {
		return echoCase(id, desc, want, func(c *wsConn) { sendAll(c, frames, o) })
	}
	frag := []frameSpec{{opText, "fragment1", false}, {opCont, "fragment2", true}}
	withPing := []frameSpec{{opText, "fragment1", false}, {opPing, "ping payload", true}, {opCont, "fragment2", true}}
	contFin := []frameSpec{{opCont, "non-continuation payload", true}, {opText, "Hello, world!", true}}
	contNotFin := []frameSpec{{opCont, "non-continuation payload", false}, {opText, "Hello, world!", true}}
	var twice16, twice17 []frameSpec
	for range 2 {
		twice16 = append(twice16, frameSpec{opCont, "fragment1", false}, frameSpec{opText, "fragment2", false}, frameSpec{opCont, "fragment3", true})
		twice17 = append(twice17, frameSpec{opCont, "fragment1", true}, frameSpec{opText, "fragment2", false}, frameSpec{opCont, "fragment3", true})
	}
	sync, octets := sendOpts{sync: true}, sendOpts{chop: 1}
	return []*autobahnCase{
		fails("5.1", "ping in 2 fragments", sendOpts{}, frameSpec{opPing, "fragment1", false}, frameSpec{opCont, "fragment2", true}),
		fails("5.2", "pong in 2 fragments", sendOpts{}, frameSpec{opPong, "fragment1", false}, frameSpec{opCont, "fragment2", true}),
		echoes("5.3", "text in 2 fragments", evs(msg("fragment1fragment2")), sendOpts{}, frag...),
		echoes("5.4", "text in 2 fragments, frame-wise chops", evs(msg("fragment1fragment2")), sync, frag...),
		echoes("5.5", "text in 2 fragments, octet-wise chops", evs(msg("fragment1fragment2")), octets, frag...),
		echoes("5.6", "text in 2 fragments, ping between", evs(pong("ping payload"), msg("fragment1fragment2")), sendOpts{}, withPing...),
		echoes("5.7", "text in 2 fragments, ping between, frame-wise chops", evs(pong("ping payload"), msg("fragment1fragment2")), sync, withPing...),
		echoes("5.8", "text in 2 fragments, ping between, octet-wise chops", evs(pong("ping payload"), msg("fragment1fragment2")), octets, withPing...),
		fails("5.9", "continuation (FIN) without a message, then text", sendOpts{}, contFin...),
		fails("5.10", "continuation (FIN) without a message, then text, frame-wise chops", sync, contFin...),
		fails("5.11", "continuation (FIN) without a message, then text, octet-wise chops", octets, contFin...),
		fails("5.12", "continuation without a message, then text", sendOpts{}, contNotFin...),
		fails("5.13", "continuation without a message, then text, frame-wise chops", sync, contNotFin...),
		fails("5.14", "continuation without a message, then text, octet-wise chops", octets, contNotFin...),
		failCase("5.15", "text in 2 fragments, then a continuation without a message", []int{protocolError},
			evs(msg("fragment1fragment2")), none(), func(c *wsConn) {
				sendAll(c, []frameSpec{{opText, "fragment1", false}, {opCont, "fragment2", true}, {opCont, "fragment3", false}, {opText, "fragment4", true}}, sendOpts{})
			}),
		fails("5.16", "continuation without a message, then text in 2 fragments, twice", sendOpts{}, twice16...),
		fails("5.17", "continuation (FIN) without a message, then text in 2 fragments, twice", sendOpts{}, twice17...),
		fails("5.18", "text in 2 fragments, both with the text opcode", sendOpts{}, frameSpec{opText, "fragment1", false}, frameSpec{opText, "fragment2", true}),
		interleavedPings("5.19", sendOpts{}),
		interleavedPings("5.20", sync),
	}
}

// interleavedPings (5.19, 5.20): a text message in 5 fragments with a
// ping after the second and after the fourth; the first pong must come
// while the message is still unfinished (the suite waits 1 s for it; this
// waits until it comes), then the rest follows.
func interleavedPings(id string, o sendOpts) *autobahnCase {
	frags := []string{"fragment1", "fragment2", "fragment3", "fragment4", "fragment5"}
	pings := []string{"pongme 1!", "pongme 2!"}
	kc := &autobahnCase{
		id: id, desc: "text in 5 fragments with pings between", byClient: true, codes: []int{1000}, requireClean: true,
		ok: evs(pong(pings[0]), pong(pings[1]), msg("fragment1fragment2fragment3fragment4fragment5")),
	}
	kc.run = func(c *wsConn, kc *autobahnCase) string {
		notFin := o
		notFin.notFin = true
		c.send(opText, []byte(frags[0]), notFin)
		c.send(opCont, []byte(frags[1]), notFin)
		c.send(opPing, []byte(pings[0]), o)
		c.await(evs(pong(pings[0])))
		c.send(opCont, []byte(frags[2]), notFin)
		c.send(opCont, []byte(frags[3]), notFin)
		c.send(opPing, []byte(pings[1]), o)
		c.send(opCont, []byte(frags[4]), o)
		c.finishCase(kc)
		return ""
	}
	return kc
}

// 6.1 to 6.4: empty and fragmented text, UTF-8 split inside code points,
// invalid UTF-8, and fail-fast: a text message must be failed as soon as
// its bytes so far cannot be valid UTF-8, before the rest comes.
func utf8Cases() []*autobahnCase {
	valid := func(id, desc, payload string, send func(c *wsConn)) *autobahnCase {
		return echoCase(id, desc, evs(msg(payload)), send)
	}
	invalid := func(id, desc string, send func(c *wsConn)) *autobahnCase {
		kc := failCase(id, desc, []int{invalidPayload}, none(), nil, send)
		kc.wrongEndpointFatal = true
		return kc
	}
	const mixed = "Hello-µ@ßöäüàá-UTF-8!!"
	const kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	const surrogate = kosme + "\xed\xa0\x80" + "edited"
	cs := []*autobahnCase{
		valid("6.1.1", "text of length 0", "", func(c *wsConn) { c.send(opText, nil, sendOpts{}) }),
		valid("6.1.2", "text in 3 empty fragments", "", func(c *wsConn) {
			c.send(opText, nil, sendOpts{notFin: true})
			c.send(opCont, nil, sendOpts{notFin: true})
			c.send(opCont, nil, sendOpts{})
		}),
		valid("6.1.3", "text in 3 fragments, first and last empty", "middle frame payload", func(c *wsConn) {
			c.send(opText, nil, sendOpts{notFin: true})
			c.send(opCont, []byte("middle frame payload"), sendOpts{notFin: true})
			c.send(opCont, nil, sendOpts{})
		}),
		valid("6.2.1", "valid UTF-8 in one frame", mixed, func(c *wsConn) { c.sendMessage([]byte(mixed), false, 0) }),
		valid("6.2.2", "valid UTF-8 in 2 fragments, split on a code point boundary", mixed, func(c *wsConn) {
			c.send(opText, []byte("Hello-µ@ßöä"), sendOpts{notFin: true})
			c.send(opCont, []byte("üàá-UTF-8!!"), sendOpts{})
		}),
		valid("6.2.3", "valid UTF-8 in 1-byte fragments", mixed, func(c *wsConn) { c.sendMessage([]byte(mixed), false, 1) }),
		valid("6.2.4", "valid UTF-8 in 1-byte fragments", kosme, func(c *wsConn) { c.sendMessage([]byte(kosme), false, 1) }),
		invalid("6.3.1", "invalid UTF-8 in one frame", func(c *wsConn) { c.sendMessage([]byte(surrogate), false, 0) }),
		invalid("6.3.2", "invalid UTF-8 in 1-byte fragments", func(c *wsConn) { c.sendMessage([]byte(surrogate), false, 1) }),
	}
	// 6.4: PART1 is valid, PART2 makes the text invalid (U+110000 in the
	// UTF-8 scheme), PART3 is the rest.
	const invalidCP = kosme + "\xf4\x90\x80\x80" + "edited"
	frames := func(c *wsConn, parts [3]string) {
		c.send(opText, []byte(parts[0]), sendOpts{notFin: true})
		c.failFast(
			func() { c.send(opCont, []byte(parts[1]), sendOpts{notFin: true}) },
			func() { c.send(opCont, []byte(parts[2]), sendOpts{}) })
	}
	chops := func(c *wsConn, parts [3]string) {
		f := c.frameBytes(opText, []byte(parts[0]+parts[1]+parts[2]), true, 0)
		hdr := len(f) - len(parts[0]) - len(parts[1]) - len(parts[2])
		a, b := hdr+len(parts[0]), hdr+len(parts[0])+len(parts[1])
		c.write(f[:a], 0, true)
		c.failFast(func() { c.write(f[a:b], 0, true) }, func() { c.write(f[b:], 0, true) })
	}
	split := func(at ...int) [3]string {
		return [3]string{invalidCP[:at[0]], invalidCP[at[0]:at[1]], invalidCP[at[1]:]}
	}
	for _, ff := range []struct {
		id, desc string
		parts    [3]string
		send     func(*wsConn, [3]string)
	}{
		{"6.4.1", "fail fast: 3 frames, the 2nd makes the text invalid", split(11, 15), frames},
		{"6.4.2", "fail fast: 3 frames, the 2nd is the byte that makes the text invalid", split(12, 13), frames},
		{"6.4.3", "fail fast: 3 chops of one frame, the 2nd makes the text invalid", split(11, 15), chops},
		{"6.4.4", "fail fast: 3 chops of one frame, the 2nd is the byte that makes the text invalid", split(12, 13), chops},
	} {
		kc := &autobahnCase{
			id: ff.id, desc: ff.desc, codes: []int{invalidPayload}, wrongEndpointFatal: true,
			ok: evs(timeout("A")), nonStrict: evs(timeout("A"), timeout("B")),
		}
		kc.run = func(c *wsConn, kc *autobahnCase) string {
			ff.send(c, ff.parts)
			c.finishCase(kc)
			return ""
		}
		cs = append(cs, kc)
	}
	return append(cs, utf8SequenceCases()...)
}

// quietTime is how long a case waits to see that the server does not
// act (6.4's first part is valid: the connection must stay open). The
// suite waits 1 s; a server that fails at once is seen well within this.
const quietTime = 200 * time.Millisecond

// failFast runs 6.4's second and third steps: after the valid first part
// the connection must still be open ("timeout A"); the second part must
// fail it at once, before the third is sent ("timeout B" is the
// NON-STRICT outcome: failed only once the whole message had come).
func (c *wsConn) failFast(second, third func()) {
	if !c.quiet(quietTime) {
		return
	}
	c.events = append(c.events, timeout("A"))
	second()
	if c.pump(wait, func() bool { return c.closeGot || c.ended }) {
		return
	}
	c.events = append(c.events, timeout("B"))
	third()
}

// 7.x: the closing handshake: data after a close frame is ignored, close
// payloads (length, reason, code) are checked, valid codes are answered
// normally or echoed, invalid ones fail with 1002.
func closeCases() []*autobahnCase {
	const hello = "Hello World!"
	// suppressed: the case sends its own close frame (and maybe more);
	// the server must answer it and close TCP.
	closes := func(id, desc string, codes []int, clean bool, send func(c *wsConn)) *autobahnCase {
		return &autobahnCase{
			id: id, desc: desc, ok: none(), byClient: true, codes: codes, requireClean: clean,
			run: func(c *wsConn, kc *autobahnCase) string { send(c); c.finish(); return "" },
		}
	}
	normal := []int{1000}
	cs := []*autobahnCase{
		echoCase("7.1.1", "message, then close", evs(msg(hello)), func(c *wsConn) { c.send(opText, []byte(hello), sendOpts{}) }),
		closes("7.1.2", "two close frames", normal, true, func(c *wsConn) {
			c.closeFrame(closeBody(1000, ""))
			c.send(opClose, nil, sendOpts{})
		}),
		closes("7.1.3", "ping after close", normal, true, func(c *wsConn) {
			c.closeFrame(closeBody(1000, ""))
			c.send(opPing, nil, sendOpts{})
		}),
		closes("7.1.4", "text after close", normal, true, func(c *wsConn) {
			c.closeFrame(closeBody(1000, ""))
			c.send(opText, []byte(hello), sendOpts{})
		}),
		closes("7.1.5", "fragment, close, fragment", normal, true, func(c *wsConn) {
			c.send(opText, []byte("fragment1"), sendOpts{notFin: true})
			c.closeFrame(closeBody(1000, ""))
			c.send(opCont, []byte("fragment2"), sendOpts{})
		}),
	}
	big := &autobahnCase{
		id: "7.1.6", desc: "256 KiB message, message, close, ping (informational)", informational: true,
		byClient: true, codes: normal,
		run: func(c *wsConn, kc *autobahnCase) string {
			c.send(opText, []byte(repeat("BAsd7&jh23", 256<<10)), sendOpts{})
			c.send(opText, []byte(hello), sendOpts{})
			c.closeFrame(closeBody(1000, ""))
			c.send(opPing, nil, sendOpts{})
			c.finish()
			return ""
		},
	}
	cs = append(cs, big,
		closes("7.3.1", "close without payload", normal, true, func(c *wsConn) { c.closeFrame(nil) }),
		closes("7.3.2", "close with a 1-byte payload", []int{protocolError}, false, func(c *wsConn) { c.closeFrame([]byte("a")) }),
		closes("7.3.3", "close with a code", normal, true, func(c *wsConn) { c.closeFrame(closeBody(1000, "")) }),
		closes("7.3.4", "close with a code and reason", normal, true, func(c *wsConn) { c.closeFrame(closeBody(1000, hello)) }),
		closes("7.3.5", "close with a 123-byte reason", normal, true, func(c *wsConn) { c.closeFrame(closeBody(1000, repeat("*", 123))) }),
		closes("7.3.6", "close with a 124-byte reason (frame of 126 bytes)", []int{protocolError}, false, func(c *wsConn) {
			c.closeFrame(closeBody(1000, repeat("*", 124)))
		}),
		closes("7.5.1", "close with an invalid UTF-8 reason", []int{protocolError, invalidPayload}, false, func(c *wsConn) {
			c.closeFrame(closeBody(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"))
		}),
	)
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, closes(fmt.Sprintf("7.7.%d", i+1), fmt.Sprintf("close with valid code %d", code), []int{1000, code}, true, func(c *wsConn) {
			c.closeFrame(closeBody(code, ""))
		}))
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		cs = append(cs, closes(fmt.Sprintf("7.9.%d", i+1), fmt.Sprintf("close with invalid code %d", code), []int{protocolError}, false, func(c *wsConn) {
			c.closeFrame(closeBody(code, ""))
		}))
	}
	for i, code := range []int{5000, 65535} {
		kc := closes(fmt.Sprintf("7.13.%d", i+1), fmt.Sprintf("close with code %d (informational)", code), []int{1000, code, protocolError}, false, func(c *wsConn) {
			c.closeFrame(closeBody(code, ""))
		})
		kc.informational = true
		cs = append(cs, kc)
	}
	return cs
}

// 10.1.1: a 64 KiB text message that the client auto-fragments into
// frames of 1300 bytes.
func autoFragmentCase() *autobahnCase {
	text := repeat("*", 65536)
	return echoCase("10.1.1", "64 KiB text auto-fragmented to 1300 bytes", evs(msg(text)), func(c *wsConn) {
		c.sendMessage([]byte(text), false, 1300)
	})
}
