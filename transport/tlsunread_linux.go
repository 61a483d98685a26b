package transport

import (
	"net"
	"syscall"
	"unsafe"
)

// tcpUnread returns how many bytes the socket has received that nobody
// has read yet (FIONREAD), 0 when it cannot tell.
func tcpUnread(tc *net.TCPConn) int {
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		var v int32
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&v))); errno == 0 {
			n = int(v)
		}
	})
	return n
}
