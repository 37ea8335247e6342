package fastpath

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/listener"
)

// readBufSize is the initial size of a connection's read buffer; it grows up
// to the listener's head limit (plus one byte) for larger heads.
const readBufSize = 4096

// maxDiscardBytes is how much of an unread request body is read and dropped
// to keep a connection after Torii answered itself, as net/http does
// (its maxPostHandlerReadBytes).
const maxDiscardBytes = 256 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// conn is the fast path's state for one client connection. It is served by
// one goroutine, the listener's for the connection, and pooled afterwards.
type conn struct {
	s   *Server
	fc  *listener.FastConn
	nc  net.Conn
	tls bool
	// clientIP and localPort are X-Forwarded-For/X-Real-IP and
	// X-Forwarded-Port, computed once per connection.
	clientIP, localPort string

	readHeader, idle int64 // listener timeouts, ns
	maxHead          int

	// rbuf holds bytes read from the client; rbuf[rpos:rend] are unread.
	rbuf       *[]byte
	buf        []byte
	rpos, rend int
	// rdl and wdl are the read and write deadlines set on nc (monoNow
	// units, 0 for none); they are renewed only when off by more than a
	// slack, which spares a timer update on most requests.
	rdl, wdl int64
	// started is when the connection reached the fast path; headStart
	// when the first byte of the head being read arrived (0: none yet).
	started, headStart int64
	first              bool
	// skip is how many stray CR or LF bytes may still be dropped before
	// the next request line: net/http drops up to four after a POST, for
	// old clients that end a body with CRLF.
	skip int

	req request
	// bodyConsumed: the request body has been read to its end; bodyLeft is
	// what remains of a Content-Length body.
	bodyConsumed bool
	bodyLeft     int64
	// sent is set once a write of the current response was attempted.
	sent bool

	date dateCache
	dec  listener.ChunkedDecoder

	// rawConn is the client's socket, for watching it while an upstream
	// is slow (nil over TLS and where unsupported).
	rawConn  syscall.RawConn
	watch    clientWatch
	watching bool
}

func (c *conn) init(fc *listener.FastConn) {
	c.fc = fc
	c.nc = fc.Conn()
	c.tls = fc.TLS() != nil
	rh, idle, maxHead := fc.Limits()
	c.readHeader, c.idle, c.maxHead = int64(rh), int64(idle), maxHead
	c.clientIP = clientIP(c.nc.RemoteAddr())
	c.localPort = ""
	if a, ok := c.nc.LocalAddr().(*net.TCPAddr); ok {
		c.localPort = strconv.Itoa(a.Port)
	} else if a := c.nc.LocalAddr(); a != nil {
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			c.localPort = port
		}
	}
	c.rbuf = readBufs.Get().(*[]byte)
	c.buf = *c.rbuf
	c.buf = fc.TakeBuffered(c.buf[:0])
	c.rpos, c.rend = 0, len(c.buf)
	c.buf = c.buf[:cap(c.buf)]
	c.rdl, c.wdl = 0, 0
	c.started = monoNow()
	c.headStart = 0
	if c.rend > 0 {
		c.headStart = c.started
	}
	c.first = true
	c.skip = 0
	c.rawConn = nil
	if watchSupported() {
		if rc, ok := fc.SyscallConn(); ok {
			c.rawConn = rc
		}
	}
	c.dec = listener.ChunkedDecoder{}
}

// reset drops the connection's references before the conn is pooled.
func (c *conn) reset() {
	if cap(c.buf) == readBufSize {
		*c.rbuf = c.buf[:readBufSize]
		readBufs.Put(c.rbuf)
	}
	c.rbuf, c.buf = nil, nil
	c.fc, c.nc = nil, nil
	c.rawConn = nil
	c.req.reset()
	clear(c.req.fields[:cap(c.req.fields)])
	clear(c.req.connTokens[:cap(c.req.connTokens)])
}

// clientIP is proxy.clientIP of the connection's remote address: the
// address without brackets or port.
func clientIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	remoteAddr := a.String()
	i := strings.LastIndexByte(remoteAddr, ':')
	if i < 0 {
		return remoteAddr
	}
	host := remoteAddr[:i]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	if strings.IndexByte(host, ':') >= 0 {
		return remoteAddr
	}
	return host
}

// outcome is what becomes of the client connection after a request.
type outcome uint8

const (
	keepAlive   outcome = iota
	closeConn           // close it
	closeLinger         // close it, draining what the client still sends
)

// action is what readHead found.
type action uint8

const (
	actServe action = iota
	actHandoff
	actClose
)

