package fastpath

import (
	"net"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// clientWatch notices a client that goes away while its request waits for a
// slow upstream, as net/http's background read does for the proxy: the
// upstream connection is then closed, which ends the wait. It runs only for
// answers slower than watchAfter, so ordinary requests start no goroutine.
//
// It peeks at the client's socket without consuming anything: EOF or an
// error means the client is gone; data (a pipelined request) ends the watch.
// Over TLS the socket's bytes are records, so TLS connections are not
// watched.
type clientWatch struct {
	rc   syscall.RawConn
	fn   func(fd uintptr) bool
	up   net.Conn
	gone atomic.Bool
	done chan struct{}
	buf  [1]byte
}

// start watches rc until stop, closing up if the client goes away.
func (w *clientWatch) start(rc syscall.RawConn, up net.Conn) {
	if w.fn == nil {
		w.fn = func(fd uintptr) bool {
			n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.buf[0])), 1,
				syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
			if errno == syscall.EAGAIN || errno == syscall.EWOULDBLOCK {
				return false // wait until the socket is readable
			}
			// EOF (nothing peeked) or an error: the client is gone.
			// Data (a pipelined request): it is not, and the watch ends.
			w.gone.Store(errno != 0 || n == 0)
			return true
		}
	}
	w.rc, w.up = rc, up
	w.gone.Store(false)
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		if err := w.rc.Read(w.fn); err == nil && w.gone.Load() {
			w.up.Close()
		}
	}()
}

func watchSupported() bool { return true }
