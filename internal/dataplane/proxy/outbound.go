package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
)

// Indexes into outbound.vals.
const (
	valForwardedFor = iota
	valRealIP
	valForwardedHost
	valForwardedPort
	valRequestID
	numVals
)

// outbound is everything one forwarded request needs, in a single
// allocation: the upstream request (a shallow copy of the client's, sharing
// its context and header map), its URL, the body wrapper, and backing storage
// for the per-request header values. It is not pooled: the Transport's write
// loop may still read the request after the handler returns.
type outbound struct {
	req  http.Request
	url  url.URL
	body requestBody
	vals [numVals]string
	// upConn is the upstream connection of an upgrade request, recorded
	// by a client trace so that a tunnel can take over its timeouts.
	upConn *upstreamConn
}

// val returns vals[i] as a one-element header value backed by the outbound
// struct. The capacity is clipped so an append elsewhere copies instead of
// overwriting the neighbouring value.
func (o *outbound) val(i int, v string) []string {
	o.vals[i] = v
	return o.vals[i : i+1 : i+1]
}

// requestBody wraps the client's body for the upstream request. It records
// whether the Transport ever read from it, which is what makes a retry after
// a failed connect safe, and how reading ended: at EOF, or with the first
// error, which tells a client that sent a broken body (answered 400) from
// one that went away. It applies ClientBodyTimeout as a read deadline on the
// client connection, renewed before every read. It ignores Close: the
// Transport closes the body of a failed attempt, which would otherwise spoil
// the retry; the handler closes the real body when it returns.
//
// Read is called by one goroutine at a time (the Transport's write loop);
// the other methods come from the handler.
type requestBody struct {
	src   io.ReadCloser
	read  atomic.Bool
	state atomic.Uint32 // bodyOpen, bodyEOF or bodyFailed
	err   error         // the first read error; written before state becomes bodyFailed

	// mu orders deadline changes: stop's deadline in the past must not be
	// overwritten by a renewal racing it.
	mu      sync.Mutex
	rd      readDeadliner // nil: the client connection has no deadlines
	dl      idleDeadline
	h1      bool
	stopped bool
}

const (
	bodyOpen uint32 = iota
	bodyEOF
	bodyFailed
)

func (b *requestBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	// Once the body has ended the deadline is left alone: on HTTP/1,
	// net/http lifts it when the body ends, for the background read with
	// which it notices the client leaving; that read must not inherit a
	// deadline (its expiry would cancel the request as if the client had
	// gone), and the Transport reads once more after the end.
	if b.rd != nil && b.state.Load() == bodyOpen {
		b.mu.Lock()
		if !b.stopped {
			if t, ok := b.dl.renew(); ok {
				_ = b.rd.SetReadDeadline(t)
			}
		}
		b.mu.Unlock()
	}
	n, err := b.src.Read(p)
	if err != nil && b.state.Load() == bodyOpen {
		if err == io.EOF {
			b.state.Store(bodyEOF)
		} else {
			b.err = err
			b.state.Store(bodyFailed)
		}
	}
	return n, err
}

// failed returns the error that ended reading the client's body, or nil.
func (b *requestBody) failed() error {
	if b.state.Load() == bodyFailed {
		return b.err
	}
	return nil
}

// open reports whether the body was neither read to its end nor failed.
func (b *requestBody) open() bool { return b.src != nil && b.state.Load() == bodyOpen }

// stop ends a read of the client's body that may still be blocked: on
// HTTP/1 net/http's body lock is held for that read, so closing the body
// (or net/http finishing the request) would wait for the client to send
// more. A deadline in the past makes the read fail at once.
func (b *requestBody) stop() {
	if b.rd == nil || !b.h1 {
		// Closing an HTTP/2 body wakes a blocked read by itself.
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	_ = b.rd.SetReadDeadline(aLongTimeAgo)
}

func (b *requestBody) Close() error { return nil }

// errBodyConsumed stops a replay of a request whose body was partly sent.
var errBodyConsumed = errors.New("request body already read; cannot replay")

// rewind is the upstream request's GetBody: the same, untouched body, or an
// error once any of it was read.
func (b *requestBody) rewind() (io.ReadCloser, error) {
	if b.read.Load() {
		return nil, errBodyConsumed
	}
	return b, nil
}

// newOutbound prepares the upstream request for r: the canonical path as the
// wire request target, the original raw query, the client's Host, a
// streaming body, and the header rewritten in place by rewriteHeader. It
// reports whether the request asks for a protocol upgrade that is to be
// forwarded.
func (p *Proxy) newOutbound(w http.ResponseWriter, r *http.Request, path, rawQuery string, hasQuery bool) (*outbound, bool) {
	o := &outbound{}
	// A struct copy is the only way to give the upstream request the
	// client's context without http.Request.WithContext's extra allocation.
	o.req = *r
	out := &o.req
	// Opaque makes URL.RequestURI() emit exactly this path: no re-escaping
	// by net/url can undo or alter the canonical form routing saw.
	o.url = url.URL{Scheme: "http", Opaque: path, RawQuery: rawQuery, ForceQuery: hasQuery && rawQuery == ""}
	out.URL = &o.url
	out.RequestURI = ""
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	// The client's "Connection: close" concerns the client connection only;
	// copying it would throw away a pooled upstream connection.
	out.Close = false
	out.TransferEncoding = nil
	if r.ContentLength == 0 {
		// A non-nil body with length 0 means "unknown" to the Transport,
		// which would then send an empty chunked body.
		out.Body = nil
	} else {
		o.body.src = r.Body
		if rd, ok := unwrapAs[readDeadliner](w); ok {
			o.body.rd, o.body.h1 = rd, r.ProtoMajor == 1
			o.body.dl = newIdleDeadline(p.cfg.ClientBodyTimeout)
		}
		out.Body = &o.body
		// A pooled upstream connection the backend has just closed fails
		// before anything is written; the Transport then replays the
		// request only if it can rewind the body. Ours can, as long as no
		// byte of it was read.
		out.GetBody = o.body.rewind
	}
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	upgrade := p.rewriteHeader(o, r)
	if upgrade {
		// A tunnel must lift the upstream connection's read timeout (it has
		// an idle timeout of its own), and the Transport hands it over
		// only as a body; a trace records the connection itself. Upgrades
		// are rare enough for the allocations.
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			o.upConn, _ = info.Conn.(*upstreamConn)
		}}
		o.req = *out.WithContext(httptrace.WithClientTrace(r.Context(), trace))
	}
	return o, upgrade
}

