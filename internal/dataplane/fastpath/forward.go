package fastpath

import (
	"errors"
	"io"
	"log/slog"
	"syscall"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/listener"
	"github.com/torii-dev/torii/internal/dataplane/upstream"
)

// exchange is the per-request scratch space: the outgoing bytes (the
// upstream request, then the client response) and the upstream read buffer.
// It is pooled, so a request allocates nothing.
type exchange struct {
	out        []byte
	ubuf       []byte
	upos, uend int // ubuf[upos:uend] is read and not yet relayed
	res        response
	trailer    []byte
	dec        listener.ChunkedDecoder
}

const (
	outBufSize = 16 << 10
	// upBufSize matches the proxy's body copy buffer.
	upBufSize = 32 << 10
)

func newExchange() *exchange {
	return &exchange{out: make([]byte, 0, outBufSize), ubuf: make([]byte, upBufSize)}
}

func (s *Server) getExchange() *exchange { return s.exchanges.Get().(*exchange) }

func (s *Server) putExchange(x *exchange) {
	// Buffers grown for a rare huge head are not kept.
	if cap(x.out) > 4*outBufSize {
		x.out = make([]byte, 0, outBufSize)
	}
	if len(x.ubuf) > upBufSize {
		x.ubuf = make([]byte, upBufSize)
	}
	x.res.reset()
	clear(x.res.fields[:cap(x.res.fields)])
	clear(x.res.connTokens[:cap(x.res.connTokens)])
	x.upos, x.uend = 0, 0
	s.exchanges.Put(x)
}

// makeRoom makes room after x.uend: by moving the unread bytes to the front,
// or, when keep is set (they are still referenced) or there is nothing to
// move, by growing the buffer.
func (x *exchange) makeRoom(keep bool) {
	if x.upos > 0 && !keep {
		n := copy(x.ubuf, x.ubuf[x.upos:x.uend])
		x.upos, x.uend = 0, n
		return
	}
	nb := make([]byte, 2*len(x.ubuf))
	copy(nb, x.ubuf[:x.uend])
	x.ubuf = nb
}

// errNoEndpoints reports a backend with no endpoint to pick.
var errNoEndpoints = errors.New("backend has no endpoints")

// clientBodyError is a failure reading the client's request body.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "client request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// forward sends the request to an endpoint of be and relays the answer.
//
// Connect failures move on to another endpoint (nothing was sent), up to
// MaxConnectAttempts, as in the proxy. A pooled connection the upstream had
// closed is replaced by a fresh one to the same endpoint, once, when the
// request can be sent again: its whole body was buffered, and nothing was
// written or the method is idempotent (net/http's Transport's rule).
func (c *conn) forward(be *upstream.Backend, start time.Time) outcome {
	s := c.s
	r := &c.req
	x := s.getExchange()
	defer s.putExchange(x)

	// The head, and whatever of the body is already read, go out in one
	// write. After this, the request's byte slices are dead: reading the
	// rest of the body may overwrite them.
	out := c.appendUpstreamHead(x.out[:0], r)
	switch {
	case r.chunked:
		c.dec = listener.ChunkedDecoder{}
		var err error
		if out, err = c.rechunk(out); err != nil {
			x.out = out
			return c.clientBodyFailed(err, start)
		}
	case r.length > 0:
		k := int(min(int64(c.rend-c.rpos), r.length))
		out = append(out, c.buf[c.rpos:c.rpos+k]...)
		c.rpos += k
		c.bodyLeft = r.length - int64(k)
		c.bodyConsumed = c.bodyLeft == 0
	}
	x.out = out
	whole := c.bodyConsumed // x.out holds the whole request: it can be sent again

	var triedBuf [DefaultMaxConnectAttempts]string
	tried := triedBuf[:0]
	external := be.IsExternalName()
	var lastErr error
	var addr string
	fresh := false
	for attempt := 1; ; {
		if !fresh {
			a, ok := be.Pick(tried)
			if !ok {
				if lastErr == nil {
					lastErr = errNoEndpoints
				}
				return c.upstreamFailed(lastErr, start)
			}
			addr = a
		}
		u, err := s.pool.get(addr, external, fresh)
		if err != nil {
			be.ReportConnectFailure(addr)
			retry := attempt < s.cfg.MaxConnectAttempts
			s.countConnectError(retry)
			s.logDebug("upstream connect failed", slog.String("endpoint", addr), slog.Any("error", err))
			if !retry {
				return c.upstreamFailed(err, start)
			}
			lastErr = err
			tried = append(tried, addr)
			attempt++
			fresh = false
			continue
		}
		early, written, got, err := c.roundTrip(u, x)
		if err == nil {
			return c.relay(u, x, start, early)
		}
		u.close()
		if err == errClientGone {
			// As the proxy: nobody to answer; recorded as nginx's 499.
			s.observe(statusClientClosed, start)
			return closeConn
		}
		var cbe *clientBodyError
		if errors.As(err, &cbe) {
			return c.clientBodyFailed(cbe.err, start)
		}
		if !fresh && u.reused && whole && got == 0 && (!written || r.idempotent) && isClosedConn(err) {
			fresh = true
			continue
		}
		return c.upstreamFailed(err, start)
	}
}

