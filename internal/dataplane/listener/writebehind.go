package listener

import (
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/defaults"
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
// bytes wait), and the first write error is returned by every later Write
// and closes the connection.
const (
	// writeBehindLimit is how many bytes may wait before Write blocks. A
	// few maximum-size DATA frames: enough to batch, little to hold.
	writeBehindLimit = 64 << 10
	// smallBatchSize holds a maximum-size DATA frame (16 KiB and a 9-byte
	// header) with the frames around it: most batches.
	smallBatchSize = 20 << 10
	// largeBatchSize holds a full queue and the write that filled it. A
	// larger batch (one Write of more than writeBehindLimit) is left to
	// the garbage collector.
	largeBatchSize = writeBehindLimit + smallBatchSize
	// writeBehindCloseTimeout bounds how long Close waits for the bytes
	// already accepted (a GOAWAY, the last frames) to reach a peer that
	// reads slowly.
	writeBehindCloseTimeout = time.Second
)

// Batch buffers in two sizes, taken while bytes wait and given back once
// written, so an idle connection holds none.
var (
	smallBatches = sync.Pool{New: func() any { b := make([]byte, 0, smallBatchSize); return &b }}
	largeBatches = sync.Pool{New: func() any { b := make([]byte, 0, largeBatchSize); return &b }}
)

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
	c.queue(p)
	if !c.writing {
		c.writing = true
		go c.writeBatches()
	}
	return len(p), nil
}

// queue appends p to the pending batch, moving to a large buffer when a
// small one would have to grow. It runs under mu.
func (c *writeBehindConn) queue(p []byte) {
	if c.pending == nil {
		c.pending = smallBatches.Get().(*[]byte)
	}
	if need := len(*c.pending) + len(p); need > cap(*c.pending) && cap(*c.pending) < largeBatchSize {
		large := largeBatches.Get().(*[]byte)
		*large = append((*large)[:0], *c.pending...)
		releaseBatch(c.pending)
		c.pending = large
	}
	*c.pending = append(*c.pending, p...)
}

// writeBatches writes the queue until it is empty or a write fails.
func (c *writeBehindConn) writeBatches() {
	failed := false
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
			failed = true
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
	if failed {
		// The HTTP/2 server hears of the failure only at its next Write,
		// which may never come (a stream waiting for a window update from
		// a peer that stopped reading). Closing makes its read fail, and
		// it tears the connection down. A second Close (its own, or
		// Close's) is harmless.
		_ = c.Conn.Close()
	}
}

// renewDeadline runs under mu, so that it cannot undo Close's deadline.
func (c *writeBehindConn) renewDeadline() {
	if c.sendTimeout <= 0 || c.closing {
		return
	}
	// Setting a deadline costs a timer update; the data plane's renewal rule
	// keeps it to about one a second on a busy connection.
	if want := time.Now().Add(c.sendTimeout); want.Sub(c.deadline) >= defaults.RenewSlack(c.sendTimeout) {
		c.deadline = want
		_ = c.Conn.SetWriteDeadline(want)
	}
}

// SetWriteDeadline does nothing: the write deadline belongs to the writer
// goroutine (sendTimeout), and a write returning is no longer a sign that
// the peer took the bytes, so a caller's deadline would not mean what it
// says. (The HTTP/2 server's WriteByteTimeout, which works through it, is
// therefore not set; sendTimeout takes its place.)
func (c *writeBehindConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only; see SetWriteDeadline.
func (c *writeBehindConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

func releaseBatch(b *[]byte) {
	*b = (*b)[:0]
	switch cap(*b) {
	case smallBatchSize:
		smallBatches.Put(b)
	case largeBatchSize:
		largeBatches.Put(b)
	}
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
