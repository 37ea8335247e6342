package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/upstream"
)

// errNoEndpoints reports a backend with no endpoint to pick.
var errNoEndpoints = errors.New("backend has no endpoints")

// statusClientClosed is recorded (never sent) when the client went away
// before an answer, following nginx's 499.
const statusClientClosed = 499

// forward sends r to an endpoint of be and relays the answer.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, start time.Time, be *upstream.Backend, path, rawQuery string, hasQuery bool) {
	o, upgrade := p.newOutbound(w, r, path, rawQuery, hasQuery)
	if o.req.Body != nil {
		// Deferred so that it also runs when the handler aborts.
		defer finishBody(r, o)
	}
	res, err := p.roundTrip(o, be)
	if err != nil {
		p.upstreamError(w, r, o, start, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		p.tunnel(w, r, o, start, res, upgrade)
		return
	}
	defer res.Body.Close()
	p.relay(w, r, o, start, res, upgrade)
}

// finishBody releases the client's body when the handler is done. If the
// upstream answered before reading all of it, the Transport's write loop may
// still be blocked reading it, holding net/http's body lock: Close, and
// net/http's own cleanup after the handler, would then wait for the client
// to send more. Stopping the read first lets both go ahead at once, and
// closing makes any later read by the write loop fail instead of racing the
// server's cleanup of the connection.
func finishBody(r *http.Request, o *outbound) {
	if o.body.open() {
		o.body.stop()
	}
	r.Body.Close()
}

// roundTrip sends the request, moving on to another endpoint after a failed
// connect. Nothing was sent on such a failure, so this is safe for every
// method, provided the body was never read, which requestBody records.
func (p *Proxy) roundTrip(o *outbound, be *upstream.Backend) (*http.Response, error) {
	var triedBuf [DefaultMaxConnectAttempts]string
	tried := triedBuf[:0]
	var lastErr error
	for attempt := 1; ; attempt++ {
		addr, ok := be.Pick(tried)
		if !ok {
			if lastErr == nil {
				return nil, errNoEndpoints
			}
			return nil, lastErr
		}
		o.url.Host = addr
		rt := p.roundTripper
		if be.IsExternalName() {
			rt = p.externalTransport
		}
		res, err := rt.RoundTrip(&o.req)
		if err == nil {
			return res, nil
		}
		if !isDialError(err) {
			return nil, err
		}
		lastErr = err
		be.ReportConnectFailure(addr)
		if p.inst != nil {
			p.inst.ConnErr.Inc()
		}
		p.logUpstream(o.req.Context(), "upstream connect failed", addr, err)
		if attempt >= p.cfg.MaxConnectAttempts || o.body.read.Load() || o.req.Context().Err() != nil {
			return nil, err
		}
		tried = append(tried, addr)
		if p.inst != nil {
			p.inst.Retries.Inc()
		}
	}
}

// upstreamError answers a request whose upstream round trip failed. It
// never returns without writing a response: net/http would then send
// "200 OK" with an empty body, and a failed request would pass for a
// successful one.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, o *outbound, start time.Time, err error) {
	if berr := o.body.failed(); berr != nil && (r.ProtoMajor == 1 || r.Context().Err() == nil) {
		// The client's body broke (malformed chunked encoding, a body
		// shorter than its Content-Length, a framing error from the
		// listener's guard, a read timeout), which ended the round trip.
		// On HTTP/1 net/http cancels the request context on such an
		// error too, so this comes before the check for a client that
		// went away. On HTTP/2 a canceled context means the client
		// reset the stream: there is nobody to answer.
		p.clientBodyError(w, r, start, berr)
		return
	}
	if r.ProtoMajor == 1 && o.body.open() {
		// The rest of the body will not be read (finishBody stops the
		// read), so the connection cannot carry another request; saying
		// so also keeps net/http from reading the rest before it writes
		// this answer.
		w.Header()["Connection"] = p.hdr.close
	}
	switch {
	case errors.Is(err, errNoEndpoints):
		p.fail(w, start, &p.pages.unavailable, failNoEndpoints)
	case r.Context().Err() != nil:
		// The client went away (or half-closed its connection), which
		// canceled the upstream request. There is nobody to answer, and
		// an abort closes the connection (HTTP/1) or resets the stream
		// (HTTP/2) without the empty 200 net/http would make up.
		p.observe(statusClientClosed, start)
		panic(http.ErrAbortHandler)
	case isTimeout(err):
		p.logUpstream(r.Context(), "upstream timeout", "", err)
		p.fail(w, start, &p.pages.gatewayTimeout, failTimeout)
	case isDialError(err):
		p.fail(w, start, &p.pages.badGateway, failConnect)
	default:
		p.logUpstream(r.Context(), "upstream error", "", err)
		p.fail(w, start, &p.pages.badGateway, failError)
	}
}

