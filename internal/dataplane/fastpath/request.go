package fastpath

import (
	"bytes"
	"strconv"
	"unsafe"

	"github.com/torii-dev/torii/internal/dataplane/listener"
	"github.com/torii-dev/torii/internal/urlpath"
)

// request is a parsed request head. Its byte slices and strings point into
// the connection's read buffer: they are valid until the buffer is read into
// again, which happens only after the upstream request head is built.
type request struct {
	method, host, query []byte
	hasQuery            bool
	// path is the canonical path; it may alias the read buffer.
	path string
	// ua is the first User-Agent, the only one net/http's Transport sends.
	ua        []byte
	hasUA     bool
	requestID []byte // a valid client X-Request-ID, or empty
	seenID    bool   // an X-Request-ID header was seen (only the first counts)

	isHead     bool
	isPost     bool
	teTrailers bool // a TE header lists "trailers"
	wantsClose bool // the (first) Connection header lists "close"
	idempotent bool // replayable on a fresh connection, as net/http's Transport judges

	length  int64 // Content-Length, 0 if none
	chunked bool

	// fields are the header fields forwarded as they are, unless a
	// Connection header names them; connTokens are the names it lists.
	fields     []field
	connTokens [][]byte
}

type field struct{ name, value []byte }

func (r *request) reset() {
	fields, tokens := r.fields[:0], r.connTokens[:0]
	*r = request{fields: fields, connTokens: tokens}
}

// headerKind classifies the request header fields the fast path treats
// specially.
type headerKind uint8

const (
	hOther       headerKind = iota
	hDrop                   // hop-by-hop or forwarding headers Torii sets itself: never forwarded
	hHandoff                // the request goes to net/http
	hHost                   // Host
	hFraming                // Content-Length, Transfer-Encoding: the guard's rules decide framing
	hConn                   // Connection
	hTE                     // TE
	hRequestID              // X-Request-ID
	hUserAgent              // User-Agent
	hIdempotency            // Idempotency-Key, X-Idempotency-Key: forwarded, and make a request replayable
)

const maxKindName = len("x-original-forwarded-for")

// kindOf classifies a header name, ignoring case.
func kindOf(name []byte) headerKind {
	if len(name) > maxKindName {
		return hOther
	}
	var buf [maxKindName]byte
	lower := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	// A switch on a converted []byte neither allocates nor hashes.
	switch string(lower) {
	case "host":
		return hHost
	case "content-length", "transfer-encoding":
		return hFraming
	case "connection":
		return hConn
	case "te":
		return hTE
	case "x-request-id":
		return hRequestID
	case "user-agent":
		return hUserAgent
	case "idempotency-key", "x-idempotency-key":
		return hIdempotency
	case "upgrade", "expect", "trailer":
		// Anything that changes how the request is read or answered is
		// net/http's: protocol switches (h2c included), 100-continue and
		// other expectations, declared trailers (which it forwards).
		return hHandoff
	case "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "http2-settings",
		// Hop-by-hop headers above (proxy.hopByHop); below, forwarding
		// headers Torii sets, or drops, whatever the client sent
		// (proxy.rewriteHeader).
		"x-forwarded-for", "x-real-ip", "x-forwarded-proto", "x-forwarded-scheme", "x-scheme",
		"x-forwarded-host", "x-forwarded-port", "forwarded", "x-original-forwarded-for", "x-forwarded-prefix":
		return hDrop
	}
	return hOther
}

