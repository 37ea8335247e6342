package proxy

import (
	"net/http"
	"strings"
)

// requestTarget splits the request target as the client sent it into its
// escaped path and raw query. Routing must see the bytes on the wire, not
// net/http's decoded r.URL.Path, or an encoded slash would turn into a
// separator. hasQuery reports a '?', even with an empty query, so "/a?" is
// forwarded as sent. The query is made safe to forward (see cleanQuery); ok
// is false when it holds control bytes and the request must be refused.
func requestTarget(r *http.Request) (path, query string, hasQuery, ok bool) {
	path, query, hasQuery = splitTarget(r)
	if !hasQuery {
		return path, "", false, true
	}
	query, ok = cleanQuery(query)
	return path, query, true, ok
}

func splitTarget(r *http.Request) (path, query string, hasQuery bool) {
	uri := r.RequestURI
	if uri == "" {
		// Requests built in process (not read from a connection) carry no
		// RequestURI; their URL is all there is.
		return r.URL.EscapedPath(), r.URL.RawQuery, r.URL.ForceQuery || r.URL.RawQuery != ""
	}
	if uri[0] != '/' {
		// Absolute-form ("http://host/path?query"), sent to proxies and
		// allowed to origin servers. Anything else ("*", authority-form)
		// is returned as is and fails canonicalisation.
		if i := strings.Index(uri, "://"); i > 0 {
			rest := uri[i+3:]
			j := strings.IndexAny(rest, "/?")
			switch {
			case j < 0:
				return "/", "", false
			case rest[j] == '?':
				return "/", rest[j+1:], true
			}
			uri = rest[j:]
		}
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		return uri[:i], uri[i+1:], true
	}
	return uri, "", false
}

// queryOK is the bitmap of bytes RFC 3986 allows raw in a query: unreserved,
// sub-delims, ':', '@', '/', '?', and '%' (escapes are passed on as they are,
// malformed or not: the query is the backend's to decode).
var queryOK = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%") {
		t[c] = true
	}
	return t
}()

// cleanQuery makes a raw query safe to put in an HTTP/1.1 request line.
// HTTP/1 request lines cannot carry a space, but an HTTP/2 :path can, and
// forwarding it raw would let a client rewrite the backend's request line
// ("/a?x HTTP/1.0"); other bytes outside RFC 3986 (non-ASCII, quotes, angle
// brackets, braces, '|', '\', '^', '`', '#', '[', ']') are just as
// unpredictable to backends. Those are percent-encoded, which keeps the
// decoded value the same. A control byte (below 0x20, or 0x7f) has no
// business in a URL at all, so ok is false and the request is refused. The
// common, clean query is returned without allocating.
func cleanQuery(q string) (string, bool) {
	i := 0
	for i < len(q) && queryOK[q[i]] {
		i++
	}
	if i == len(q) {
		return q, true
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(q) + 16)
	b.WriteString(q[:i])
	for ; i < len(q); i++ {
		c := q[i]
		switch {
		case queryOK[c]:
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			return "", false
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String(), true
}

// clientIP returns the address part of r.RemoteAddr without brackets or
// port, as a substring (no allocation).
func clientIP(remoteAddr string) string {
	i := strings.LastIndexByte(remoteAddr, ':')
	if i < 0 {
		return remoteAddr
	}
	host := remoteAddr[:i]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		return host[1 : len(host)-1]
	}
	if strings.IndexByte(host, ':') >= 0 {
		// An unbracketed IPv6 address without port.
		return remoteAddr
	}
	return host
}

// hopByHop reports whether the canonical header key k is a hop-by-hop header
// that a proxy must never forward as is. Upgrade and TE are re-added by the
// caller when they are to be forwarded.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Http2-Settings":
		return true
	}
	return false
}

// hasToken reports whether the comma-separated header values contain token,
// compared case-insensitively, without allocating.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for v != "" {
			var t string
			if i := strings.IndexByte(v, ','); i >= 0 {
				t, v = v[:i], v[i+1:]
			} else {
				t, v = v, ""
			}
			if t = strings.Trim(t, " \t"); t != "" && strings.EqualFold(t, token) {
				return true
			}
		}
	}
	return false
}
