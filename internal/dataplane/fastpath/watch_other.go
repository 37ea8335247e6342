//go:build !linux

package fastpath

import (
	"net"
	"sync/atomic"
	"syscall"
)

// clientWatch is not available on this platform: a client that goes away
// while the upstream is slow is noticed when its answer is written.
type clientWatch struct {
	gone atomic.Bool
	done chan struct{}
}

func (w *clientWatch) start(syscall.RawConn, net.Conn) {}

func watchSupported() bool { return false }