// isClosedConn reports whether err says the upstream closed or reset the
// connection, as it does with a pooled connection it dropped while idle.
func isClosedConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// roundTrip writes the request in x.out on u, streams the rest of the body
// from the client, and reads the response head into x. written reports
// whether any byte was written, got how many bytes of response arrived.
// early is set when the upstream stopped taking the request body and
// answered (say 413): the answer is relayed and the client connection closed.
func (c *conn) roundTrip(u *upConn, x *exchange) (early, written bool, got int, err error) {
	cfg := &c.s.cfg
	send := int64(cfg.UpstreamSendTimeout)
	u.setWriteDeadline(monoNow()+send, slackFor(send))
	n, err := u.nc.Write(x.out)
	written = n > 0
	if err == nil && !c.bodyConsumed {
		var cerr error
		cerr, err = c.streamBody(u, x)
		if cerr != nil {
			return false, true, 0, &clientBodyError{err: cerr}
		}
	}
	if err != nil {
		if !written {
			return false, false, 0, err
		}
		// The upstream may have stopped reading because it answered
		// already; such an answer is waiting in the socket buffer.
		wait := int64(100 * time.Millisecond)
		if errors.Is(err, errUpstreamSpoke) {
			// It is answering: the head gets the usual time.
			wait = int64(cfg.ResponseHeaderTimeout)
		}
		got, rerr := readResponse(c, u, x, c.req.isHead, wait)
		switch {
		case c.stopWatch():
			return false, true, got, errClientGone
		case rerr == nil:
			return true, true, got, nil
		}
		return false, true, 0, err
	}
	got, err = readResponse(c, u, x, c.req.isHead, int64(cfg.ResponseHeaderTimeout))
	if c.stopWatch() {
		return false, true, got, errClientGone
	}
	return false, true, got, err
}

// errUpstreamSpoke reports an upstream that answered (or closed the
// connection) before the request body was all sent, while the client was
// pausing: its answer is relayed at once, as by the proxy.
var errUpstreamSpoke = errors.New("upstream answered before the request body ended")

// errClientGone reports a client that went away while its request waited
// for the upstream.
var errClientGone = errors.New("client went away")

// startWatch watches the client connection for the client going away
// while u is slow to answer (see clientWatch).
func (c *conn) startWatch(u *upConn) {
	// The watch waits without a deadline; stopWatch sets one in the past
	// to end it, and the next read sets its own again.
	c.rdl = 0
	_ = c.nc.SetReadDeadline(time.Time{})
	c.watch.start(c.rawConn, u.nc)
	c.watching = true
}

// stopWatch ends a watch, if one is running, and reports whether the client
// went away.
func (c *conn) stopWatch() bool {
	if !c.watching {
		return false
	}
	c.watching = false
	_ = c.nc.SetReadDeadline(aLongTimeAgo)
	<-c.watch.done
	c.rdl = -1 // unknown: the next read sets its deadline
	return c.watch.gone.Load()
}

// aLongTimeAgo is a deadline in the past: a blocked read returns at once.
var aLongTimeAgo = time.Unix(1, 0)

