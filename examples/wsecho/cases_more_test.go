package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode/utf8"
)

// The fuzzingclient's generated cases: 6.5 to 6.23 (the UTF-8 decoder
// test sequences of Markus Kuhn's UTF-8-test.txt, each one text message),
// 9.x (large messages, fragmented and chopped), 12.x and 13.x
// (permessage-deflate with different payloads and parameters).

// utf8Sequences returns the groups of 6.5 to 6.23: each sequence and
// whether it is valid UTF-8.
func utf8Sequences() [][]struct {
	valid bool
	s     string
} {
	type seq = struct {
		valid bool
		s     string
	}
	v := func(s ...string) []seq {
		var out []seq
		for _, x := range s {
			out = append(out, seq{true, x})
		}
		return out
	}
	x := func(s ...string) []seq {
		var out []seq
		for _, y := range s {
			out = append(out, seq{false, y})
		}
		return out
	}
	const kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	// All prefixes of kosme: valid where they end on a code point.
	var prefixes []seq
	for i := 1; i <= len(kosme); i++ {
		prefixes = append(prefixes, seq{utf8.ValidString(kosme[:i]), kosme[:i]})
	}
	var continuations []byte
	for b := 0x80; b < 0xbf; b++ {
		continuations = append(continuations, byte(b))
	}
	var lonely []seq
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		var b []byte
		for i := r[0]; i < r[1]; i++ {
			b = append(b, byte(i), 0x20)
		}
		lonely = append(lonely, seq{false, string(b)})
	}
	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	nonChars := v("\xef\xbf\xbe", "\xef\xbf\xbf")
	for _, z1 := range []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4} {
		for _, z2 := range []byte{0x8f, 0x9f, 0xaf, 0xbf} {
			if z1 == 0xf4 && z2 != 0x8f {
				continue // above U+10FFFF
			}
			for _, z3 := range []byte{0xbe, 0xbf} {
				if z1 == 0xf0 && z2 == 0x8f {
					continue // overlong
				}
				nonChars = append(nonChars, seq{true, string([]byte{z1, z2, 0xbf, z3})})
			}
		}
	}
	return [][]seq{
		v("hello\x24world", "hello\xc2\xa2world", "hello\xe2\x82\xacworld", "hello\xf0\xa4\xad\xa2world", kosme),
		prefixes,
		v("\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80"),
		x("\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80"),
		v("\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"),
		x("\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf"),
		append(v("\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf"), x("\xf4\x90\x80\x80")...),
		x("\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80", "\x80\xbf\x80\xbf\x80\xbf", string(continuations)),
		lonely,
		x(missing...),
		x(strings.Join(missing, "")),
		x("\xfe", "\xff", "\xfe\xfe\xff\xff"),
		x("\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf"),
		x("\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf"),
		x("\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80"),
		x("\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf"),
		x("\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
			"\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf"),
		nonChars,
		v("\xef\xbf\xb9", "\xef\xbf\xba", "\xef\xbf\xbb", "\xef\xbf\xbc", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf"),
	}
}

// utf8SequenceCases: 6.5.1 to 6.23.7, each sequence as one text frame:
// valid ones are echoed, invalid ones fail the connection with 1007.
func utf8SequenceCases() []*autobahnCase {
	var cs []*autobahnCase
	for g, group := range utf8Sequences() {
		for i, sq := range group {
			id := fmt.Sprintf("6.%d.%d", g+5, i+1)
			s := sq.s
			if sq.valid {
				cs = append(cs, echoCase(id, fmt.Sprintf("valid UTF-8 %x", s), evs(msg(s)), func(c *wsConn) {
					c.sendMessage([]byte(s), false, 0)
				}))
				continue
			}
			kc := failCase(id, fmt.Sprintf("invalid UTF-8 %x", s), []int{invalidPayload}, none(), nil, func(c *wsConn) {
				c.sendMessage([]byte(s), false, 0)
			})
			kc.wrongEndpointFatal = true
			cs = append(cs, kc)
		}
	}
	return cs
}

// scale divides the sizes of 9.x: the suite's messages go up to 16 MiB.
const scale = 16

