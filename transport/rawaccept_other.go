//go:build !linux

package transport

import "net"

// RawListener is Linux only (see rawaccept_linux.go).
type RawListener struct{}

// NewRawListener returns nil outside Linux: connections are accepted
// with ln.Accept.
func NewRawListener(net.Listener) *RawListener { return nil }

// Close is never called outside Linux.
func (*RawListener) Close() error { return nil }

// Accept is never called outside Linux.
func (*RawListener) Accept() (net.Conn, *net.TCPAddr, error) { return nil, nil, net.ErrClosed }

// ReadAvailable reads nothing outside Linux: ErrWouldBlock.
func ReadAvailable(net.Conn, []byte) (int, error) { return 0, ErrWouldBlock }

// NetConn returns c.
func NetConn(c net.Conn) (net.Conn, error) { return c, nil }
