package listener

import "bytes"

// headInfo is what the guard needs to know about an accepted request head to
// find where the next head starts.
type headInfo struct {
	// length is the Content-Length body size, 0 when there is none.
	length int64
	// chunked is set for Transfer-Encoding: chunked.
	chunked bool
	// tunnel is set when the connection may switch protocols after this
	// request: an Upgrade to anything but h2c with Connection: upgrade, or
	// CONNECT.
	tunnel bool
	// post is set for method POST, after which net/http skips up to four
	// stray CR or LF bytes before the next request line.
	post bool
	// refusal is why a refused head was refused: RejectFraming or
	// RejectMalformedHead.
	refusal string
}

// tcharLo and tcharHi are bitmaps of the token characters of RFC 9110
// section 5.6.2 below and above 64, so a membership test is a shift and a mask.
const (
	tcharLo = 1<<'!' | 1<<'#' | 1<<'$' | 1<<'%' | 1<<'&' | 1<<'\'' | 1<<'*' |
		1<<'+' | 1<<'-' | 1<<'.' | (1<<10-1)<<'0'
	tcharHi = ((1<<26-1)<<'A' | 1<<'^' | 1<<'_' | 1<<'`' | (1<<26-1)<<'a' |
		1<<'|' | 1<<'~') >> 64
)

func isTchar(c byte) bool {
	if c < 64 {
		return uint64(tcharLo)&(1<<c) != 0
	}
	if c < 128 {
		return uint64(tcharHi)&(1<<(c-64)) != 0
	}
	return false
}

// isFieldByte reports whether c may appear in a field value: HTAB, SP,
// visible ASCII and obs-text. Every other control byte, NUL and bare CR
// included, is refused.
func isFieldByte(c byte) bool {
	return c == '\t' || (c >= ' ' && c != 0x7f)
}

// isTargetByte reports whether c may appear in a request-target. Bytes above
// 0x7f are let through as net/http does; they do not affect framing.
func isTargetByte(c byte) bool {
	return c > ' ' && c != 0x7f
}

// equalFoldLower compares b with lower, an ASCII lower-case constant, ignoring
// ASCII case.
func equalFoldLower(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// nextLine splits off the first line of b, which must contain a LF, without
// its line ending. Like net/http, a lone LF ends a line as well as CRLF; a CR
// anywhere else stays in the line, where the byte checks refuse it.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseHead strictly validates a complete request head (request line, header
// lines and the blank line that ends them) and reports its framing. ok is
// false when the head must be refused; see the package documentation for the
// rules.
func parseHead(h []byte) (info headInfo, ok bool) {
	info.refusal = RejectMalformedHead
	line, rest := nextLine(h)
	method, minor, ok := parseRequestLine(line)
	if !ok {
		return info, false
	}
	// Methods are case-sensitive, and net/http compares them exactly.
	info.post = string(method) == "POST"
	info.tunnel = string(method) == "CONNECT"

	var (
		clSeen, connUpgrade, upgradeOther bool
		clValue                           []byte
		teCount                           int
	)
	for {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		// A line starting with whitespace is obs-fold (or, first, a broken
		// request line); proxies disagree on what it means.
		if line[0] == ' ' || line[0] == '\t' {
			return info, false
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return info, false
		}
		name := line[:colon]
		for _, c := range name {
			// Also refuses whitespace before the colon.
			if !isTchar(c) {
				return info, false
			}
		}
		value := line[colon+1:]
		for _, c := range value {
			if !isFieldByte(c) {
				return info, false
			}
		}
		value = trimOWS(value)

		switch len(name) {
		case len("content-length"):
			if !equalFoldLower(name, "content-length") {
				continue
			}
			if _, valid := parseContentLength(value); !valid {
				return refuseFraming(info)
			}
			// Repeats are tolerated only when identical, compared as
			// strings exactly as net/http does.
			if clSeen && !bytes.Equal(value, clValue) {
				return refuseFraming(info)
			}
			clSeen, clValue = true, value
		case len("transfer-encoding"):
			if !equalFoldLower(name, "transfer-encoding") {
				continue
			}
			teCount++
			if teCount > 1 || !equalFoldLower(value, "chunked") {
				return refuseFraming(info)
			}
		case len("connection"):
			if equalFoldLower(name, "connection") && hasToken(value, "upgrade") {
				connUpgrade = true
			}
		case len("upgrade"):
			if equalFoldLower(name, "upgrade") && hasTokenOtherThan(value, "h2c") {
				upgradeOther = true
			}
		}
	}

	if teCount > 0 {
		// net/http ignores Transfer-Encoding on HTTP/1.0 and would frame by
		// Content-Length; a front proxy might not.
		if clSeen || minor == 0 {
			return refuseFraming(info)
		}
		info.chunked = true
	} else if clSeen {
		info.length, _ = parseContentLength(clValue)
	}
	if connUpgrade && upgradeOther {
		info.tunnel = true
	}
	info.refusal = ""
	return info, true
}

func refuseFraming(info headInfo) (headInfo, bool) {
	info.refusal = RejectFraming
	return info, false
}

// parseRequestLine checks "method SP request-target SP HTTP/1.x", split at
// single spaces as net/http splits it, and returns the method and the minor
// version.
func parseRequestLine(line []byte) (method []byte, minor int, ok bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return nil, 0, false
	}
	method = line[:sp]
	for _, c := range method {
		if !isTchar(c) {
			return nil, 0, false
		}
	}
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return nil, 0, false
	}
	for _, c := range rest[:sp] {
		if !isTargetByte(c) {
			return nil, 0, false
		}
	}
	// Only HTTP/1.x reaches the HTTP/1 server: "PRI * HTTP/2.0" after the
	// start of a connection is refused here rather than handed to the
	// handler as net/http would.
	v := rest[sp+1:]
	if len(v) != len("HTTP/1.1") || string(v[:7]) != "HTTP/1." || v[7] < '0' || v[7] > '9' {
		return nil, 0, false
	}
	return method, int(v[7] - '0'), true
}

// parseContentLength parses 1*DIGIT no larger than net/http accepts (a
// non-negative int64).
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
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
		if equalFoldLower(trimOWS(elem), token) {
			return true
		}
	}
	return false
}

// hasTokenOtherThan reports whether the comma-separated list v contains a
// non-empty element other than token, ignoring case.
func hasTokenOtherThan(v []byte, token string) bool {
	for len(v) > 0 {
		var elem []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			elem, v = v[:i], v[i+1:]
		} else {
			elem, v = v, nil
		}
		if elem = trimOWS(elem); len(elem) > 0 && !equalFoldLower(elem, token) {
			return true
		}
	}
	return false
}
