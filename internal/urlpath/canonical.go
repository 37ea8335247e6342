package urlpath

import (
	"errors"
	"strings"
)

// Errors returned by Canonical. Each means the request is answered 400.
var (
	ErrNotAbsolute   = errors.New("path does not start with '/'")
	ErrInvalidEscape = errors.New("invalid percent-encoding in path")
	ErrEncodedNUL    = errors.New("encoded NUL byte in path")
	ErrRawControl    = errors.New("control character in path")
	ErrEncodedSlash  = errors.New("encoded slash or backslash in path")
)

// Options tune canonicalisation.
type Options struct {
	// RejectEncodedSlash makes %2F, %5C and raw backslashes an error instead
	// of opaque path characters.
	RejectEncodedSlash bool
}

const upperHex = "0123456789ABCDEF"

// byteClass tells, per byte, whether it may stand raw in a canonical path.
var rawAllowed = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=:@/" {
		t[c] = true
	}
	return t
}()

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isUpperHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'F'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Canonical returns the canonical form of the escaped path p (the part of a
// request target before '?'). It allocates only when p is not already
// canonical.
func Canonical(p string, opts Options) (string, error) {
	if p == "" || p[0] != '/' {
		return "", ErrNotAbsolute
	}
	if isCanonical(p, opts) {
		return p, nil
	}
	// Pass 1: normalise encoding byte by byte.
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) {
				return "", ErrInvalidEscape
			}
			hi, ok1 := unhex(p[i+1])
			lo, ok2 := unhex(p[i+2])
			if !ok1 || !ok2 {
				return "", ErrInvalidEscape
			}
			v := hi<<4 | lo
			i += 2
			switch {
			case v == 0:
				return "", ErrEncodedNUL
			case (v == '/' || v == '\\') && opts.RejectEncodedSlash:
				return "", ErrEncodedSlash
			case isUnreserved(v):
				b.WriteByte(v)
			default:
				b.WriteByte('%')
				b.WriteByte(upperHex[v>>4])
				b.WriteByte(upperHex[v&15])
			}
		case c < 0x20 || c == 0x7f:
			return "", ErrRawControl
		case c == '\\' && opts.RejectEncodedSlash:
			return "", ErrEncodedSlash
		case rawAllowed[c]:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		}
	}
	return resolveSegments(b.String()), nil
}

// isCanonical reports whether p needs no change: only raw-allowed bytes,
// escapes that must stay escaped (upper-case hex), no empty segment and no
// dot segment.
func isCanonical(p string, opts Options) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' {
			if i+2 >= len(p) || !isUpperHex(p[i+1]) || !isUpperHex(p[i+2]) {
				return false
			}
			v, _ := unhex(p[i+1])
			lo, _ := unhex(p[i+2])
			v = v<<4 | lo
			if v == 0 || isUnreserved(v) || opts.RejectEncodedSlash && (v == '/' || v == '\\') {
				return false
			}
			i += 2
			continue
		}
		if !rawAllowed[c] {
			return false
		}
		if c == '/' && i+1 < len(p) {
			switch p[i+1] {
			case '/':
				return false
			case '.':
				// "/." followed by end, '/' or ".": a dot segment.
				rest := p[i+2:]
				if rest == "" || rest[0] == '/' || rest == "." || strings.HasPrefix(rest, "./") {
					return false
				}
			}
		}
	}
	return true
}

// resolveSegments merges duplicate slashes and resolves dot segments of an
// encoding-normalised path. ".." never climbs above the root. A trailing
// slash, or a final dot segment, leaves a trailing slash.
func resolveSegments(p string) string {
	segs := make([]string, 0, strings.Count(p, "/"))
	trailing := false
	for _, s := range strings.Split(p[1:], "/") {
		trailing = false
		switch s {
		case "":
			trailing = true
		case ".":
			trailing = true
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
			trailing = true
		default:
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 {
		return "/"
	}
	out := "/" + strings.Join(segs, "/")
	if trailing {
		out += "/"
	}
	return out
}