// bigMessageCases: 9.1/9.2 messages of growing size, 9.3/9.4 one
// message in fragments of growing size, 9.5/9.6 one message written in
// chops of growing size, 9.7/9.8 many small messages one after the
// other. Each is judged on the echo: same type and payload.
func bigMessageCases() []*autobahnCase {
	var cs []*autobahnCase
	const textPattern, binPattern = "BAsd7&jh23", "\x00\xfe\x23\xfa\xf0"
	kinds := []struct {
		binary  bool
		pattern string
	}{{false, textPattern}, {true, binPattern}}
	for k, kind := range kinds {
		for i, size := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20, 8 << 20, 16 << 20} {
			payload := []byte(repeat(kind.pattern, size/scale))
			cs = append(cs, echoJudged(fmt.Sprintf("9.%d.%d", 1+k, i+1), fmt.Sprintf("one message of %d bytes", len(payload)), func(c *wsConn) string {
				c.sendMessage(payload, kind.binary, 0)
				return c.awaitEcho(payload, kind.binary)
			}))
		}
	}
	for k, kind := range kinds {
		pattern := "*"
		if kind.binary {
			pattern = "\xfe"
		}
		payload := []byte(repeat(pattern, 4<<20/scale))
		for i, frag := range []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20} {
			cs = append(cs, echoJudged(fmt.Sprintf("9.%d.%d", 3+k, i+1), fmt.Sprintf("%d bytes in fragments of %d", len(payload), frag), func(c *wsConn) string {
				c.sendMessage(payload, kind.binary, frag)
				return c.awaitEcho(payload, kind.binary)
			}))
		}
	}
	for k, kind := range kinds {
		payload := []byte(repeat(kind.pattern, 1<<20/scale))
		op := byte(opText)
		if kind.binary {
			op = opBinary
		}
		for i, chop := range []int{64, 128, 256, 512, 1024, 2048} {
			cs = append(cs, echoJudged(fmt.Sprintf("9.%d.%d", 5+k, i+1), fmt.Sprintf("%d bytes in chops of %d", len(payload), chop), func(c *wsConn) string {
				c.send(op, payload, sendOpts{chop: chop})
				return c.awaitEcho(payload, kind.binary)
			}))
		}
	}
	for k, kind := range kinds {
		pattern := "*"
		if kind.binary {
			pattern = "\xfe"
		}
		for i, size := range []int{0, 16, 64, 256, 1024, 4096} {
			payload := []byte(repeat(pattern, size))
			const count = 1000 / scale / 4 // the suite sends 1,000
			cs = append(cs, echoJudged(fmt.Sprintf("9.%d.%d", 7+k, i+1), fmt.Sprintf("%d messages of %d bytes, one after the other", count, size), func(c *wsConn) string {
				for range count {
					c.sendMessage(payload, kind.binary, 0)
					if v := c.awaitEcho(payload, kind.binary); v != outcomeOK {
						return v
					}
				}
				return outcomeOK
			}))
		}
	}
	return cs
}

// echoJudged is a case judged by run's verdict on the echo it got; the
// client then closes normally, cleanly.
func echoJudged(id, desc string, run func(c *wsConn) string) *autobahnCase {
	return &autobahnCase{
		id: id, desc: desc, byClient: true, codes: []int{1000}, requireClean: true,
		run: func(c *wsConn, kc *autobahnCase) string {
			v := run(c)
			c.closeByClient(1000, "")
			return v
		},
	}
}

// awaitEcho waits for the next message and reports OK when it is the
// echo of payload with its type.
func (c *wsConn) awaitEcho(payload []byte, binary bool) string {
	n := len(c.events)
	if !c.pump(wait, func() bool { return len(c.events) > n }) {
		return outcomeFailed + " (no echo)"
	}
	got := c.events[n]
	switch {
	case got.kind != "message":
		return outcomeFailed + " (" + got.String() + " instead of the echo)"
	case got.binary != binary:
		return outcomeFailed + " (echo of another type)"
	case got.payload != string(payload):
		return fmt.Sprintf("%s (echo of %d bytes differs from the %d sent)", outcomeFailed, len(got.payload), len(payload))
	}
	return outcomeOK
}

// deflateSizes are 12.x/13.x's message sizes and auto-fragment sizes.
var deflateSizes = [][2]int{
	{16, 0}, {64, 0}, {256, 0}, {1024, 0}, {4096, 0}, {8192, 0}, {16384, 0}, {32768, 0}, {65536, 0}, {131072, 0},
	{8192, 256}, {16384, 256}, {32768, 256}, {65536, 256}, {131072, 256}, {131072, 1024}, {131072, 4096}, {131072, 32768},
}

// deflateCount is how many messages a 12.x/13.x case sends (the suite
// sends 1,000 of every size).
func deflateCount(size int) int {
	switch {
	case size <= 1024:
		return 6
	case size <= 16384:
		return 2
	}
	return 1
}

// testData is a payload for 12.x: the suite's files (a JSON document, a
// bitmap, a German text, an HTML page, a PDF) are not copied here; these
// are made to compress alike.
type testData struct {
	name   string
	binary bool // sent as binary (text is sliced on code points)
	data   []byte
	starts []int // see unitStarts
}

