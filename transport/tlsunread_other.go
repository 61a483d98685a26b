//go:build !linux

package transport

import "net"

// tcpUnread is 0: FIONREAD is asked on Linux only.
func tcpUnread(*net.TCPConn) int { return 0 }
