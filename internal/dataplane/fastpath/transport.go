package fastpath

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/torii-dev/torii/internal/dataplane/listener"
)

// Transport is the upstream side of the fast path offered to the proxy's
// net/http path, which serves HTTP/2 streams and the HTTP/1 requests the
// fast path hands off. It sends a request without a body (GET or HEAD, no
// upgrade) over the fast path's pooled upstream connections, on the
// calling goroutine, and parses the answer with the fast path's strict
// parser; every other request goes to the fallback, the proxy's
// http.Transport.
//
// net/http's Transport runs two goroutines per upstream connection and
// hands every request and response between them and the caller; for a
// small answer to an HTTP/2 stream that is about a third of the proxy's
// CPU per request. Here the caller writes the request and reads the answer
// itself, as nginx does.
//
// It keeps the Transport's contract with the proxy: dial failures are
// marked (proxy.ConnectFailure) so the proxy tries another endpoint, a
// response head late by ResponseHeaderTimeout is a timeout error, a
// canceled request context ends a wait at once, a pooled connection the
// upstream closed is replaced once (GET and HEAD can be replayed), and the
// response's Header, ContentLength and Trailer mean what the Transport's
// do. Where it differs it is stricter, as the fast path is (see package
// doc): ambiguous framing and malformed heads are errors (502).
type Transport struct {
	s        *Server
	fallback http.RoundTripper
}

// Transport returns a Transport using s's upstream pool and timeouts, with
// fallback for the requests it does not send itself.
func (s *Server) Transport(fallback http.RoundTripper) *Transport {
	return &Transport{s: s, fallback: fallback}
}

// takes reports whether t sends req itself.
func takes(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody || req.ContentLength != 0 {
		return false
	}
	if req.URL == nil || req.URL.Scheme != "http" || req.URL.Host == "" {
		return false
	}
	// An upgrade needs the connection handed over as a tunnel; an
	// expectation or a trailer declaration needs the Transport's
	// handling. None of them comes with a body-less GET or HEAD worth a
	// fast path.
	h := req.Header
	return len(h["Upgrade"]) == 0 && len(h["Connection"]) == 0 && len(h["Expect"]) == 0 && len(req.Trailer) == 0
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !takes(req) {
		return t.fallback.RoundTrip(req)
	}
	s := t.s
	x := s.getExchange()
	out, err := appendRequestHead(x.out[:0], req)
	x.out = out
	if err != nil {
		s.putExchange(x)
		return nil, err
	}
	ctx := req.Context()
	isHead := req.Method == http.MethodHead
	fresh := false
	for {
		u, err := s.pool.get(req.URL.Host, false, fresh)
		if err != nil {
			s.putExchange(x)
			return nil, err
		}
		cancel := watchContext(ctx, u)
		got, err := t.exchange(u, x, isHead)
		if err == nil {
			return t.response(req, u, x, cancel), nil
		}
		stopped := cancel == nil || cancel()
		u.close()
		if ctx.Err() != nil || !stopped {
			s.putExchange(x)
			return nil, context.Cause(ctx)
		}
		if !fresh && u.reused && got == 0 && isClosedConn(err) {
			// The upstream closed the pooled connection just before
			// the request reached it; GET and HEAD can be sent again.
			fresh = true
			continue
		}
		s.putExchange(x)
		return nil, err
	}
}

// watchContext makes a wait on u end at once when ctx is canceled (the
// client reset its stream or went away). The returned function stops the
// watch and reports whether it stopped it before it fired; nil if ctx can
// never be canceled.
//
// The watch closes the connection (which is dropped then anyway) rather
// than moving its deadlines into the past: the reads and writes that follow
// set deadlines of their own (and u.rdl/u.wdl would not know of the past
// one), which would undo a cancel that came before them.
func watchContext(ctx context.Context, u *upConn) func() bool {
	if ctx.Done() == nil {
		return nil
	}
	return context.AfterFunc(ctx, func() { _ = u.nc.Close() })
}

// exchange writes the request head in x.out on u and reads the response
// head into x. got counts the response bytes received.
func (t *Transport) exchange(u *upConn, x *exchange, isHead bool) (got int, err error) {
	cfg := &t.s.cfg
	send := int64(cfg.UpstreamSendTimeout)
	u.setWriteDeadline(monoNow()+send, slackFor(send))
	if _, err := u.nc.Write(x.out); err != nil {
		return 0, err
	}
	return readResponse(unwatched{}, u, x, isHead, int64(cfg.ResponseHeaderTimeout))
}

