//go:build !linux

package transport

const pollSupported = false

var readPoller poller

type poller struct{}

func (*poller) arm(*Conn) error { return errWouldBlock }
func (*poller) forget(*Conn)    {}

func wakePollers() {}