// parseRequest parses a complete request head h (through the blank line). It
// returns false when the request must be handed to net/http: the guard
// would refuse it (net/http then answers exactly as it always does), or it
// uses something the fast path leaves to net/http. Only HTTP/1.1 requests in
// origin form with one valid Host header, CRLF line endings, a query needing
// no escaping and a path that canonicalises are served here.
func (s *Server) parseRequest(h []byte, r *request) bool {
	info, _, ok := listener.CheckHead(h)
	if !ok || info.Tunnel {
		return false
	}
	r.length, r.chunked = info.Length, info.Chunked

	line, rest, ok := cutLine(h)
	if !ok {
		return false
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return false
	}
	r.method = line[:sp]
	target := line[sp+1:]
	sp = bytes.IndexByte(target, ' ')
	if sp <= 0 || string(target[sp+1:]) != "HTTP/1.1" {
		// HTTP/1.0 (keep-alive rules of its own) goes to net/http.
		return false
	}
	target = target[:sp]
	switch string(r.method) {
	case "CONNECT", "TRACE":
		return false // 405 from the proxy
	case "GET", "OPTIONS":
		r.idempotent = true
	case "HEAD":
		r.idempotent, r.isHead = true, true
	case "POST":
		r.isPost = true
	}
	if target[0] != '/' {
		// Absolute form (net/http then routes by the URL's host), "*".
		return false
	}

	hosts := 0
	firstConn := true
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		name, value := line[:colon], listener.TrimOWS(line[colon+1:])
		switch kindOf(name) {
		case hOther:
			r.fields = append(r.fields, field{name, value})
		case hDrop, hFraming:
		case hHandoff:
			return false
		case hHost:
			hosts++
			r.host = value
		case hConn:
			if firstConn {
				// net/http's server looks at the first Connection
				// header only for "close".
				r.wantsClose = hasToken(value, "close")
				firstConn = false
			}
			r.connTokens = appendTokens(r.connTokens, value)
		case hTE:
			if hasToken(value, "trailers") {
				r.teTrailers = true
			}
		case hRequestID:
			if !r.seenID {
				// Only the first is considered, as by the proxy.
				r.seenID = true
				if validRequestID(value) {
					r.requestID = value
				}
			}
		case hUserAgent:
			if !r.hasUA {
				r.ua, r.hasUA = value, true
			}
		case hIdempotency:
			r.idempotent = true
			r.fields = append(r.fields, field{name, value})
		}
	}
	if hosts != 1 || !validHost(r.host) {
		// Missing, repeated or malformed (net/http answers 400), empty
		// (the Transport would send the endpoint address), or needing
		// punycode or zone removal: net/http's.
		return false
	}
	if r.chunked {
		switch string(r.method) {
		case "GET", "HEAD", "DELETE", "OPTIONS", "PROPFIND", "SEARCH":
			// net/http's Transport probes such bodies and may drop an
			// empty one; leave that to it.
			return false
		}
	}

	rawPath := target
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		rawPath, r.query, r.hasQuery = target[:i], target[i+1:], true
		for _, c := range r.query {
			if !queryOK[c] {
				// The proxy escapes or refuses it (see cleanQuery).
				return false
			}
		}
	}
	path, err := urlpath.Canonical(unsafeString(rawPath), s.pathOpts)
	if err != nil {
		// net/http or the proxy answers 400, and counts it.
		return false
	}
	r.path = path
	return true
}

// cutLine splits off the first line of b, which must end in CRLF. ok is
// false for a bare LF.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

// hasToken reports whether the comma-separated list v contains token (an
// ASCII lower-case constant), ignoring case.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var elem []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			elem, v = v, nil
		}
		if listener.EqualFoldLower(listener.TrimOWS(elem), token) {
			return true
		}
	}
	return false
}

// appendTokens appends the non-empty elements of the list v.
func appendTokens(dst [][]byte, v []byte) [][]byte {
	for len(v) > 0 {
		var elem []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			elem, v = v, nil
		}
		if elem = listener.TrimOWS(elem); len(elem) > 0 {
			dst = append(dst, elem)
		}
	}
	return dst
}

// named reports whether name is among tokens, ignoring case.
func named(tokens [][]byte, name []byte) bool {
	for _, t := range tokens {
		if bytes.EqualFold(t, name) {
			return true
		}
	}
	return false
}