// appendRequestHead appends req's HTTP/1.1 head as net/http's Transport
// writes it for a request without a body: request line, Host, a non-empty
// User-Agent, then the header. Invalid names or values are refused, as the
// Transport refuses them.
func appendRequestHead(b []byte, req *http.Request) ([]byte, error) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return b, errors.New("http: invalid Host header")
	}
	b = append(b, req.Method...)
	b = append(b, ' ')
	b = append(b, req.URL.RequestURI()...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			// Written from the request's fields, or never for a
			// request without a body.
			continue
		case "User-Agent":
			// An empty value means none (the proxy sets it so that
			// the Transport adds no default of its own).
			if len(vv) == 0 || vv[0] == "" {
				continue
			}
			vv = vv[:1]
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return b, errors.New("net/http: invalid header field name " + strconv.Quote(k))
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return b, errors.New("net/http: invalid header field value for " + strconv.Quote(k))
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, strings.Trim(v, " \t")...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...), nil
}

var chunkedEncoding = []string{"chunked"}

// statusTexts holds Response.Status for the status codes up to 599, built
// once so that a response does not allocate it.
var statusTexts = func() (t [600]string) {
	for code := 100; code < len(t); code++ {
		t[code] = strconv.Itoa(code) + " " + http.StatusText(code)
	}
	return t
}()