// streamBody sends the part of the request body not read yet from the
// client to u. cerr is a failure of the client's body (timeout, early EOF,
// malformed chunking), err one of the upstream write.
func (c *conn) streamBody(u *upConn, x *exchange) (cerr, err error) {
	send := int64(c.s.cfg.UpstreamSendTimeout)
	if !c.req.chunked {
		buf := x.ubuf
		for c.bodyLeft > 0 {
			n, rerr := c.readBody(buf[:min(int64(len(buf)), c.bodyLeft)], u)
			if rerr == errUpstreamSpoke {
				return nil, rerr
			}
			if n > 0 {
				c.bodyLeft -= int64(n)
				u.setWriteDeadline(monoNow()+send, slackFor(send))
				if _, err := u.nc.Write(buf[:n]); err != nil {
					return nil, err
				}
				continue
			}
			if rerr == nil || rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return rerr, nil
		}
		c.bodyConsumed = true
		return nil, nil
	}
	for !c.bodyConsumed {
		n, rerr := c.fillBody(u)
		if rerr == errUpstreamSpoke {
			return nil, rerr
		}
		if n == 0 {
			if rerr == nil || rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return rerr, nil
		}
		out, derr := c.rechunk(x.ubuf[:0])
		if len(out) > 0 {
			u.setWriteDeadline(monoNow()+send, slackFor(send))
			if _, err := u.nc.Write(out); err != nil {
				return nil, err
			}
		}
		if derr != nil {
			return derr, nil
		}
	}
	return nil, nil
}

// rechunk decodes the chunked body bytes in the read buffer and appends them
// to out re-framed: one chunk per run of data, no extensions, no trailers
// (net/http's Transport does not forward undeclared request trailers),
// the last chunk once the body ends.
func (c *conn) rechunk(out []byte) ([]byte, error) {
	for c.rpos < c.rend {
		n, part, done, err := c.dec.Decode(c.buf[c.rpos:c.rend])
		if err != nil {
			c.reject(listener.RejectBadChunked)
			return out, err
		}
		if part == listener.ChunkData {
			out = appendChunkHeader(out, n)
			out = append(out, c.buf[c.rpos:c.rpos+n]...)
			out = append(out, "\r\n"...)
		}
		c.rpos += n
		if done {
			c.bodyConsumed = true
			return append(out, "0\r\n\r\n"...), nil
		}
	}
	return out, nil
}

func appendChunkHeader(b []byte, n int) []byte {
	const hex = "0123456789abcdef"
	var buf [16]byte
	i := len(buf)
	for {
		i--
		buf[i] = hex[n&15]
		n >>= 4
		if n == 0 {
			break
		}
	}
	b = append(b, buf[i:]...)
	return append(b, "\r\n"...)
}

// clientBodyFailed answers a request whose body could not be read: 408 if
// the client stopped sending (ClientBodyTimeout), 400 otherwise, and the
// connection closes, as in the proxy.
func (c *conn) clientBodyFailed(err error, start time.Time) outcome {
	c.bodyConsumed = false
	c.logDebug("client request body", err)
	if isTimeout(err) {
		c.s.countReject(rejectBodyTimeout)
		return c.sendPage(&c.s.pages.requestTimeout, start, true)
	}
	c.s.countReject(rejectBody)
	return c.sendPage(&c.s.pages.badRequest, start, true)
}

// upstreamFailed answers a request the upstream side could not serve, with
// the proxy's status for the failure. The connection closes if the body was
// not all read.
func (c *conn) upstreamFailed(err error, start time.Time) outcome {
	s := c.s
	var pg *page
	switch {
	case errors.Is(err, errNoEndpoints):
		s.countFail(failNoEndpoints)
		pg = &s.pages.unavailable
	case isTimeout(err):
		s.logDebug("upstream timeout", slog.Any("error", err))
		s.countFail(failTimeout)
		pg = &s.pages.gatewayTimeout
	case isDialError(err):
		s.countFail(failConnect)
		pg = &s.pages.badGateway
	case errors.Is(err, errUnrequestedUpg):
		s.countFail(failProtocol)
		pg = &s.pages.badGateway
	case errors.As(err, new(bodyError)):
		s.logDebug("upstream body", slog.Any("error", err))
		s.countFail(failBody)
		pg = &s.pages.badGateway
	default:
		s.logDebug("upstream error", slog.Any("error", err))
		s.countFail(failError)
		pg = &s.pages.badGateway
	}
	return c.sendPage(pg, start, !c.bodyConsumed)
}