// serve serves requests until the connection closes or goes to net/http.
func (c *conn) serve() {
	for {
		n, act := c.readHead()
		switch act {
		case actClose:
			c.fc.Close(false)
			return
		case actHandoff:
			c.fc.Handoff(c.buf[c.rpos:c.rend])
			return
		}
		start := time.Now()
		c.req.reset()
		if !c.s.parseRequest(c.buf[c.rpos:c.rpos+n], &c.req) {
			c.fc.Handoff(c.buf[c.rpos:c.rend])
			return
		}
		c.rpos += n
		c.headStart = 0
		c.bodyConsumed = !c.req.chunked && c.req.length == 0
		c.bodyLeft = 0
		switch c.serveRequest(start) {
		case closeConn:
			c.fc.Close(false)
			return
		case closeLinger:
			c.fc.Close(true)
			return
		}
		c.first = false
		c.skip = 0
		if c.req.isPost {
			c.skip = 4
		}
		if !c.fc.Idle() {
			c.fc.Close(false)
			return
		}
	}
}

// readHead reads until the buffer holds a whole request head at c.rpos and
// returns its length. A head net/http must see (a bare LF, a blank line
// before it, one over the size limit) is handed off; a head that does not
// complete in time, or a connection that closes, ends the connection
// without an answer, as net/http ends it.
func (c *conn) readHead() (int, action) {
	from := 0
	for empty := 0; ; {
		for c.skip > 0 && c.rpos < c.rend {
			if ch := c.buf[c.rpos]; ch != '\r' && ch != '\n' {
				c.skip = 0
				break
			}
			c.rpos++
			c.skip--
		}
		b := c.buf[c.rpos:c.rend]
		if len(b) > 0 && c.headStart == 0 {
			// Bytes of this head came with the last request.
			c.headStart = monoNow()
		}
		if len(b) > 0 {
			end := headEnd(b, &from)
			switch {
			case end < 0:
				return 0, actHandoff
			case end == 2:
				// A blank line where a request line belongs: net/http
				// skips it after a POST and refuses it otherwise.
				return 0, actHandoff
			case end > c.maxHead:
				return 0, actHandoff // 431 from net/http
			case end > 0:
				if !c.fc.Busy() {
					return 0, actClose
				}
				return end, actServe
			}
			if len(b) > c.maxHead {
				return 0, actHandoff
			}
		}
		now := monoNow()
		var want, slack int64
		switch {
		case len(b) > 0:
			want, slack = c.headStart+c.readHeader, slackFor(c.readHeader)
		case c.first:
			// net/http gives the first request ReadHeaderTimeout from
			// the start of the connection, no idle wait.
			want, slack = c.started+c.readHeader, slackFor(c.readHeader)
		default:
			want, slack = now+c.idle, slackFor(c.idle)
		}
		c.setReadDeadline(want, slack)
		n, err := c.fill()
		if n > 0 {
			if len(b) == 0 {
				c.headStart = monoNow()
				if !c.fc.Busy() {
					return 0, actClose
				}
			}
			continue
		}
		switch {
		case errors.Is(err, errBufferFull):
			return 0, actHandoff
		case err != nil:
			return 0, actClose
		}
		if empty++; empty > 100 {
			return 0, actClose // reads returning neither data nor error
		}
	}
}

var errBufferFull = errors.New("read buffer full")

// fill reads from the client into the buffer, making room first: the unread
// bytes move to the front, or the buffer grows up to the head limit.
func (c *conn) fill() (int, error) {
	if c.rpos == c.rend {
		c.rpos, c.rend = 0, 0
	}
	if c.rend == len(c.buf) {
		switch {
		case c.rpos > 0:
			n := copy(c.buf, c.buf[c.rpos:c.rend])
			c.rpos, c.rend = 0, n
		case len(c.buf) < c.maxHead+1:
			nb := make([]byte, min(2*len(c.buf), c.maxHead+1))
			copy(nb, c.buf[:c.rend])
			c.buf = nb
		default:
			return 0, errBufferFull
		}
	}
	n, err := c.nc.Read(c.buf[c.rend:])
	c.rend += n
	return n, err
}

func (c *conn) setReadDeadline(want, slack int64) {
	if d := want - c.rdl; d >= slack || -d >= slack {
		c.rdl = want
		_ = c.nc.SetReadDeadline(monoTime(want))
	}
}

// write writes b to the client within ClientSendTimeout.
func (c *conn) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	c.sent = true
	t := int64(c.s.cfg.ClientSendTimeout)
	want := monoNow() + t
	if d := want - c.wdl; d >= slackFor(t) || -d >= slackFor(t) {
		c.wdl = want
		_ = c.nc.SetWriteDeadline(monoTime(want))
	}
	_, err := c.nc.Write(b)
	return err
}

