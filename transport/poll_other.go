//go:build !linux

package transport

import "syscall"

const pollSupported = false

var readPoller poller

type poller struct{}

func (*poller) arm(*Conn) error { return errWouldBlock }
func (*poller) remove(*Conn)    {}

func (*poller) registered(*Conn) bool { return false }

func readOnce(syscall.RawConn, []byte) (int, error) { return 0, errWouldBlock }
