package listener

import (
	"crypto/tls"
	"net"
	"sync"
	"time"
)

// The HTTP/2 server flushes its buffered frames each time its write queue
// runs empty. For a proxied response that is twice (the handler waits for
// its HEADERS frame to be written before it hands over the DATA), and once
// per stream when several streams answer one after another: each flush is a
// TLS record and a write system call, which on this data plane's benchmark
// cost about 9 µs apiece, more than the rest of the stream's HTTP/2 work.
// nginx writes a connection's frames once per turn of its event loop.
//
// writeBehindConn gives the HTTP/2 server the same batching: Write copies
// the bytes and returns, and a goroutine writes everything that has
// accumulated since its previous write as one. Order is kept (one writer,
// one queue), backpressure is kept (Write blocks while writeBehindLimit
// bytes wait), and the first write error is returned by every later Write.
const (
	// writeBehindLimit is how many bytes may wait before Write blocks. A
	// few maximum-size DATA frames: enough to batch, little to hold.
	writeBehindLimit = 64 << 10
	// writeBehindBufSize is the size of the pooled batch buffers; a batch
	// that outgrew it is left to the garbage collector.
	writeBehindBufSize = 16 << 10
	// writeBehindCloseTimeout bounds how long Close waits for the bytes
	// already accepted (a GOAWAY, the last frames) to reach a peer that
	// reads slowly.
	writeBehindCloseTimeout = time.Second
	// deadlineSlack is how stale the write deadline may get before it is
	// pushed forward: setting one costs a timer update, so it is renewed
	// at most about once a second, as in package proxy.
	deadlineSlack = time.Second
)

var writeBehindBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, writeBehindBufSize)
	return &b
}}

type writeBehindConn struct {
	net.Conn
	// sendTimeout fails the connection when a peer accepts no bytes for
	// this long (nginx's send_timeout); zero means no bound.
	sendTimeout time.Duration

	mu       sync.Mutex
	cond     sync.Cond // a batch was written, the writer stopped, or it failed
	pending  *[]byte   // accepted bytes not yet given to Conn; nil when none
	writing  bool      // the writer goroutine is running
	closing  bool      // Close has set the write deadline; keep it
	deadline time.Time // the write deadline last set by the writer
	err      error     // the first write error, or net.ErrClosed after Close
}

// newWriteBehindConn wraps c. A *tls.Conn keeps its ConnectionState method,
// from which the HTTP/2 server checks the TLS version and cipher suite and
// sets Request.TLS.
func newWriteBehindConn(c net.Conn, sendTimeout time.Duration) net.Conn {
	w := &writeBehindConn{Conn: c, sendTimeout: sendTimeout}
	w.cond.L = &w.mu
	if tc, ok := c.(*tls.Conn); ok {
		return &writeBehindTLSConn{writeBehindConn: w, tls: tc}
	}
	return w
}

type writeBehindTLSConn struct {
	*writeBehindConn
	tls *tls.Conn
}

func (c *writeBehindTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// Write queues p for the writer goroutine. It blocks only while the queue is
// full, and returns the error of an earlier write that failed.
func (c *writeBehindConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.err == nil && c.pending != nil && len(*c.pending)+len(p) > writeBehindLimit {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.pending == nil {
		c.pending = writeBehindBufs.Get().(*[]byte)
	}
	*c.pending = append(*c.pending, p...)
	if !c.writing {
		c.writing = true
		go c.writeBatches()
	}
	return len(p), nil
}

// writeBatches writes the queue until it is empty or a write fails.
func (c *writeBehindConn) writeBatches() {
	c.mu.Lock()
	for c.pending != nil && c.err == nil {
		batch := c.pending
		c.pending = nil
		c.renewDeadline()
		c.mu.Unlock()
		_, err := c.Conn.Write(*batch)
		releaseBatch(batch)
		c.mu.Lock()
		if err != nil && c.err == nil {
			c.err = err
		}
		c.cond.Broadcast()
	}
	if c.pending != nil { // failed: what waits will never be written
		releaseBatch(c.pending)
		c.pending = nil
	}
	c.writing = false
	c.cond.Broadcast()
	c.mu.Unlock()
}

// renewDeadline runs under mu, so that it cannot undo Close's deadline.
func (c *writeBehindConn) renewDeadline() {
	if c.sendTimeout <= 0 || c.closing {
		return
	}
	now := time.Now()
	if want := now.Add(c.sendTimeout); want.Sub(c.deadline) >= deadlineSlack {
		c.deadline = want
		_ = c.Conn.SetWriteDeadline(want)
	}
}

// SetWriteDeadline does nothing: the write deadline belongs to the writer
// goroutine (sendTimeout), and a write returning is no longer a sign that
// the peer took the bytes, so a caller's deadline would not mean what it
// says.
func (c *writeBehindConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only; see SetWriteDeadline.
func (c *writeBehindConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

func releaseBatch(b *[]byte) {
	if cap(*b) > writeBehindBufSize {
		return
	}
	*b = (*b)[:0]
	writeBehindBufs.Put(b)
}

// Close waits, up to writeBehindCloseTimeout, for the queued bytes to be
// written, then closes Conn. Writes after Close fail with net.ErrClosed.
func (c *writeBehindConn) Close() error {
	c.mu.Lock()
	if c.writing {
		// A nearer deadline makes the writer's write, and so this wait,
		// end in time.
		c.closing = true
		_ = c.Conn.SetWriteDeadline(time.Now().Add(writeBehindCloseTimeout))
		for c.writing {
			c.cond.Wait()
		}
	}
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	return c.Conn.Close()
}