// validRequestID is proxy.validRequestID: 1 to 128 characters from
// [A-Za-z0-9._:+/=-].
func validRequestID(s []byte) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '+', c == '/', c == '=', c == '-':
		default:
			return false
		}
	}
	return true
}

// hostOK is httpguts.ValidHostHeader's byte set minus '%' (an IPv6 zone,
// which the Transport would remove): a Host with anything else goes to
// net/http, which refuses it or rewrites it.
var hostOK = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!$&()*+,-.:;=[]'_~") {
		t[c] = true
	}
	return t
}()

func validHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	for _, c := range h {
		if !hostOK[c] {
			return false
		}
	}
	return true
}

// queryOK is proxy.queryOK: the bytes RFC 3986 allows raw in a query.
var queryOK = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%") {
		t[c] = true
	}
	return t
}()

// appendCanonicalKey appends name as net/http canonicalises a header key
// (textproto.CanonicalMIMEHeaderKey for a valid token): upper case at the
// start and after '-', lower case elsewhere.
func appendCanonicalKey(b, name []byte) []byte {
	upper := true
	for _, c := range name {
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
		upper = c == '-'
	}
	return b
}

// unsafeString views b as a string without copying. The string must not
// outlive b's contents.
func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// appendUpstreamHead appends the request head sent upstream, as the proxy
// and net/http's Transport would write it (header order aside): the
// canonical path and the query as sent, the client's Host, the first
// non-empty User-Agent, the client's other fields except hop-by-hop ones and
// those its Connection header names, TE: trailers if asked for, the
// forwarding headers, X-Request-ID, and framing the Transport would choose.
func (c *conn) appendUpstreamHead(b []byte, r *request) []byte {
	b = append(b, r.method...)
	b = append(b, ' ')
	b = append(b, r.path...)
	if r.hasQuery {
		b = append(b, '?')
		b = append(b, r.query...)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.host...)
	b = append(b, "\r\n"...)
	conn := r.connTokens
	if r.hasUA && len(r.ua) > 0 && (len(conn) == 0 || !named(conn, userAgent)) {
		b = append(b, "User-Agent: "...)
		b = append(b, r.ua...)
		b = append(b, "\r\n"...)
	}
	for i := range r.fields {
		f := &r.fields[i]
		if len(conn) > 0 && named(conn, f.name) {
			continue
		}
		b = appendCanonicalKey(b, f.name)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	if r.teTrailers {
		b = append(b, "Te: trailers\r\n"...)
	}
	scheme := "http"
	if c.tls {
		scheme = "https"
	}
	b = append(b, "X-Forwarded-For: "...)
	b = append(b, c.clientIP...)
	b = append(b, "\r\nX-Forwarded-Host: "...)
	b = append(b, r.host...)
	if c.localPort != "" {
		b = append(b, "\r\nX-Forwarded-Port: "...)
		b = append(b, c.localPort...)
	}
	b = append(b, "\r\nX-Forwarded-Proto: "...)
	b = append(b, scheme...)
	b = append(b, "\r\nX-Forwarded-Scheme: "...)
	b = append(b, scheme...)
	b = append(b, "\r\nX-Real-Ip: "...)
	b = append(b, c.clientIP...)
	b = append(b, "\r\nX-Request-Id: "...)
	if len(r.requestID) > 0 {
		b = append(b, r.requestID...)
	} else {
		b = c.s.proxy.AppendRequestID(b)
	}
	b = append(b, "\r\nX-Scheme: "...)
	b = append(b, scheme...)
	b = append(b, "\r\n"...)
	switch {
	case r.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case r.length > 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, r.length, 10)
		b = append(b, "\r\n"...)
	case string(r.method) == "POST" || string(r.method) == "PUT" || string(r.method) == "PATCH":
		// The Transport's rule (transferWriter.shouldSendContentLength
		// for a request without body or Transfer-Encoding).
		b = append(b, "Content-Length: 0\r\n"...)
	}
	return append(b, "\r\n"...)
}

var userAgent = []byte("User-Agent")
