package proxy

import (
	"net/http"
	"strings"
)

// requestTarget splits the request target as the client sent it into its
// escaped path and raw query. Routing must see the bytes on the wire, not
// net/http's decoded r.URL.Path, or an encoded slash would turn into a
// separator. hasQuery reports a '?', even with an empty query, so "/a?" is
// forwarded as sent.
func requestTarget(r *http.Request) (path, query string, hasQuery bool) {
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

// routeHost normalises a Host header for routing: port and one trailing dot
// removed, lower-cased. It allocates only for hosts with upper-case letters.
func routeHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h[i:], ']') < 0 {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
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
