package listener

import (
	"net"
	"sync"
	"sync/atomic"
)

// trackedConn is an accepted socket. It reports its closing to the Server,
// which keeps the set of open connections for force-closing after the drain
// timeout and for the active-connections gauge.
type trackedConn struct {
	net.Conn
	srv    *Server
	closed atomic.Bool
	fast   *FastConn // set under srv.mu when the connection enters phaseFast
}

// Close closes the socket; the first call also tells the Server.
func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.srv.forget(c)
	}
	return c.Conn.Close()
}

// CloseWrite half-closes a TCP socket and is a no-op for other kinds.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// chanListener feeds connections the Server has accepted, handshaken and
// wrapped to net/http's HTTP/1 server.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept returns the next connection handed over, or net.ErrClosed once the
// listener is closed.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		// Both cases can be ready at once; a connection taken after Close
		// would escape http.Server.Shutdown's accounting.
		select {
		case <-l.done:
			c.Close()
			return nil, net.ErrClosed
		default:
			return c, nil
		}
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept fail and hand-overs give up.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr returns the address of one of the real listeners.
func (l *chanListener) Addr() net.Addr { return l.addr }

// handoff passes c to Accept, or closes it when the listener is closed.
func (l *chanListener) handoff(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// replayConn returns pending bytes before reading from Conn again.
type replayConn struct {
	net.Conn
	pending []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
