package transport

import (
	"compress/flate"
	"errors"
	"io"
	"slices"
	"sync"
)

// deflateTail is appended to a compressed message before inflating: the
// 00 00 ff ff that the sender stripped (RFC 7692 7.2.2) followed by an
// empty final stored block so that the flate reader reports io.EOF
// instead of io.ErrUnexpectedEOF.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

const windowSize = 32 << 10

// normLevel maps 0 and out-of-range values to BestSpeed.
func normLevel(level int) int {
	if level == 0 || level < flate.HuffmanOnly || level > flate.BestCompression {
		return DefaultCompressionLevel
	}
	return level
}

// flateWriterPools holds reset flate writers per level (index level+2).
// A flate writer at level >= 2 carries several hundred KiB of state, so
// writers are pooled rather than created per message.
var flateWriterPools [flate.BestCompression + 3]sync.Pool

// sliceWriter is an io.Writer appending to a byte slice.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

var scratchPool = sync.Pool{New: func() any { return new(sliceWriter) }}

// deflateInto compresses payload with fw's settings into sw, as one
// permessage-deflate message: sync flush and the trailing 00 00 ff ff
// removed.
func deflateInto(fw *flate.Writer, sw *sliceWriter, payload []byte) {
	_, _ = fw.Write(payload) // sliceWriter never fails
	_ = fw.Flush()
	if n := len(sw.b); n >= 4 {
		sw.b = sw.b[:n-4]
	}
}

// compressFrame builds a complete RSV1 frame holding payload compressed at
// level without context takeover. It returns nil when compression does not
// make the payload smaller, in which case the plain frame should be sent.
func compressFrame(op byte, payload []byte, level int) []byte {
	pool := &flateWriterPools[level+2]
	sw := scratchPool.Get().(*sliceWriter)
	sw.b = sw.b[:0]
	fw, _ := pool.Get().(*flate.Writer)
	if fw == nil {
		fw, _ = flate.NewWriter(sw, level) // level is normalised: no error
	} else {
		fw.Reset(sw)
	}
	deflateInto(fw, sw, payload)
	fw.Reset(nil)
	pool.Put(fw)

	var frame []byte
	if len(sw.b) < len(payload) {
		frame = make([]byte, 0, serverHeaderLen(len(sw.b))+len(sw.b))
		frame = appendFrame(frame, op, true, sw.b)
	}
	if cap(sw.b) <= 1<<20 {
		scratchPool.Put(sw)
	}
	return frame
}

// inflateSource feeds a compressed message followed by deflateTail to the
// flate reader. It implements io.ByteReader so that flate does not wrap it
// in a bufio.Reader of its own.
// inflateState is the read side's decompression state, made at a
// connection's first compressed message.
type inflateState struct {
	src  inflateSource
	dict []byte // client context takeover window, counted in Options.MaxTakeoverBytes
}

// writerCost is what a flate writer at level holds (measured with Go
// 1.26), counted in Options.MaxTakeoverBytes.
func writerCost(level int) int64 {
	switch level {
	case flate.BestSpeed:
		return 1_200_000
	case flate.HuffmanOnly:
		return 733_000
	}
	return 807_000
}

type inflateSource struct {
	b    []byte
	tail int
}

func (s *inflateSource) reset(b []byte) { s.b, s.tail = b, 0 }

func (s *inflateSource) Read(p []byte) (int, error) {
	if len(s.b) > 0 {
		n := copy(p, s.b)
		s.b = s.b[n:]
		return n, nil
	}
	if s.tail < len(deflateTail) {
		n := copy(p, deflateTail[s.tail:])
		s.tail += n
		return n, nil
	}
	return 0, io.EOF
}

func (s *inflateSource) ReadByte() (byte, error) {
	if len(s.b) > 0 {
		c := s.b[0]
		s.b = s.b[1:]
		return c, nil
	}
	if s.tail < len(deflateTail) {
		c := deflateTail[s.tail]
		s.tail++
		return c, nil
	}
	return 0, io.EOF
}

var flateReaderPool sync.Pool

var (
	errTooBig        = errors.New("message too big")
	errBadCompressed = errors.New("invalid compressed data")
)

// inflate decompresses one message. dict is the previous 32 KiB of output
// when the client uses context takeover, else nil. It returns errTooBig as
// soon as the output exceeds limit, so a small compressed message cannot
// make the server allocate more than limit+1 bytes.
//
// An output buffer over readBufferSize is counted in budget at its
// capacity as it grows, and *charged says what it counts: a few hundred
// compressed bytes inflate to a whole ReadLimit, so the output, not the
// input, is what a client makes the node hold. inflate returns
// errReadsFull, having given the charge back, when the buffer does not
// fit; on any error the charge is given back.
func inflate(src *inflateSource, payload, dict []byte, limit int64, budget *ReadBudget, charged *int64) ([]byte, error) {
	src.reset(payload)
	fr, _ := flateReaderPool.Get().(io.ReadCloser)
	if fr == nil {
		fr = flate.NewReaderDict(src, dict)
	} else if err := fr.(flate.Resetter).Reset(src, dict); err != nil {
		return nil, errBadCompressed
	}
	defer func() {
		_ = fr.(flate.Resetter).Reset(nil, nil)
		flateReaderPool.Put(fr)
	}()
	fail := func(err error) ([]byte, error) {
		budget.give(*charged)
		*charged = 0
		return nil, err
	}

	hardCap := limit + 1
	size := min(int64(2*len(payload)+512), hardCap)
	if size > readBufferSize {
		if !budget.take(size) {
			return nil, errReadsFull
		}
		*charged = size
	}
	out := make([]byte, 0, size)
	for {
		if len(out) == cap(out) {
			if int64(len(out)) >= hardCap {
				return fail(errTooBig)
			}
			grow := min(int64(cap(out)), hardCap-int64(cap(out)))
			size := int64(len(out)) + grow
			if size <= readBufferSize {
				out = slices.Grow(out, int(grow))
			} else {
				// Counted before it is made; the size class it is
				// rounded up to, once it is known.
				if !budget.take(size) {
					return fail(errReadsFull)
				}
				budget.give(*charged)
				*charged = size
				out = slices.Grow(out, int(grow))
				if extra := int64(cap(out)) - size; extra > 0 {
					if !budget.take(extra) {
						return fail(errReadsFull)
					}
					*charged += extra
				}
			}
		}
		room := min(int64(cap(out)), hardCap)
		n, err := fr.Read(out[len(out):room])
		out = out[:len(out)+n]
		if int64(len(out)) > limit {
			return fail(errTooBig)
		}
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return fail(errBadCompressed)
		}
	}
}

// slideWindow returns the last 32 KiB of dict followed by out, reusing
// dict's storage.
func slideWindow(dict, out []byte) []byte {
	if len(out) >= windowSize {
		return append(dict[:0], out[len(out)-windowSize:]...)
	}
	if keep := windowSize - len(out); len(dict) > keep {
		dict = append(dict[:0], dict[len(dict)-keep:]...)
	}
	return append(dict, out...)
}
