package listener

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// rejectHead replaces a refused head. It has no spaces, so net/http
	// fails its request line and answers "400 Bad Request" with
	// Connection: close itself, after any response it is still writing.
	rejectHead = "INVALID\r\n\r\n"
	// oversizeHead replaces a head over the limit, followed by endless
	// filler, so that net/http always hits its own header limit and answers
	// 431 no matter how much it had read ahead.
	oversizeHead = "GET / HTTP/1.1\r\nX-Oversized-Head: "
	// h2Preface starts every HTTP/2 connection (RFC 9113 section 3.4).
	h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

	// minDirectRead is the smallest caller buffer inspected in place; a
	// smaller read (net/http's one-byte background read) goes through the
	// guard's own buffer so as not to read the socket a byte at a time.
	minDirectRead = 512
	// maxEmptyReads bounds reads that return neither data nor error.
	maxEmptyReads = 100

	// After refusing a request the guard drains what the client already
	// sent for a little while before closing: closing a socket with unread
	// data makes the kernel reset the connection, and the client may then
	// lose the 400 response.
	lingerTimeout  = 500 * time.Millisecond
	lingerMaxBytes = 256 << 10
)

type guardState uint8

const (
	stateInspect  guardState = iota
	statePass                // hijacked: bytes flow unchanged
	stateRejected            // rejectHead, then EOF
	stateOversize            // oversizeHead, then filler forever
	stateFailed              // malformed body: err forever
)

// guardConn is the connection net/http's HTTP/1 server reads from. It hands
// over only bytes the inspector has cleared and, instead of writing to the
// socket itself, replaces a refused head with bytes net/http answers with an
// error, so responses stay in order.
//
// Read is called by one goroutine at a time (net/http serialises its reads);
// SetReadDeadline, Close and the connection-state notes may come from others.
type guardConn struct {
	// Conn is what net/http would otherwise read: the *trackedConn for
	// plain HTTP or a *tls.Conn over it.
	net.Conn
	raw         *trackedConn
	pool        *bufPool
	headTimeout time.Duration
	maxBuf      int

	in inspector

	// buf holds bytes read from Conn and not yet returned: buf[start:ok]
	// are cleared for release, buf[ok:end] are awaiting inspection or held.
	buf            []byte
	start, ok, end int

	state     guardState
	out       string // synthetic bytes to release next
	err       error  // stateFailed's error
	readErr   error  // an error that came with data, due after that data
	headArmed bool

	hijacked  atomic.Bool
	idle      atomic.Int64 // requests net/http has completed on this connection
	linger    atomic.Bool
	lingering atomic.Bool // a lingering close is under way

	dl struct {
		mu sync.Mutex
		// want is the read deadline net/http asked for; head is the guard's
		// own deadline for an incomplete head; the earlier one applies.
		want, head time.Time
	}
}

// tlsGuardConn is a guardConn over TLS. Its ConnectionState method makes
// net/http set Request.TLS, as it would for a *tls.Conn.
type tlsGuardConn struct {
	*guardConn
	state tls.ConnectionState
}

// ConnectionState returns the state of the finished TLS handshake.
func (c *tlsGuardConn) ConnectionState() tls.ConnectionState { return c.state }

// guarded is implemented by both guard connection types, for the
// connection-state hook.
type guarded interface{ guard() *guardConn }

func (g *guardConn) guard() *guardConn { return g }

func newGuard(c net.Conn, raw *trackedConn, pool *bufPool, maxHead int, headTimeout time.Duration) *guardConn {
	return &guardConn{
		Conn:        c,
		raw:         raw,
		pool:        pool,
		headTimeout: headTimeout,
		// Room for a whole head plus one byte, to tell "over the limit"
		// from "exactly at it".
		maxBuf: maxHead + 1,
		in:     inspector{maxHead: maxHead},
	}
}

// Read returns request bytes in stream order once they are inspected.
func (g *guardConn) Read(p []byte) (int, error) {
	n, err := g.read(p)
	if err != nil && g.state == stateInspect && (g.in.mode == modeLength || g.in.mode == modeChunked) {
		// A read failed in the middle of a body (a read deadline, the
		// proxy giving up on a body after an early answer, the client
		// leaving): the connection will close with the rest of the body
		// possibly still arriving, so it closes lingering, as after a
		// refusal.
		g.linger.Store(true)
	}
	return n, err
}