// clientBodyError answers a request whose body could not be read: 408 if
// the client stopped sending (ClientBodyTimeout), 400 otherwise. On HTTP/1
// the connection is closed after the answer, since where the next request
// would start is unknown. (On HTTP/2, Connection: close would make the
// server send GOAWAY to every stream of the connection; the broken stream
// ends on its own.)
func (p *Proxy) clientBodyError(w http.ResponseWriter, r *http.Request, start time.Time, err error) {
	if r.ProtoMajor == 1 {
		w.Header()["Connection"] = p.hdr.close
	}
	if p.log.Enabled(r.Context(), slog.LevelDebug) {
		p.log.LogAttrs(r.Context(), slog.LevelDebug, "client request body", slog.String("client", r.RemoteAddr), slog.Any("error", err))
	}
	if isTimeout(err) {
		p.reject(w, start, &p.pages.requestTimeout, rejectBodyTimeout)
		return
	}
	p.reject(w, start, &p.pages.badRequest, rejectBody)
}

func (p *Proxy) logUpstream(ctx context.Context, msg, addr string, err error) {
	if !p.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, msg, slog.String("endpoint", addr), slog.Any("error", err))
}

// relay copies an upstream response to the client.
func (p *Proxy) relay(w http.ResponseWriter, r *http.Request, o *outbound, start time.Time, res *http.Response, upgrade bool) {
	h := w.Header()
	copyResponseHeader(h, res.Header)
	// Like nginx, Torii names itself; the backend's software and version
	// are nobody's business.
	h["Server"] = p.hdr.server
	// early: the upstream answered before the client's body was all read
	// (an immediate 413, a redirect, an auth failure). The client may be
	// paused mid-upload; the rest of its body will not be read.
	early := r.ProtoMajor == 1 && o.body.open()
	if upgrade || early {
		// A declined upgrade: the client may already be sending data in
		// the new protocol. An early answer: the rest of the body is
		// still on the connection. Either way it cannot carry another
		// request. For an early answer this also matters to net/http,
		// which otherwise reads the rest of the body before it writes
		// response headers; that read would queue behind the one the
		// Transport has in progress, and the answer would wait for the
		// client.
		h["Connection"] = p.hdr.close
	}
	var declared []string
	if len(res.Trailer) > 0 {
		declared = make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			declared = append(declared, k)
		}
		h["Trailer"] = []string{strings.Join(declared, ", ")}
	}
	// Without a Content-Length the response is a stream (chunked, or read
	// until close) whose parts must reach the client as they come; an
	// event stream may carry a length but is interactive all the same.
	// Everything else is left to net/http's buffering.
	var flusher http.Flusher
	if res.ContentLength < 0 || isEventStream(res.Header) || early {
		flusher, _ = unwrapAs[http.Flusher](w)
	}
	sd := p.newSendDeadline(w)
	if r.ProtoMajor == 1 {
		// On HTTP/1 the write deadline stays on the connection after the
		// handler returns, so it also bounds net/http's final flush
		// (net/http lifts it once the response is done). HTTP/2 sets it
		// on the first body write only: it costs a message to the
		// connection's serve loop.
		sd.renew()
	}
	w.WriteHeader(res.StatusCode)
	if flusher != nil {
		sd.renew()
		flusher.Flush()
	}
	werr, rerr := p.copyBody(w, res.Body, flusher, &sd)
	switch {
	case werr != nil:
		// The client went away or stopped reading (ClientSendTimeout).
		// The status is sent, so net/http makes nothing up; closing
		// res.Body drops the upstream connection mid-response.
		p.observe(res.StatusCode, start)
		return
	case rerr != nil:
		p.observe(res.StatusCode, start)
		if r.Context().Err() == nil && o.body.failed() == nil {
			if p.inst != nil {
				p.inst.Fail[failBody].Inc()
			}
			p.logUpstream(r.Context(), "upstream body", "", rerr)
		}
		// The status is sent; the only honest signal left is an aborted
		// response (a reset stream, or a connection closed before the
		// last chunk). Returning normally would end a chunked body
		// cleanly and the client would take a truncated body as whole.
		// That holds when the client's context is canceled too: a client
		// that half-closed its connection still reads the response.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range res.Trailer {
		if slices.Contains(declared, k) {
			h[k] = vv
		} else {
			h[http.TrailerPrefix+k] = vv
		}
	}
	if early && o.body.open() {
		// The whole answer goes out now; then the body read still in
		// progress is stopped, so that finishing the request does not
		// wait for a client that may never send the rest.
		o.body.stop()
	}
	p.observe(res.StatusCode, start)
}

// copyBody streams src to w with a pooled buffer, flushing after every write
// when flusher is non-nil and renewing the client write deadline before
// every write. It returns the write error (client side) or the read error
// (upstream side) that stopped it, both nil at EOF.
func (p *Proxy) copyBody(w io.Writer, src io.Reader, flusher http.Flusher, sd *sendDeadline) (werr, rerr error) {
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			sd.renew()
			if _, werr = w.Write(buf[:n]); werr != nil {
				return werr, nil
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// copyResponseHeader copies an upstream response header into dst, leaving
// out hop-by-hop headers and those the upstream's Connection header names.
// Value slices are shared: the upstream response is ours alone.
func copyResponseHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if hopByHop(k) || (len(conn) > 0 && hasToken(conn, k)) {
			continue
		}
		dst[k] = vv
	}
}

func isEventStream(h http.Header) bool {
	ct := h["Content-Type"]
	const es = "text/event-stream"
	return len(ct) > 0 && len(ct[0]) >= len(es) && strings.EqualFold(ct[0][:len(es)], es)
}