// statusText is Response.Status for code, as the Transport makes it for
// a status line whose reason is the usual one.
func statusText(code int) string {
	if code < len(statusTexts) {
		return statusTexts[code]
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// response builds the *http.Response for the head in x.res, with a body
// reading the rest from u.
func (t *Transport) response(req *http.Request, u *upConn, x *exchange, cancel func() bool) *http.Response {
	r := &x.res
	res := &http.Response{
		Status:     statusText(r.status),
		StatusCode: r.status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: r.minor,
		Header:     make(http.Header, len(r.fields)+1),
		Close:      !r.keepAlive,
		Request:    req,
	}
	if r.minor == 0 {
		res.Proto = "HTTP/1.0"
	}
	var key []byte
	for i := range r.fields {
		f := &r.fields[i]
		if len(r.connTokens) > 0 && named(r.connTokens, f.name) {
			continue
		}
		if f.trailer {
			// The names the upstream announces, with values once the
			// body has been read (as the Transport does).
			for _, name := range bytes.Split(f.value, []byte(",")) {
				if name = listener.TrimOWS(name); len(name) > 0 {
					if res.Trailer == nil {
						res.Trailer = make(http.Header)
					}
					key = appendCanonicalKey(key[:0], name)
					res.Trailer[string(key)] = nil
				}
			}
			continue
		}
		key = appendCanonicalKey(key[:0], f.name)
		k := string(key)
		res.Header[k] = append(res.Header[k], string(f.value))
	}
	// As the Transport: the announced length, kept in Header too (on an
	// answer to HEAD as well), 0 for 204 and 304, -1 when unknown.
	res.ContentLength = -1
	if r.hasCL {
		res.Header["Content-Length"] = []string{strconv.FormatInt(r.length, 10)}
		res.ContentLength = r.length
	}
	if r.mode == bodyNone && req.Method != http.MethodHead {
		res.ContentLength = 0
	}
	if r.mode == bodyChunked {
		res.TransferEncoding = chunkedEncoding
	}
	b := &upstreamBody{t: t, u: u, x: x, cancel: cancel, mode: r.mode, left: r.length, keep: r.keepAlive, res: res}
	if r.mode == bodyNone || r.mode == bodyLength && r.length == 0 {
		// Nothing to read (an empty body is http.NoBody, as from the
		// Transport): the connection is free now, unless the upstream
		// asked to close it or sent bytes after the head.
		b.finish(b.keep && x.uend == x.upos)
		res.Body = http.NoBody
		return res
	}
	if r.mode == bodyChunked {
		x.dec = listener.ChunkedDecoder{}
		x.trailer = x.trailer[:0]
	}
	res.Body = b
	return res
}

// upstreamBody is an upstream response body read on the caller's
// goroutine. At its end the connection goes back to the pool, if the
// framing allows; a body closed before its end closes the connection.
type upstreamBody struct {
	t      *Transport
	u      *upConn
	x      *exchange
	cancel func() bool
	mode   bodyMode
	left   int64 // bodyLength: bytes still to come
	keep   bool
	// res is the response, whose Trailer is filled from a chunked
	// body's trailer section (undeclared fields too, as the Transport
	// does: Trailer is allocated for them if need be).
	res *http.Response
	err error // once set, every Read returns it
}

// errBodyClosed is what a Read after Close returns.
var errBodyClosed = errors.New("http: read on closed response body")

func (b *upstreamBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch b.mode {
	case bodyLength:
		n, err = b.readLength(p)
	case bodyChunked:
		n, err = b.readChunked(p)
	default:
		n, err = b.readUntilClose(p)
	}
	if err != nil {
		if err != io.EOF {
			b.finish(false)
		}
		b.err = err
	}
	return n, err
}

// read reads more of the body into p under the upstream read timeout. (A
// request context canceled meanwhile makes it fail at once; the proxy
// checks the context before it blames the upstream.)
func (b *upstreamBody) read(p []byte) (int, error) {
	readT := int64(b.t.s.cfg.UpstreamReadTimeout)
	return b.u.read(p, monoNow()+readT, slackFor(readT))
}

func (b *upstreamBody) readLength(p []byte) (int, error) {
	x := b.x
	var n int
	if avail := x.uend - x.upos; avail > 0 {
		n = copy(p[:min(int64(len(p)), b.left)], x.ubuf[x.upos:x.uend])
		x.upos += n
	} else {
		var err error
		n, err = b.read(p[:min(int64(len(p)), b.left)])
		if n == 0 && err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	b.left -= int64(n)
	if b.left == 0 {
		// Bytes after the body make the connection unusable.
		b.finish(b.keep && x.upos == x.uend)
		return n, io.EOF
	}
	return n, nil
}

func (b *upstreamBody) readChunked(p []byte) (int, error) {
	x := b.x
	k := 0
	for {
		for x.upos < x.uend && k < len(p) {
			in := x.ubuf[x.upos:x.uend]
			n, part, done, err := x.dec.Decode(in[:min(len(in), len(p)-k)])
			if err != nil {
				return k, err
			}
			switch part {
			case listener.ChunkData:
				k += copy(p[k:], in[:n])
			case listener.ChunkTrailer:
				x.trailer = append(x.trailer, in[:n]...)
			}
			x.upos += n
			if done {
				b.setTrailer(x.trailer)
				b.finish(b.keep && x.upos == x.uend)
				return k, io.EOF
			}
		}
		if k > 0 {
			// What arrived goes to the caller now; a stream must not
			// wait for the next chunk.
			return k, nil
		}
		x.upos, x.uend = 0, 0
		n, err := b.read(x.ubuf)
		x.uend = n
		if n == 0 && err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
}

func (b *upstreamBody) readUntilClose(p []byte) (int, error) {
	x := b.x
	if x.uend > x.upos {
		n := copy(p, x.ubuf[x.upos:x.uend])
		x.upos += n
		return n, nil
	}
	n, err := b.read(p)
	if err == io.EOF {
		b.finish(false)
	}
	return n, err
}

// setTrailer puts the trailer section fields (checked by the chunked
// decoder: "name: value" lines, then the final CRLF) into b.res.Trailer.
func (b *upstreamBody) setTrailer(sec []byte) {
	var key []byte
	for {
		line, rest, ok := cutLine(sec)
		if !ok || len(line) == 0 {
			return
		}
		sec = rest
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		if b.res.Trailer == nil {
			b.res.Trailer = make(http.Header)
		}
		key = appendCanonicalKey(key[:0], line[:colon])
		k := string(key)
		b.res.Trailer[k] = append(b.res.Trailer[k], string(listener.TrimOWS(line[colon+1:])))
	}
}

// finish releases the connection, to the pool when reuse is set and the
// request context's watch was stopped in time, and the exchange.
func (b *upstreamBody) finish(reuse bool) {
	if b.u == nil {
		return
	}
	if b.cancel != nil && !b.cancel() {
		reuse = false // its deadline is, or is about to be, in the past
	}
	if reuse {
		b.t.s.pool.put(b.u)
	} else {
		b.u.close()
	}
	b.u = nil
	b.t.s.putExchange(b.x)
	b.x = nil
}

// Close implements io.Closer: a body not read to its end closes the
// upstream connection.
func (b *upstreamBody) Close() error {
	b.finish(false)
	if b.err == nil {
		b.err = errBodyClosed
	}
	return nil
}
