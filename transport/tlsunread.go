package transport

import (
	"crypto/tls"
	"net"
	"time"
)

// pullTLS moves the plaintext that crypto/tls holds into the read
// buffer, for UnreadBytes. crypto/tls reads from the socket as much as
// has come, not one record, and returns one record's plaintext per Read:
// a pong that came in one segment with the end of a message the
// application now holds waits, encrypted, in its buffer, where neither
// FIONREAD nor the read buffer sees it, and crypto/tls tells nobody how
// much it holds. So it is asked, without reading from the socket or
// waiting: the read deadline is in the past while pullTLS reads (Go's
// poller then fails a socket read at once), so crypto/tls returns only
// records already in its buffer, and the deadline's error leaves its
// state intact (a temporary net.Error; a record half read stays
// buffered). It returns how many bytes it moved. readMu must be held.
func (c *Conn) pullTLS(tc *tls.Conn) int {
	if c.r.err != nil || c.prefix != nil {
		// Ended, or the bytes that came with the upgrade request are
		// still to be read first (heldFrameBytes looks at those).
		return 0
	}
	if tc.SetReadDeadline(time.Unix(1, 0)) != nil {
		return 0
	}
	had := c.br != nil
	br := c.reader()
	moved := 0
	for br.Buffered() < br.Size() {
		before := br.Buffered()
		// One Read of crypto/tls: one record's plaintext, or the
		// deadline's error, which Peek hands back and forgets.
		_, _ = br.Peek(before + 1)
		if br.Buffered() == before {
			break
		}
		moved += br.Buffered() - before
	}
	// No Read is in progress (readMu is held): a Read cancelled earlier
	// left its deadline for the next Read to clear (readWatch), which
	// clears it again at no harm; none is set otherwise.
	_ = tc.SetReadDeadline(time.Time{})
	if !had {
		c.releaseReader() // TryRead's buffer, if nothing came
	}
	return moved
}

// socketUnread is FIONREAD on the socket under a layered connection: 0
// when it is not a socket of Go's net package or of this package, or
// the system cannot tell.
func socketUnread(nc net.Conn) int {
	if s, ok := nc.(*rawSocket); ok {
		return s.unread()
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		return tcpUnread(tc)
	}
	return 0
}
