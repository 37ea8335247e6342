package router

import "strings"

// maxHostLen is the longest DNS name in text form without its trailing dot
// (RFC 1035 section 2.3.4). No virtual host can have a longer name, which is
// what lets Match lower-case hosts into a fixed stack buffer.
const maxHostLen = 253

// hostName extracts the name a raw Host header or :authority designates: it
// strips a numeric port and one trailing dot ("foo.com." is "foo.com"). The
// name keeps its case. ok is false when the value cannot name a virtual host:
// a bracketed IP literal (Ingress hosts are never IPs), a non-numeric port,
// or a name longer than maxHostLen. Such requests go to the host-less
// virtual host.
func hostName(host string) (name string, ok bool) {
	if strings.HasPrefix(host, "[") {
		return "", false
	}
	// DNS names never contain ':', so the first one starts the port; a bare
	// IPv6 address therefore has a "port" that is not numeric and is refused.
	if i := strings.IndexByte(host, ':'); i >= 0 {
		if !isPort(host[i+1:]) {
			return "", false
		}
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if len(host) > maxHostLen {
		return "", false
	}
	return host, true
}

// isPort reports whether s is a valid port part of an authority: digits
// only, possibly none (RFC 3986 section 3.2.3).
func isPort(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// lowerASCII lower-cases the ASCII letters of s. Unlike strings.ToLower it
// leaves every other byte alone, so compiled host keys are folded exactly
// like request hosts are in Match.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
