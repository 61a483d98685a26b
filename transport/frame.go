package transport

import (
	"encoding/binary"
	"math/bits"
	"strings"
)

// Opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

const (
	finBit  = 0x80
	rsv1Bit = 0x40
	rsv2Bit = 0x20
	rsv3Bit = 0x10
	maskBit = 0x80

	maxControlPayload = 125
	maxHeaderLen      = 14
)

// serverHeaderLen is the length of an unmasked frame header for a payload
// of n bytes.
func serverHeaderLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xffff:
		return 4
	default:
		return 10
	}
}

// putServerHeader writes an unmasked, final frame header for a payload of
// n bytes into b, which must have room for serverHeaderLen(n) bytes, and
// returns the header length.
func putServerHeader(b []byte, op byte, rsv1 bool, n int) int {
	b[0] = finBit | op
	if rsv1 {
		b[0] |= rsv1Bit
	}
	switch {
	case n <= 125:
		b[1] = byte(n)
		return 2
	case n <= 0xffff:
		b[1] = 126
		binary.BigEndian.PutUint16(b[2:], uint16(n))
		return 4
	default:
		b[1] = 127
		binary.BigEndian.PutUint64(b[2:], uint64(n))
		return 10
	}
}

// appendFrame appends one complete unmasked, final frame to dst.
func appendFrame(dst []byte, op byte, rsv1 bool, payload []byte) []byte {
	var h [maxHeaderLen]byte
	n := putServerHeader(h[:], op, rsv1, len(payload))
	dst = append(dst, h[:n]...)
	return append(dst, payload...)
}

// closePayload encodes a close frame body; reason is truncated to fit the
// 125-byte control frame limit without splitting a UTF-8 sequence. A code
// that no endpoint may send (RFC 6455 section 7.4: 1005, 1006, 1015, and
// those outside 1000-1003, 1007-1014 and 3000-4999) makes a close frame
// without a status, which the peer reports as 1005, and invalid UTF-8 in
// reason is dropped: the peer would fail the connection for either.
func closePayload(code int, reason string) []byte {
	if !validReceivedCloseCode(code) {
		return nil
	}
	reason = truncateUTF8(strings.ToValidUTF8(reason, ""), maxControlPayload-2)
	b := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	copy(b[2:], reason)
	return b
}

// truncateUTF8 cuts s to at most n bytes on a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}

// maskBytes XORs b in place with the 4-byte masking key starting at key
// offset pos and returns the offset for the next byte (RFC 6455 5.3).
func maskBytes(key [4]byte, pos int, b []byte) int {
	if len(b) >= 16 {
		// Rotate the key so that it lines up with b[0], then work on
		// 8 bytes at a time.
		k32 := binary.LittleEndian.Uint32(key[:])
		k32 = bits.RotateLeft32(k32, -8*(pos&3))
		k64 := uint64(k32)<<32 | uint64(k32)
		for len(b) >= 8 {
			v := binary.LittleEndian.Uint64(b)
			binary.LittleEndian.PutUint64(b, v^k64)
			b = b[8:]
		}
		// 8 is a multiple of 4, so pos is unchanged modulo 4.
	}
	for i := range b {
		b[i] ^= key[pos&3]
		pos++
	}
	return pos & 3
}

// advance drops the first n bytes of bufs, trimming a partly written
// buffer in place.
func advance(bufs [][]byte, n int) [][]byte {
	for n > 0 && len(bufs) > 0 {
		if n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
			continue
		}
		bufs[0] = bufs[0][n:]
		n = 0
	}
	for len(bufs) > 0 && len(bufs[0]) == 0 {
		bufs = bufs[1:]
	}
	return bufs
}