func deflateData() []*testData {
	rng := rand.New(rand.NewPCG(12, 13))
	var js, html, faust, bmp, pdf bytes.Buffer
	words := []string{"Faust", "Mephistopheles", "Gretchen", "Wagner", "Schüler", "Hexe", "Nacht", "Studierzimmer",
		"Straße", "Garten", "Kerker", "Himmel", "Erde", "Geist", "Mädchen", "schön", "über", "hören", "Wissenschaft", "grün"}
	js.WriteString("[")
	for i := 0; js.Len() < 140<<10; i++ {
		fmt.Fprintf(&js, `{"id":%d,"name":"%s","tags":["%s","%s"],"score":%d.%02d,"text":"naïve café – %s"},`,
			i, words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1000), rng.IntN(100), words[rng.IntN(len(words))])
	}
	js.WriteString(`{}]`)
	for html.Len() < 140<<10 {
		fmt.Fprintf(&html, "<div class=\"row\"><a href=\"/wiki/%s\">%s</a> <span>%s — €%d</span></div>\n",
			words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100))
	}
	for faust.Len() < 140<<10 {
		faust.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(8) == 0 {
			faust.WriteString(".\n")
		} else {
			faust.WriteString(" ")
		}
	}
	for y := range 384 {
		for x := range 384 {
			bmp.WriteByte(byte((x*y)>>6) + byte(rng.IntN(9)))
		}
	}
	for pdf.Len() < 140<<10 {
		fmt.Fprintf(&pdf, "%d 0 obj << /Length %d /Filter /FlateDecode >> stream\n", rng.IntN(999), 512)
		for range 512 {
			pdf.WriteByte(byte(rng.Uint32()))
		}
		pdf.WriteString("\nendstream endobj\n")
	}
	ds := []*testData{
		{name: "json", data: js.Bytes()},
		{name: "bitmap", binary: true, data: bmp.Bytes()},
		{name: "german text", binary: true, data: faust.Bytes()},
		{name: "html", data: html.Bytes()},
		{name: "pdf", binary: true, data: pdf.Bytes()},
	}
	for _, d := range ds {
		d.unitStarts()
	}
	return ds
}

// slicer hands out the suite's messages: size units (bytes, or code
// points for text) at a time from a ring over the data.
type slicer struct {
	d   *testData
	pos int // in units
}

// unitStarts returns where each unit of d starts, and len(d.data) last.
func (d *testData) unitStarts() []int {
	if d.starts == nil {
		for i := 0; i < len(d.data); {
			d.starts = append(d.starts, i)
			n := 1
			if !d.binary {
				_, n = utf8.DecodeRune(d.data[i:])
			}
			i += n
		}
		d.starts = append(d.starts, len(d.data))
	}
	return d.starts
}

func (s *slicer) next(size int) []byte {
	starts := s.d.starts
	units := len(starts) - 1
	var out []byte
	for size > 0 {
		n := min(size, units-s.pos)
		out = append(out, s.d.data[starts[s.pos]:starts[s.pos+n]]...)
		s.pos = (s.pos + n) % units
		size -= n
	}
	return out
}

// deflateOffer is one permessage-deflate offer as the suite's client
// makes it: it always accepts client_no_context_takeover and
// client_max_window_bits, and may ask for server_no_context_takeover
// and a server window.
func deflateOffer(serverNoContext bool, serverWindowBits int) string {
	s := "permessage-deflate; client_no_context_takeover; client_max_window_bits"
	if serverNoContext {
		s += "; server_no_context_takeover"
	}
	if serverWindowBits != 0 {
		s += fmt.Sprintf("; server_max_window_bits=%d", serverWindowBits)
	}
	return s
}

// deflateCases: 12.1-12.5 (the default offer, five payloads) and
// 13.1-13.7 (the JSON payload, seven offers), each at the 18 sizes.
// Messages go compressed and auto-fragmented one after the other, and
// each echo must match.
func deflateCases() []*autobahnCase {
	data := deflateData()
	var cs []*autobahnCase
	add := func(id string, d *testData, offer string, size, frag int) {
		count := deflateCount(size)
		kc := &autobahnCase{
			id: id, desc: fmt.Sprintf("%d %s messages of %d, fragments of %d, offer %q", count, d.name, size, frag, offer),
			offer: offer, byClient: true, codes: []int{1000}, requireClean: true,
		}
		kc.run = func(c *wsConn, kc *autobahnCase) string {
			verdict := outcomeOK
			if c.pmd == nil {
				verdict = "UNIMPLEMENTED (permessage-deflate declined)"
			}
			s := &slicer{d: d}
			for i := 0; i < count && verdict == outcomeOK; i++ {
				m := s.next(size)
				c.sendMessage(m, d.binary, frag)
				verdict = c.awaitEcho(m, d.binary)
			}
			c.closeByClient(1000, "")
			return verdict
		}
		cs = append(cs, kc)
	}
	for j, d := range data {
		for i, sz := range deflateSizes {
			add(fmt.Sprintf("12.%d.%d", j+1, i+1), d, deflateOffer(false, 0), sz[0], sz[1])
		}
	}
	offers := []string{
		deflateOffer(false, 0),
		deflateOffer(true, 0),
		deflateOffer(false, 9),
		deflateOffer(false, 15),
		deflateOffer(true, 9),
		deflateOffer(true, 15),
		deflateOffer(true, 9) + ", " + deflateOffer(true, 0) + ", " + deflateOffer(false, 0),
	}
	for j, offer := range offers {
		for i, sz := range deflateSizes {
			add(fmt.Sprintf("13.%d.%d", j+1, i+1), data[0], offer, sz[0], sz[1])
		}
	}
	return cs
}
