package translate

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/torii-dev/torii/internal/urlpath"
)

// maxQuoted bounds how much of a user-supplied value a message repeats, so
// that a huge field cannot blow up status conditions and events.
const maxQuoted = 128

// quote renders a user-supplied value for a message: Go-quoted, so control
// characters and quotes are escaped and the message stays on one line, and
// truncated past maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "..."
	}
	return strconv.Quote(s)
}

// checkHost returns why h is not a valid rule or TLS host, or "" if it is.
// A host is a lower-case RFC 1123 DNS subdomain, or one behind a "*." first
// label; IP addresses and ports are not hosts.
func checkHost(h string) string {
	if h == "*" {
		return `"*" alone is not a host; a wildcard covers one label, as in "*.example.com"`
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return "must be a DNS name, not an IP address"
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if _, err := strconv.ParseUint(h[i+1:], 10, 16); err == nil {
			return "must not carry a port"
		}
	}
	if strings.ContainsFunc(h, func(r rune) bool { return r >= 'A' && r <= 'Z' }) {
		return "must be lower-case"
	}
	name, _ := strings.CutPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return `a wildcard must be the whole first label, as in "*.example.com"`
	}
	if len(h) > validation.DNS1123SubdomainMaxLength {
		return fmt.Sprintf("must be at most %d characters", validation.DNS1123SubdomainMaxLength)
	}
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return `must be a lower-case RFC 1123 DNS name such as "example.com", or a wildcard such as "*.example.com"`
	}
	return ""
}

// pathByte tells which bytes may stand raw in an Ingress path: the RFC 3986
// pchar set plus '/' and '%' (escapes are checked separately).
var pathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=:@/%" {
		t[c] = true
	}
	return t
}()

// checkPath returns the canonical form of the Ingress path p, or why it is
// invalid.
//
// Requests are matched on their canonical path, so a path that
// canonicalisation would change in meaning (dot segments, duplicate slashes)
// could never match as written: it is rejected rather than silently
// rewritten. Raw characters outside the URL path set are rejected too,
// because a path is also a string that ends up in logs and status. Only
// escapes are normalised, e.g. "/fo%6F" to "/foo".
func checkPath(p string) (string, string) {
	if p == "" {
		return "", "required"
	}
	if p[0] != '/' {
		return "", "must start with '/'"
	}
	for i := 0; i < len(p); i++ {
		if pathByte[p[i]] {
			continue
		}
		r, size := utf8.DecodeRuneInString(p[i:])
		if r == utf8.RuneError && size == 1 {
			return "", fmt.Sprintf("byte 0x%02x is not allowed in a path; percent-encode it", p[i])
		}
		return "", fmt.Sprintf("character %s is not allowed in a path; percent-encode it", strconv.QuoteRune(r))
	}
	rest := p[1:]
	for rest != "" {
		seg, after, found := strings.Cut(rest, "/")
		switch {
		case seg == "":
			return "", `duplicate slashes ("//") are not allowed`
		case isDotSegment(seg):
			return "", fmt.Sprintf("dot segment %s is not allowed", quote(seg))
		}
		if !found {
			break
		}
		rest = after
	}
	canon, err := urlpath.Canonical(p, urlpath.Options{})
	switch {
	case errors.Is(err, urlpath.ErrEncodedNUL):
		return "", "an encoded NUL byte (%00) is not allowed"
	case errors.Is(err, urlpath.ErrInvalidEscape):
		return "", "invalid percent-encoding; '%' must be followed by two hex digits"
	case err != nil:
		return "", err.Error()
	}
	return canon, ""
}

// isDotSegment reports whether seg is "." or "..", possibly percent-encoded,
// as the canonicaliser would decode it.
func isDotSegment(seg string) bool {
	if len(seg) > 6 {
		return false
	}
	dots := 0
	for i := 0; i < len(seg); {
		switch {
		case seg[i] == '.':
			i++
		case len(seg)-i >= 3 && seg[i] == '%' && seg[i+1] == '2' && (seg[i+2] == 'e' || seg[i+2] == 'E'):
			i += 3
		default:
			return false
		}
		dots++
	}
	return dots == 1 || dots == 2
}
