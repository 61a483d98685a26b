package transport

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// The package's system calls on non-blocking sockets (read, write,
// accept4, close, epoll_ctl, a zero-timeout epoll_wait, and the writev
// of a turn taken outside the flush workers: see iovecScratch.raw)
// return without waiting, so with more than one P they are made as raw calls
// that do not tell the scheduler: syscall.Syscall's entry and exit wake
// sysmon from its sleep whenever every P was idle, after which it polls
// every 20 µs for at least a millisecond, and any call the OS preempts
// on a busy machine is seen "in a system call" long enough for sysmon to
// take its P and wake another thread to run what was queued on it. Under
// the churn load (herald bench churn, two cores shared with the load
// generators) that was most of the server's context switches: 0.69 per
// connect, against 0.26 with raw calls, and 85 against 61 µs of CPU per
// connect (perf stat, 10 s each); side by side in the same runs, raw
// calls took 0.83-0.86× of the CPU per connect.
//
// With one P it is the other way round. A thread the OS preempts inside
// a raw call keeps the only P, and nothing else of the process runs
// until the OS runs that thread again: with several single-P processes
// on two cores, raw writev collapsed the cluster benchmark (166k of 400k
// deliveries/s, p99 7.5 s, against 392k and 251 ms). So raw calls are
// made only while GOMAXPROCS is more than one; a preempted call then
// holds one P and the others go on, as they do when the OS preempts Go
// code.
var rawSockcalls atomic.Bool

func init() { refreshSockcalls() }

// refreshSockcalls sets how the socket system calls are made from the
// current GOMAXPROCS. NewUpgrader and NewRawListener call it, so a
// program that changes GOMAXPROCS before it makes them is served as it
// runs.
func refreshSockcalls() { rawSockcalls.Store(runtime.GOMAXPROCS(0) > 1) }

// Each call below converts its pointers to uintptr in the call
// expression itself, as syscall.Syscall and RawSyscall require: the
// arguments the functions take are pointers, so a stack that moves on
// the way in takes them along.

// readSock is read(2) of the non-blocking descriptor fd.
func readSock(fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	var r uintptr
	var errno syscall.Errno
	if rawSockcalls.Load() {
		r, _, errno = syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	} else {
		r, _, errno = syscall.Syscall(syscall.SYS_READ, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	}
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// writeSock is write(2) of b, which is not empty, to the non-blocking
// descriptor fd.
func writeSock(fd int32, b []byte) (uintptr, syscall.Errno) {
	if rawSockcalls.Load() {
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		return r, errno
	}
	r, _, errno := syscall.Syscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return r, errno
}

// writevSock is writev(2) of iov, which is not empty, to the
// non-blocking descriptor fd; raw only when asked (see
// iovecScratch.raw).
func writevSock(fd int32, iov []syscall.Iovec, raw bool) (uintptr, syscall.Errno) {
	if raw && rawSockcalls.Load() {
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		return r, errno
	}
	r, _, errno := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return r, errno
}

// accept4Sock is accept4(2) on the non-blocking listener fd.
func accept4Sock(fd uintptr, rsa *syscall.RawSockaddrAny, size *uint32, flags int) (uintptr, syscall.Errno) {
	if rawSockcalls.Load() {
		r, _, errno := syscall.RawSyscall6(syscall.SYS_ACCEPT4, fd, uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(size)), uintptr(flags), 0, 0)
		return r, errno
	}
	r, _, errno := syscall.Syscall6(syscall.SYS_ACCEPT4, fd, uintptr(unsafe.Pointer(rsa)), uintptr(unsafe.Pointer(size)), uintptr(flags), 0, 0)
	return r, errno
}

// closeSock is close(2) of a socket. The package's sockets have no
// SO_LINGER timeout, so close does not wait.
func closeSock(fd int) error {
	var errno syscall.Errno
	if rawSockcalls.Load() {
		_, _, errno = syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
	} else {
		_, _, errno = syscall.Syscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// epollCtl is syscall.EpollCtl.
func epollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	var errno syscall.Errno
	if rawSockcalls.Load() {
		_, _, errno = syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	} else {
		_, _, errno = syscall.Syscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// epollWaitNow is syscall.EpollWait with a zero timeout, as epoll_pwait
// without a signal mask (which every architecture has).
func epollWaitNow(epfd int, events []syscall.EpollEvent) (int, error) {
	var ptr unsafe.Pointer
	if len(events) > 0 {
		ptr = unsafe.Pointer(&events[0])
	}
	var r uintptr
	var errno syscall.Errno
	if rawSockcalls.Load() {
		r, _, errno = syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(ptr), uintptr(len(events)), 0, 0, 0)
	} else {
		r, _, errno = syscall.Syscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(ptr), uintptr(len(events)), 0, 0, 0)
	}
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