func (g *guardConn) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for empty := 0; ; {
		if g.start < g.ok {
			n := copy(p, g.buf[g.start:g.ok])
			g.start += n
			g.recycle()
			return n, nil
		}
		if g.out != "" {
			n := copy(p, g.out)
			g.out = g.out[n:]
			return n, nil
		}
		switch g.state {
		case stateRejected:
			return 0, io.EOF
		case stateOversize:
			for i := range p {
				p[i] = 'a'
			}
			return len(p), nil
		case stateFailed:
			return 0, g.err
		case statePass:
			if g.start < g.end {
				g.ok = g.end
				continue
			}
			if err := g.readErr; err != nil {
				g.readErr = nil
				return 0, err
			}
			return g.Conn.Read(p)
		}
		if err := g.readErr; err != nil {
			g.readErr = nil
			return 0, err
		}
		if g.hijacked.Load() {
			// The handler owns the connection now (a WebSocket or other
			// tunnel): what is buffered goes out unchanged, then the socket.
			g.state, g.ok = statePass, g.end
			g.armHeadTimer(false)
			continue
		}
		if g.in.mode == modeHold && g.idle.Load() >= g.in.holdAfter {
			// The possible protocol switch did not happen and net/http is
			// waiting for the next request: the held bytes are its head.
			g.in.resume()
		}

		if g.ok < g.end && g.in.mode != modeHold {
			n, why := g.in.inspect(g.buf[g.ok:g.end])
			g.ok += n
			if g.stop(why) {
				g.end = g.ok
				continue
			}
			if n > 0 {
				continue
			}
		}
		if g.ok < g.end || g.in.mode == modeHold || len(p) < minDirectRead {
			n, err := g.fill()
			if err != nil {
				if n == 0 {
					return 0, err
				}
				g.readErr = err
			}
			if n == 0 && err == nil && g.state == stateInspect {
				if empty++; empty > maxEmptyReads {
					return 0, io.ErrNoProgress
				}
			}
			continue
		}

		// Nothing is buffered: read straight into p and inspect in place,
		// which spares a copy of every body byte.
		n, err := g.Conn.Read(p)
		if n > 0 {
			k, why := g.in.inspect(p[:n])
			if !g.stop(why) && k < n {
				// An incomplete head or held bytes wait in the buffer.
				if !g.stash(p[k:n]) {
					g.fail(errHoldOverflow, RejectUpgradeOverflow)
				}
			}
			if err != nil {
				g.readErr = err
			}
			if k > 0 {
				return k, nil
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		if empty++; empty > maxEmptyReads {
			return 0, io.ErrNoProgress
		}
	}
}

var errHoldOverflow = fmt.Errorf("too much data before a protocol switch completed")

// stop applies an inspection result: it arms or clears the head timer and
// switches state when the stream cannot continue. It reports whether the
// bytes after the inspected ones are to be dropped.
func (g *guardConn) stop(why stopReason) bool {
	// While a request is in flight, bytes of the next one are read ahead
	// (net/http's background read), and its head may well be incomplete.
	// net/http's header timeout starts only once it reads that head, and so
	// does the guard's: timing it out now would fail the background read,
	// which cancels the request still being served.
	g.armHeadTimer(why == stopNeedHead && !g.inFlight())
	switch why {
	case stopReject:
		g.state, g.out = stateRejected, rejectHead
		g.linger.Store(true)
		g.reject(g.in.refusal)
	case stopOversize:
		g.state, g.out = stateOversize, oversizeHead
		g.reject(RejectHeadTooLarge)
	case stopBodyError:
		g.fail(g.in.err, RejectBadChunked)
	default:
		return false
	}
	return true
}

// inFlight reports whether net/http is still serving the last request whose
// head the guard released.
func (g *guardConn) inFlight() bool { return g.in.heads > g.idle.Load() }

// reject reports a refusal to Config.OnReject.
func (g *guardConn) reject(reason string) {
	if f := g.raw.srv.cfg.OnReject; f != nil {
		f(reason)
	}
}

// fail makes every later Read return err, and reports the refusal. The
// error is a *net.OpError for a read, which net/http treats as the client
// going away: it fails the handler's body read, and the bytes after the bad
// body are never parsed as a request.
func (g *guardConn) fail(err error, reason string) {
	g.reject(reason)
	g.state = stateFailed
	g.err = &net.OpError{Op: "read", Net: "tcp", Source: g.LocalAddr(), Addr: g.RemoteAddr(), Err: fmt.Errorf("http request framing: %w", err)}
	g.linger.Store(true)
}

// fill reads from the connection into the buffer. A full buffer can only be
// held bytes (heads stop at the limit first), which fails the connection.
func (g *guardConn) fill() (int, error) {
	if !g.makeRoom() {
		g.fail(errHoldOverflow, RejectUpgradeOverflow)
		return 0, nil
	}
	n, err := g.Conn.Read(g.buf[g.end:])
	g.end += n
	return n, err
}

func (g *guardConn) makeRoom() bool {
	if g.buf == nil {
		g.buf = g.pool.get()
		return true
	}
	if g.start > 0 && len(g.buf)-g.end < minDirectRead {
		n := copy(g.buf, g.buf[g.start:g.end])
		g.ok -= g.start
		g.start, g.end = 0, n
	}
	if g.end < len(g.buf) {
		return true
	}
	if len(g.buf) >= g.maxBuf {
		return false
	}
	nb := make([]byte, min(2*len(g.buf), g.maxBuf))
	copy(nb, g.buf[:g.end])
	g.pool.put(g.buf)
	g.buf = nb
	return true
}

// stash moves bytes left over from an in-place read into the buffer, which is
// empty whenever Read inspects in place.
func (g *guardConn) stash(b []byte) bool {
	if len(b) > g.maxBuf {
		return false
	}
	if g.buf == nil || len(g.buf) < len(b) {
		g.pool.put(g.buf)
		if len(b) <= poolBufSize {
			g.buf = g.pool.get()
		} else {
			g.buf = make([]byte, min(max(2*len(b), 2*poolBufSize), g.maxBuf))
		}
	}
	g.start, g.ok, g.end = 0, 0, copy(g.buf, b)
	return true
}

// recycle returns an emptied buffer to the pool, so that idle keep-alive
// connections hold no buffer.
func (g *guardConn) recycle() {
	if g.start == g.end && g.buf != nil {
		g.pool.put(g.buf)
		g.buf = nil
		g.start, g.ok, g.end = 0, 0, 0
	}
}

// armHeadTimer starts or stops the guard's own header timeout. net/http only
// starts ReadHeaderTimeout once four bytes of the next request are readable,
// and the guard releases nothing before a whole head, so without this a
// keep-alive connection could trickle a head for the whole IdleTimeout.
func (g *guardConn) armHeadTimer(arm bool) {
	if arm == g.headArmed || g.headTimeout <= 0 {
		return
	}
	g.headArmed = arm
	g.dl.mu.Lock()
	defer g.dl.mu.Unlock()
	if arm {
		g.dl.head = time.Now().Add(g.headTimeout)
	} else {
		g.dl.head = time.Time{}
	}
	g.applyReadDeadlineLocked()
}

func (g *guardConn) applyReadDeadlineLocked() error {
	t := g.dl.want
	if h := g.dl.head; !h.IsZero() && (t.IsZero() || h.Before(t)) {
		t = h
	}
	return g.Conn.SetReadDeadline(t)
}

// SetReadDeadline records the deadline net/http wants; the guard's head
// timeout may apply an earlier one.
func (g *guardConn) SetReadDeadline(t time.Time) error {
	g.dl.mu.Lock()
	defer g.dl.mu.Unlock()
	g.dl.want = t
	return g.applyReadDeadlineLocked()
}

// SetDeadline sets the write deadline and, through SetReadDeadline, the
// read deadline.
func (g *guardConn) SetDeadline(t time.Time) error {
	err := g.Conn.SetWriteDeadline(t)
	if rerr := g.SetReadDeadline(t); err == nil {
		err = rerr
	}
	return err
}

// noteIdle is called when net/http has finished a request and keeps the
// connection open.
func (g *guardConn) noteIdle() { g.idle.Add(1) }

// noteHijacked is called when a handler takes the connection over.
func (g *guardConn) noteHijacked() { g.hijacked.Store(true) }

// CloseWrite half-closes the connection, after a TLS close_notify when it is
// TLS. net/http uses it to end a response before it hangs up.
func (g *guardConn) CloseWrite() error {
	var err error
	if tc, ok := g.Conn.(*tls.Conn); ok {
		err = tc.CloseWrite()
	}
	if rerr := g.raw.CloseWrite(); err == nil {
		err = rerr
	}
	return err
}

// Close closes the connection. After a refused request, or a body read that
// failed midway, it first drains what the client already sent, for up to
// lingerTimeout, so that the client's kernel does not receive a reset that
// could destroy the answer (a 400, an upstream's early 413) before it is
// read. That happens on a goroutine of its own: net/http closes
// connections under its server lock when it shuts down, and it must not wait
// out one lingering close after another. A forced drain closes at once, and
// so does a close that comes after Serve stopped waiting for lingering
// closes.
//
// Close may run on net/http's connection goroutine and, for the same
// connection, on the goroutine of http.Server.Shutdown (which closes
// connections it sees as idle and returns without waiting for their
// goroutines); only the first one lingers. The WaitGroup is joined through
// startLinger, not directly: the loser of the CompareAndSwap returns at
// once, so Shutdown, and then Serve, can finish before the winner got to
// the Add.
func (g *guardConn) Close() error {
	srv := g.raw.srv
	if g.linger.Load() && !srv.forceClosing.Load() {
		if !g.lingering.CompareAndSwap(false, true) {
			return nil // the lingering goroutine closes it
		}
		if !srv.startLinger() {
			return g.Conn.Close()
		}
		go func() {
			defer srv.lingerWG.Done()
			g.lingerClose()
			g.Conn.Close()
		}()
		return nil
	}
	return g.Conn.Close()
}

// lingerClose half-closes the connection and reads until the client closes
// its side, lingerTimeout passes or lingerMaxBytes arrive.
func (g *guardConn) lingerClose() {
	_ = g.CloseWrite()
	_ = g.raw.SetReadDeadline(time.Now().Add(lingerTimeout))
	var buf [2048]byte
	for n := 0; n < lingerMaxBytes; {
		k, err := g.raw.Read(buf[:])
		n += k
		if err != nil {
			return
		}
	}
}

// detectPreface reads until it knows whether the connection starts with the
// HTTP/2 preface, keeping what it read for whoever serves the connection.
func (g *guardConn) detectPreface() (bool, error) {
	var err error
	for empty := 0; ; {
		have := g.buf[g.ok:g.end]
		n := min(len(have), len(h2Preface))
		if string(have[:n]) != h2Preface[:n] {
			return false, nil
		}
		if n == len(h2Preface) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		var k int
		if k, err = g.fill(); k == 0 && err == nil {
			if g.state == stateFailed {
				return false, g.err
			}
			if empty++; empty > maxEmptyReads {
				return false, io.ErrNoProgress
			}
		}
	}
}

// replay returns the connection for the HTTP/2 server, with the bytes
// detectPreface read put back in front.
func (g *guardConn) replay() net.Conn {
	pending := append([]byte(nil), g.buf[g.start:g.end]...)
	g.pool.put(g.buf)
	g.buf = nil
	return &replayConn{Conn: g.Conn, pending: pending}
}

// poolBufSize is the size of pooled guard buffers; heads rarely exceed it.
const poolBufSize = 4096

// bufPool recycles guard buffers across connections.
type bufPool struct{ p sync.Pool }

func (bp *bufPool) get() []byte {
	if a, ok := bp.p.Get().(*[poolBufSize]byte); ok {
		return a[:]
	}
	return new([poolBufSize]byte)[:]
}

func (bp *bufPool) put(b []byte) {
	if cap(b) == poolBufSize {
		bp.p.Put((*[poolBufSize]byte)(b[:poolBufSize]))
	}
}
