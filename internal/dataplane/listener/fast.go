package listener

import (
	"crypto/tls"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// FastPath serves HTTP/1 connections ahead of net/http (see package
// fastpath). When Config.FastPath is set, every HTTP/1 connection, plain or
// TLS (after the handshake, when ALPN chose http/1.1 or nothing), is given to
// ServeConn on the connection's own goroutine instead of to net/http. HTTP/2
// connections (ALPN h2, or the h2c preface) never are.
type FastPath interface {
	// ServeConn serves requests on c until it closes c (FastConn.Close)
	// or hands it to net/http (FastConn.Handoff). It must do one of the
	// two before it returns.
	ServeConn(c *FastConn)
}

// States of a FastConn, for the drain.
const (
	fastBusy int32 = iota // reading or serving a request
	fastIdle              // waiting for the next request
	fastShut              // closed by the drain while idle
)

// FastConn is one HTTP/1 connection given to a FastPath.
type FastConn struct {
	srv   *Server
	tc    *trackedConn
	conn  net.Conn // tc, or the *tls.Conn over it
	tls   *tls.ConnectionState
	g     *guardConn // plain connections: the guard that detected the preface
	state atomic.Int32
	done  bool // closed or handed off
}

// Conn is the connection to read requests from and write responses to: the
// socket, or the *tls.Conn over it.
func (c *FastConn) Conn() net.Conn { return c.conn }

// TLS returns the state of the TLS handshake, or nil for plain HTTP.
func (c *FastConn) TLS() *tls.ConnectionState { return c.tls }

// Limits returns the listener's limits on requests: ReadHeaderTimeout,
// IdleTimeout, and the largest request head net/http would read (its
// MaxHeaderBytes plus 4096 bytes for the request line), which is also the
// most a head given back with Handoff may hold.
func (c *FastConn) Limits() (readHeader, idle time.Duration, maxHead int) {
	return c.srv.cfg.ReadHeaderTimeout, c.srv.cfg.IdleTimeout, c.srv.maxHead
}

// SyscallConn returns the raw socket of a plain connection, for watching it
// without reading it; ok is false over TLS.
func (c *FastConn) SyscallConn() (rc syscall.RawConn, ok bool) {
	if c.tls != nil {
		return nil, false
	}
	sc, ok := c.tc.Conn.(syscall.Conn)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	return rc, err == nil
}

// TakeBuffered appends to dst the bytes the listener read ahead of the first
// request (to tell HTTP/1 from HTTP/2) and returns the result. The fast path
// must parse them before reading the connection.
func (c *FastConn) TakeBuffered(dst []byte) []byte {
	g := c.g
	if g == nil || g.buf == nil {
		return dst
	}
	dst = append(dst, g.buf[g.start:g.end]...)
	g.pool.put(g.buf)
	g.buf = nil
	g.start, g.ok, g.end = 0, 0, 0
	return dst
}

// Busy marks the connection as serving a request: the drain lets it finish.
// It returns false when the drain closed the connection while it was idle;
// the caller must then close it and stop.
func (c *FastConn) Busy() bool {
	return c.state.Load() == fastBusy || c.state.CompareAndSwap(fastIdle, fastBusy)
}

// Idle marks the connection as waiting for a request, which the drain may
// close at any time. It returns false when draining has begun: the caller
// must then close the connection rather than wait for another request.
func (c *FastConn) Idle() bool {
	if !c.state.CompareAndSwap(fastBusy, fastIdle) && c.state.Load() != fastIdle {
		return false
	}
	return !c.srv.fastDraining.Load()
}

// Draining reports whether the server is shutting down; responses should then
// carry Connection: close, as net/http's do.
func (c *FastConn) Draining() bool { return c.srv.fastDraining.Load() }

// Reject reports a refusal to Config.OnReject with a Reject* reason, for a
// request the fast path refused itself (a malformed chunked body).
func (c *FastConn) Reject(reason string) {
	if f := c.srv.cfg.OnReject; f != nil {
		f(reason)
	}
}

// Handoff gives the connection to net/http's HTTP/1 server, through the
// request-smuggling guard, as if the fast path had never seen it. pending
// are the bytes read from the connection and not consumed, which must start
// at a request head and hold at most the maxHead bytes of Limits plus one;
// net/http reads them first. After Handoff the FastConn must not be used.
func (c *FastConn) Handoff(pending []byte) {
	if c.done {
		return
	}
	c.done = true
	s := c.srv
	s.fastHandoffs.Add(1)
	g := c.g
	if g == nil {
		g = newGuard(c.conn, c.tc, &s.pool, s.maxHead, s.cfg.ReadHeaderTimeout)
	}
	// net/http sets the read deadlines it needs; a write deadline left
	// by the fast path would cut its responses short.
	_ = c.conn.SetDeadline(time.Time{})
	if len(pending) > 0 && !g.stash(pending) {
		// More than any head net/http would read: never the case for a
		// caller that keeps to Limits.
		c.conn.Close()
		return
	}
	if c.tls != nil {
		s.serveHTTP1(c.tc, &tlsGuardConn{guardConn: g, state: *c.tls})
		return
	}
	s.serveHTTP1(c.tc, g)
}

// Close closes the connection. With linger it first half-closes it and reads
// what the client still sends for a little while (as the guard does after a
// refusal), so that unread request bytes do not make the kernel reset the
// connection before the client has read the last response.
func (c *FastConn) Close(linger bool) {
	if c.done {
		return
	}
	c.done = true
	if c.g != nil && c.g.buf != nil {
		c.g.pool.put(c.g.buf)
		c.g.buf = nil
	}
	if linger && !c.srv.forceClosing.Load() {
		if tc, ok := c.conn.(*tls.Conn); ok {
			_ = tc.CloseWrite()
		}
		_ = c.tc.CloseWrite()
		_ = c.tc.SetReadDeadline(time.Now().Add(lingerTimeout))
		var buf [2048]byte
		for n := 0; n < lingerMaxBytes; {
			k, err := c.tc.Read(buf[:])
			n += k
			if err != nil {
				break
			}
		}
	}
	c.conn.Close()
}

// shutIfIdle closes the connection if it is waiting for a request; the
// drain calls it after setting fastDraining.
func (c *FastConn) shutIfIdle() {
	if c.state.CompareAndSwap(fastIdle, fastShut) {
		c.conn.Close()
	}
}

// serveFast gives an HTTP/1 connection to the fast path.
func (s *Server) serveFast(tc *trackedConn, conn net.Conn, state *tls.ConnectionState, g *guardConn) {
	fc := &FastConn{srv: s, tc: tc, conn: conn, tls: state, g: g}
	// Busy until its first request is served, as net/http lets a new
	// connection's first request arrive during a drain: a client that has
	// just connected is not cut off before it could send anything. (One
	// that sends nothing is closed by ReadHeaderTimeout.)
	fc.state.Store(fastBusy)
	s.mu.Lock()
	_, open := s.conns[tc]
	ok := open && !s.draining
	if ok {
		s.conns[tc] = phaseFast
		tc.fast = fc
	}
	s.mu.Unlock()
	if !ok {
		fc.Close(false)
		return
	}
	s.fastServed.Add(1)
	s.cfg.FastPath.ServeConn(fc)
	if !fc.done {
		// A FastPath that broke its contract; never leak the socket.
		fc.Close(false)
	}
}
