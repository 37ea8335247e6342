package fastpath

import (
	"net"
	"syscall"
	"unsafe"
)

// peeker checks an idle upstream connection without blocking: a peeking,
// non-blocking recv that would block means the connection is quiet and
// usable; EOF, an error or unsolicited bytes mean it is not.
type peeker struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	ok  bool
	buf [1]byte
}

func (p *peeker) alive(c net.Conn) bool {
	if p.rc == nil {
		sc, ok := c.(syscall.Conn)
		if !ok {
			return true
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return true
		}
		p.rc = rc
		p.fn = func(fd uintptr) bool {
			// Success (0 bytes: EOF; more: unsolicited data) and errors
			// other than "would block" all mean the connection is done.
			_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&p.buf[0])), 1,
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			p.ok = errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK
			return true
		}
	}
	p.ok = false
	if err := p.rc.Read(p.fn); err != nil {
		return false
	}
	return p.ok
}
