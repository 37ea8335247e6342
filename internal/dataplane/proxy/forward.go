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
	o, upgrade := p.newOutbound(r, path, rawQuery, hasQuery)
	if o.req.Body != nil {
		// If the upstream answered before reading the whole body, the
		// Transport's write loop may still be reading it after we return.
		// Closing it now makes that read fail instead of racing the
		// server's own cleanup of the connection.
		defer r.Body.Close()
	}
	res, err := p.roundTrip(o, be)
	if err != nil {
		p.upstreamError(w, r, start, err)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		p.tunnel(w, r, start, res, upgrade)
		return
	}
	defer res.Body.Close()
	p.relay(w, r, start, res, upgrade)
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
		res, err := p.roundTripper.RoundTrip(&o.req)
		if err == nil {
			return res, nil
		}
		if !isDialError(err) {
			return nil, err
		}
		lastErr = err
		be.ReportConnectFailure(addr)
		if p.inst != nil {
			p.inst.connErr.Inc()
		}
		p.logUpstream(o.req.Context(), "upstream connect failed", addr, err)
		if attempt >= p.cfg.MaxConnectAttempts || o.body.read.Load() || o.req.Context().Err() != nil {
			return nil, err
		}
		tried = append(tried, addr)
		if p.inst != nil {
			p.inst.retries.Inc()
		}
	}
}

// upstreamError answers a request whose upstream round trip failed.
func (p *Proxy) upstreamError(w http.ResponseWriter, r *http.Request, start time.Time, err error) {
	switch {
	case errors.Is(err, errNoEndpoints):
		p.fail(w, start, &p.pages.unavailable, failNoEndpoints)
	case r.Context().Err() != nil:
		// The client went away, which canceled the upstream request.
		// There is nobody to answer.
		p.observe(statusClientClosed, start)
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

func (p *Proxy) logUpstream(ctx context.Context, msg, addr string, err error) {
	if !p.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, msg, slog.String("endpoint", addr), slog.Any("error", err))
}

// relay copies an upstream response to the client.
func (p *Proxy) relay(w http.ResponseWriter, r *http.Request, start time.Time, res *http.Response, upgrade bool) {
	h := w.Header()
	copyResponseHeader(h, res.Header)
	// Like nginx, Torii names itself; the backend's software and version
	// are nobody's business.
	h["Server"] = p.hdr.server
	if upgrade {
		// The upstream declined the upgrade. The client may already be
		// sending data in the new protocol, so the connection cannot be
		// trusted for another request.
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
	if res.ContentLength < 0 || isEventStream(res.Header) {
		flusher = flusherOf(w)
	}
	w.WriteHeader(res.StatusCode)
	if flusher != nil {
		flusher.Flush()
	}
	werr, rerr := p.copyBody(w, res.Body, flusher)
	switch {
	case werr != nil:
		// The client went away; closing res.Body drops the upstream
		// connection mid-response.
		p.observe(res.StatusCode, start)
		return
	case rerr != nil:
		p.observe(res.StatusCode, start)
		if r.Context().Err() != nil {
			return
		}
		if p.inst != nil {
			p.inst.fail[failBody].Inc()
		}
		p.logUpstream(r.Context(), "upstream body", "", rerr)
		// The status is sent; the only honest signal left is an aborted
		// response (a reset stream, or a connection closed before the
		// last chunk). Returning normally would end a chunked body
		// cleanly and the client would take a truncated body as whole.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range res.Trailer {
		if slices.Contains(declared, k) {
			h[k] = vv
		} else {
			h[http.TrailerPrefix+k] = vv
		}
	}
	p.observe(res.StatusCode, start)
}

// copyBody streams src to w with a pooled buffer, flushing after every write
// when flusher is non-nil. It returns the write error (client side) or the
// read error (upstream side) that stopped it, both nil at EOF.
func (p *Proxy) copyBody(w io.Writer, src io.Reader, flusher http.Flusher) (werr, rerr error) {
	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
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

// flusherOf finds the http.Flusher of w, looking through wrappers that
// implement Unwrap as http.ResponseController does, without its allocation.
func flusherOf(w http.ResponseWriter) http.Flusher {
	for range 16 { // wrappers are few; the bound guards against a cycle
		if f, ok := w.(http.Flusher); ok {
			return f
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}
