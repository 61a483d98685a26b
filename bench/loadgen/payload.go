package loadgen

import (
	"bytes"
	"strconv"
)

// A scenario payload is the JSON object published as an event's data:
//
//	{"bk":STEP,"bs":SEQ,"bt":UNIX_NANOS,"p":"xxxx…"}
//
// bk is the measurement step, bs the sequence number of the message in its
// room and step (from 0), bt the send time; p pads the object to the
// requested size. The keys are chosen not to occur anywhere else in a
// server's frame, so that subscribers find them by a byte search instead
// of decoding every frame.

// AppendPayload appends a payload of about size bytes (never less than
// what the fields need) to dst.
func AppendPayload(dst []byte, step int, seq int64, sentNanos int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"bk":`...)
	dst = strconv.AppendInt(dst, int64(step), 10)
	dst = append(dst, `,"bs":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"bt":`...)
	dst = strconv.AppendInt(dst, sentNanos, 10)
	dst = append(dst, `,"p":"`...)
	pad := size - (len(dst) - start) - 2
	for i := 0; i < pad; i++ {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// Sample is what a subscriber reads from a delivered payload.
type Sample struct {
	Step      int
	Seq       int64
	SentNanos int64
}

var (
	keyStep = []byte(`"bk":`)
	keySeq  = []byte(`"bs":`)
	keySent = []byte(`"bt":`)
)

// ParsePayload finds a scenario payload anywhere in a server frame (Herald
// v1 JSON or a Socket.IO event). ok is false for any other frame.
func ParsePayload(frame []byte) (s Sample, ok bool) {
	i := bytes.Index(frame, keyStep)
	if i < 0 {
		return s, false
	}
	rest := frame[i:]
	step, ok1 := intAfter(rest, keyStep)
	seq, ok2 := intAfter(rest, keySeq)
	sent, ok3 := intAfter(rest, keySent)
	if !ok1 || !ok2 || !ok3 {
		return s, false
	}
	return Sample{Step: int(step), Seq: seq, SentNanos: sent}, true
}

func intAfter(b, key []byte) (int64, bool) {
	i := bytes.Index(b, key)
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	var n int64
	digits := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
		digits++
		if digits > 19 {
			return 0, false
		}
	}
	return n, digits > 0
}
