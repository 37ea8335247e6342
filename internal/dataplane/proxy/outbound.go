package proxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
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
// a failed connect safe, and ignores Close: the Transport closes the body of a
// failed attempt, which would otherwise spoil the retry. The handler closes
// the real body when it returns.
type requestBody struct {
	src  io.ReadCloser
	read atomic.Bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if !b.read.Load() {
		b.read.Store(true)
	}
	return b.src.Read(p)
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
func (p *Proxy) newOutbound(r *http.Request, path, rawQuery string, hasQuery bool) (*outbound, bool) {
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
	if p.connTLS(r) != nil {
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

// connTLS returns the TLS state of r's connection, or nil for plain HTTP.
func (p *Proxy) connTLS(r *http.Request) *tls.ConnectionState {
	if p.cfg.ConnTLS != nil {
		if st := p.cfg.ConnTLS(r); st != nil {
			return st
		}
	}
	if r.TLS != nil {
		return r.TLS
	}
	return nil
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