// readBody reads request body bytes from the client into p, within
// ClientBodyTimeout of the last progress. While the client pauses, the
// upstream u (if any) is checked every pollEvery without reading it: if it
// has answered or closed, errUpstreamSpoke ends the upload early.
func (c *conn) readBody(p []byte, u *upConn) (int, error) {
	t := int64(c.s.cfg.ClientBodyTimeout)
	last := monoNow()
	for {
		want := last + t
		if u != nil {
			want = min(want, monoNow()+pollEvery)
		}
		c.setReadDeadline(want, slackFor(min(t, pollEvery)))
		n, err := c.nc.Read(p)
		if n > 0 || err == nil || !isTimeout(err) || u == nil || monoNow()-last >= t {
			return n, err
		}
		if !u.alive() {
			return 0, errUpstreamSpoke
		}
	}
}

// pollEvery is how often a stalled request body upload checks whether the
// upstream has answered already.
const pollEvery = int64(time.Second)

// draining reports whether the listener is shutting down.
func (c *conn) draining() bool { return c.fc != nil && c.fc.Draining() }

// reject reports a refusal the guard would have reported.
func (c *conn) reject(reason string) {
	if c.fc != nil {
		c.fc.Reject(reason)
	}
}

// serveRequest routes the parsed request and answers it.
func (c *conn) serveRequest(start time.Time) outcome {
	r := &c.req
	be, ready, found := c.s.proxy.Lookup(unsafeString(r.host), r.path)
	switch {
	case !ready:
		c.s.countReject(rejectNotReady)
		return c.answer(&c.s.pages.unavailable, start)
	case !found:
		return c.answer(&c.s.pages.notFound, start)
	case be == nil:
		c.s.countFail(failNoEndpoints)
		return c.answer(&c.s.pages.unavailable, start)
	}
	return c.forward(be, start)
}

// answer sends one of Torii's pages to a request that reached no upstream.
// As net/http does after a handler that left the body unread, up to
// maxDiscardBytes of it are read and dropped first so the connection can be
// kept; a longer or broken body closes it.
func (c *conn) answer(pg *page, start time.Time) outcome {
	keep := c.discardBody()
	return c.sendPage(pg, start, !keep)
}

// sendPage writes pg, closing the connection after it when close is set or
// the client or a drain asks for it.
func (c *conn) sendPage(pg *page, start time.Time, close bool) outcome {
	x := c.s.getExchange()
	defer c.s.putExchange(x)
	close = close || c.req.wantsClose || c.draining()
	out := append(x.out[:0], pg.head...)
	out = append(out, "Date: "...)
	out = append(out, c.date.get(time.Now())...)
	out = append(out, "\r\n"...)
	if close {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)
	if !c.req.isHead {
		out = append(out, pg.body...)
	}
	x.out = out
	err := c.write(out)
	c.s.observe(pg.code, start)
	switch {
	case err != nil:
		return closeConn
	case close && !c.bodyConsumed:
		return closeLinger
	case close:
		return closeConn
	}
	return keepAlive
}

// discardBody reads and drops the request body, if it is short enough. It
// reports whether the connection can carry another request.
func (c *conn) discardBody() bool {
	r := &c.req
	if c.bodyConsumed {
		return true
	}
	c.bodyConsumed = true
	switch {
	case r.chunked:
		c.dec = listener.ChunkedDecoder{}
		for total := 0; ; {
			if c.rpos == c.rend {
				if total > maxDiscardBytes {
					c.bodyConsumed = false
					return false
				}
				n, err := c.fillBody(nil)
				total += n
				if n == 0 && err != nil {
					c.bodyConsumed = false
					return false
				}
			}
			k, _, done, err := c.dec.Decode(c.buf[c.rpos:c.rend])
			c.rpos += k
			if err != nil {
				c.reject(listener.RejectBadChunked)
				c.bodyConsumed = false
				return false
			}
			if done {
				return true
			}
		}
	case r.length > 0:
		left := r.length
		for {
			k := min(int64(c.rend-c.rpos), left)
			c.rpos += int(k)
			if left -= k; left == 0 {
				return true
			}
			if r.length-left > maxDiscardBytes {
				c.bodyConsumed = false
				return false
			}
			if n, err := c.fillBody(nil); n == 0 && err != nil {
				c.bodyConsumed = false
				return false
			}
		}
	}
	return true
}

// fillBody is fill for body bytes, with readBody's timeout and upstream
// check.
func (c *conn) fillBody(u *upConn) (int, error) {
	if c.rpos == c.rend {
		c.rpos, c.rend = 0, 0
	}
	if c.rend == len(c.buf) {
		if c.rpos == 0 {
			// Never the case for a body: decoding consumes what it reads.
			return 0, errBufferFull
		}
		n := copy(c.buf, c.buf[c.rpos:c.rend])
		c.rpos, c.rend = 0, n
	}
	n, err := c.readBody(c.buf[c.rend:], u)
	c.rend += n
	if err == nil && n == 0 {
		err = io.ErrNoProgress
	}
	return n, err
}

func (c *conn) logDebug(msg string, err error) {
	c.s.logDebug(msg, slog.String("client", c.clientIP), slog.Any("error", err))
}