// rewriteHeader turns the client's header into the upstream request's, in
// place: hop-by-hop headers and those named by Connection are removed, the
// X-Forwarded-* set, X-Real-IP and X-Request-ID are set (client-supplied
// values are overwritten, never trusted), and User-Agent is kept as is.
func (p *Proxy) rewriteHeader(o *outbound, r *http.Request) (upgrade bool) {
	h := o.req.Header
	conn := h["Connection"]
	var upgradeVals []string
	if r.ProtoMajor == 1 && hasToken(conn, "upgrade") {
		// An h2c upgrade is never forwarded: the backend would switch to
		// HTTP/2 on a connection whose other end is the client's HTTP/1.1
		// one. The request is proxied as a plain request instead.
		if up := h["Upgrade"]; len(up) > 0 && !hasToken(up, "h2c") {
			upgradeVals = up
		}
	}
	teTrailers := hasToken(h["Te"], "trailers")
	requestID := ""
	if v := h["X-Request-Id"]; len(v) > 0 && validRequestID(v[0]) {
		requestID = v[0]
	}
	for k := range h {
		if hopByHop(k) || (len(conn) > 0 && hasToken(conn, k)) {
			delete(h, k)
		}
	}
	if upgradeVals != nil {
		h["Upgrade"] = upgradeVals
		h["Connection"] = p.hdr.upgrade
	}
	if teTrailers {
		h["Te"] = p.hdr.trailers
	}
	if _, ok := h["User-Agent"]; !ok {
		// An empty value stops the Transport from adding its own.
		h["User-Agent"] = p.hdr.empty
	}
	ip := clientIP(r.RemoteAddr)
	h["X-Forwarded-For"] = o.val(valForwardedFor, ip)
	h["X-Real-Ip"] = o.val(valRealIP, ip)
	scheme := p.hdr.http
	if r.TLS != nil {
		// net/http sets r.TLS for any connection with a ConnectionState
		// method, which the listener's TLS guard has; HTTP/2 over TLS
		// sets it as well.
		scheme = p.hdr.https
	}
	// X-Scheme and X-Forwarded-Scheme are what ingress-nginx sent, and
	// applications migrating from it read them; like every other
	// forwarding header they are Torii's word, never the client's.
	h["X-Forwarded-Proto"] = scheme
	h["X-Forwarded-Scheme"] = scheme
	h["X-Scheme"] = scheme
	// Other forwarding headers a client could use to spoof its origin are
	// dropped rather than passed on unverified.
	delete(h, "Forwarded")
	delete(h, "X-Original-Forwarded-For")
	delete(h, "X-Forwarded-Prefix")
	h["X-Forwarded-Host"] = o.val(valForwardedHost, r.Host)
	if port := p.localPort(r); port != "" {
		h["X-Forwarded-Port"] = o.val(valForwardedPort, port)
	} else {
		delete(h, "X-Forwarded-Port")
	}
	if requestID == "" {
		requestID = p.ids.next()
	}
	h["X-Request-Id"] = o.val(valRequestID, requestID)
	return upgradeVals != nil
}

// localPort returns the port of the local address the client connected to,
// as a cached string.
func (p *Proxy) localPort(r *http.Request) string {
	switch a := r.Context().Value(http.LocalAddrContextKey).(type) {
	case *net.TCPAddr:
		return p.ports.get(a.Port)
	case net.Addr:
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			return port
		}
	}
	return ""
}

// portCache maps port numbers to their decimal strings without allocating
// on a hit. A proxy listens on a handful of ports, so a small direct-mapped
// table always hits after warm-up.
type portCache struct {
	slots [16]atomic.Pointer[portString]
}

type portString struct {
	port int
	s    string
}

func (c *portCache) get(port int) string {
	slot := &c.slots[port&(len(c.slots)-1)]
	if ps := slot.Load(); ps != nil && ps.port == port {
		return ps.s
	}
	ps := &portString{port: port, s: strconv.Itoa(port)}
	slot.Store(ps)
	return ps.s
}
