package fastpath

import (
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/listener"
)

// maxResponseHeaderBytes bounds an upstream's response head, 1xx heads
// included, as the proxy's Transport does.
const maxResponseHeaderBytes = 1 << 20

// bodyMode is how an upstream response body is framed.
type bodyMode uint8

const (
	bodyNone    bodyMode = iota // HEAD, 1xx, 204, 304
	bodyLength                  // Content-Length
	bodyChunked                 // Transfer-Encoding: chunked
	bodyClose                   // until the upstream closes the connection
)

// response is a parsed upstream response head. Its slices point into the
// exchange's upstream buffer.
type response struct {
	status int
	minor  int // HTTP/1.minor
	mode   bodyMode
	length int64 // bodyLength: the body size
	hasCL  bool  // a Content-Length was sent (kept on answers to HEAD)
	// keepAlive: the connection may carry another request once the body
	// has been read to its end.
	keepAlive bool

	hasType, hasCE, hasDate bool

	// fields are forwarded to the client, except those the Connection
	// header names (connTokens), and Trailer unless the body is chunked.
	fields     []resField
	connTokens [][]byte
}

type resField struct {
	name, value []byte
	trailer     bool // the Trailer field
	ctype       bool // Content-Type, dropped from a 304
}

func (r *response) reset() {
	fields, tokens := r.fields[:0], r.connTokens[:0]
	*r = response{fields: fields, connTokens: tokens}
}

// Response errors. Each answers 502 and closes the upstream connection.
var (
	errBadStatusLine  = errors.New("malformed response status line")
	errBadHeader      = errors.New("malformed response header")
	errBadFraming     = errors.New("ambiguous or unsupported response framing")
	errHeadTooLarge   = errors.New("response head too large")
	errUnrequestedUpg = errors.New("101 Switching Protocols without an upgrade request")
)

// parseResponseHead strictly parses a complete response head h (through the
// blank line) into r. It accepts
//
//	HTTP/1.0 or HTTP/1.1, SP, three digits from 100, optionally SP and a reason
//	field lines of a token, ':', and a field value without control bytes
//	lines ending in CRLF only
//
// and refuses obs-fold, both Content-Length and Transfer-Encoding,
// Transfer-Encoding other than one "chunked" or on HTTP/1.0, and several
// different or invalid Content-Lengths: a response two parsers could frame
// differently never reaches the client, and its connection is not reused.
func parseResponseHead(h []byte, r *response, reqHead bool) error {
	line, rest, ok := cutLine(h)
	if !ok || len(line) < len("HTTP/1.1 200") || string(line[:7]) != "HTTP/1." ||
		(line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return errBadStatusLine
	}
	r.minor = int(line[7] - '0')
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return errBadStatusLine
		}
	}
	r.status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if r.status < 100 {
		return errBadStatusLine
	}
	if reason := line[12:]; len(reason) > 0 {
		if reason[0] != ' ' {
			return errBadStatusLine
		}
		for _, c := range reason {
			if !listener.IsFieldByte(c) {
				return errBadStatusLine
			}
		}
	}

	var (
		clSeen, closeTok, keepAliveTok bool
		clValue                        []byte
		teCount                        int
		firstCE                        = true
	)
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return errBadHeader
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errBadHeader // obs-fold
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errBadHeader
		}
		name := line[:colon]
		for _, c := range name {
			if !listener.IsTokenChar(c) {
				return errBadHeader
			}
		}
		value := line[colon+1:]
		for _, c := range value {
			if !listener.IsFieldByte(c) {
				return errBadHeader
			}
		}
		value = listener.TrimOWS(value)
		f := resField{name: name, value: value}
		switch responseKindOf(name) {
		case rOther:
		case rDrop:
			continue
		case rContentLength:
			if _, valid := parseLength(value); !valid || clSeen && !bytes.Equal(value, clValue) {
				return errBadFraming
			}
			clSeen, clValue = true, value
			continue
		case rTransferEncoding:
			teCount++
			if teCount > 1 || !listener.EqualFoldLower(value, "chunked") {
				return errBadFraming
			}
			continue
		case rConnection:
			closeTok = closeTok || hasToken(value, "close")
			keepAliveTok = keepAliveTok || hasToken(value, "keep-alive")
			r.connTokens = appendTokens(r.connTokens, value)
			continue
		case rTrailer:
			f.trailer = true
		case rContentType:
			f.ctype = true
		case rContentEncoding:
			if firstCE {
				// net/http's server checks the first value.
				firstCE = false
				r.hasCE = len(value) > 0
			}
		case rDate:
			r.hasDate = true
		}
		r.fields = append(r.fields, f)
	}
	if teCount > 0 && (clSeen || r.minor == 0) {
		return errBadFraming
	}
	if clSeen {
		r.length, _ = parseLength(clValue)
		r.hasCL = true
	}
	if r.status == 101 {
		return errUnrequestedUpg
	}
	switch {
	case reqHead || r.status < 200 || r.status == 204 || r.status == 304:
		r.mode = bodyNone
	case teCount > 0:
		r.mode = bodyChunked
	case clSeen:
		r.mode = bodyLength
	default:
		r.mode = bodyClose
	}
	if r.minor == 0 {
		r.keepAlive = keepAliveTok && !closeTok
	} else {
		r.keepAlive = !closeTok
	}
	if r.mode == bodyClose {
		r.keepAlive = false
	}
	if len(r.connTokens) > 0 {
		// What the Connection header names is not forwarded, so it does
		// not count as sent either.
		r.hasType, r.hasDate, r.hasCE = false, false, r.hasCE && !named(r.connTokens, contentEncoding)
		for i := range r.fields {
			f := &r.fields[i]
			if named(r.connTokens, f.name) {
				continue
			}
			r.hasType = r.hasType || f.ctype
			r.hasDate = r.hasDate || listener.EqualFoldLower(f.name, "date")
		}
	} else {
		for i := range r.fields {
			r.hasType = r.hasType || r.fields[i].ctype
		}
	}
	return nil
}

var contentEncoding = []byte("Content-Encoding")

type responseKind uint8

const (
	rOther responseKind = iota
	rDrop
	rContentLength
	rTransferEncoding
	rConnection
	rTrailer
	rContentType
	rContentEncoding
	rDate
)

// responseKindOf classifies a response header name, ignoring case. Dropped
// are the hop-by-hop headers (proxy.hopByHop) and Server, which is always
// Torii's.
func responseKindOf(name []byte) responseKind {
	const maxName = len("proxy-authenticate") + 1
	if len(name) > maxName {
		return rOther
	}
	var buf [maxName]byte
	lower := buf[:len(name)]
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	switch string(lower) {
	case "content-length":
		return rContentLength
	case "transfer-encoding":
		return rTransferEncoding
	case "connection":
		return rConnection
	case "trailer":
		return rTrailer
	case "content-type":
		return rContentType
	case "content-encoding":
		return rContentEncoding
	case "date":
		return rDate
	case "server", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
		"te", "upgrade", "http2-settings":
		return rDrop
	}
	return rOther
}

// parseLength parses 1*DIGIT no larger than an int64.
func parseLength(v []byte) (int64, bool) {
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

// headEnd returns the length of the head at the start of b through the
// blank line ending it, 0 if b does not hold all of it yet, or -1 if a line
// ends in a bare LF. from is where the search may resume (a line start).
func headEnd(b []byte, from *int) int {
	for {
		j := bytes.IndexByte(b[*from:], '\n')
		if j < 0 {
			// Resume at the start of the incomplete line.
			return 0
		}
		lf := *from + j
		if lf == 0 || b[lf-1] != '\r' {
			return -1
		}
		if lf-1 == *from {
			return lf + 1
		}
		*from = lf + 1
	}
}

// readResponse reads a response head from u into x.ubuf, skipping 1xx
// responses, and parses it into x.res. The body's first bytes, if any, are
// x.ubuf[x.upos:x.uend]. got counts the bytes received, which tells an
// upstream that closed a pooled connection (nothing received) from one that
// failed mid-answer. The whole head must come within headTimeout.
//
// r does the reads: the client connection (*conn), which watches its client
// during a long wait, or unwatched (Transport).
func readResponse(r upstreamReader, u *upConn, x *exchange, reqHead bool, headTimeout int64) (got int, err error) {
	x.upos, x.uend = 0, 0
	from := 0
	total := 0 // head bytes, 1xx included
	deadline := monoNow() + headTimeout
	for {
		end := 0
		if x.uend > x.upos {
			end = headEnd(x.ubuf[x.upos:x.uend], &from)
		}
		if end < 0 {
			return got, errBadHeader
		}
		if end > 0 {
			x.res.reset()
			if err := parseResponseHead(x.ubuf[x.upos:x.upos+end], &x.res, reqHead); err != nil {
				return got, err
			}
			total += end
			if total > maxResponseHeaderBytes {
				return got, errHeadTooLarge
			}
			x.upos += end
			from = 0
			if st := x.res.status; st >= 100 && st < 200 {
				// 1xx (101 was refused by the parser): informational,
				// not relayed, as by net/http's Transport.
				continue
			}
			return got, nil
		}
		if total+x.uend-x.upos > maxResponseHeaderBytes {
			return got, errHeadTooLarge
		}
		if x.uend == len(x.ubuf) {
			x.makeRoom(false)
		}
		n, err := r.readUpstream(u, x.ubuf[x.uend:], deadline, slackFor(headTimeout))
		x.uend += n
		got += n
		if err != nil && n == 0 {
			if err == io.EOF && got > 0 {
				err = io.ErrUnexpectedEOF
			}
			return got, err
		}
	}
}

// readUpstream reads from u with the read deadline at deadline. A read that
// would wait longer than watchAfter first waits watchAfter only; if nothing
// came, the client connection is watched from then on (see clientWatch),
// so that a client that leaves ends the wait.
func (c *conn) readUpstream(u *upConn, p []byte, deadline, slack int64) (int, error) {
	if c.rawConn != nil && !c.watching {
		if now := monoNow(); deadline-now > watchAfter {
			u.setReadDeadline(now+watchAfter, slackFor(watchAfter))
			n, err := u.nc.Read(p)
			if n > 0 || err == nil || !isTimeout(err) {
				return n, err
			}
			c.startWatch(u)
		}
	}
	return u.read(p, deadline, slack)
}

// upstreamReader reads from an upstream connection under a deadline.
type upstreamReader interface {
	readUpstream(u *upConn, p []byte, deadline, slack int64) (int, error)
}

// unwatched reads from upstream connections with no client connection to
// watch: Transport's, whose request context does that (watchContext).
type unwatched struct{}

func (unwatched) readUpstream(u *upConn, p []byte, deadline, slack int64) (int, error) {
	return u.read(p, deadline, slack)
}

// watchAfter is how long an upstream may take to start answering before
// the client connection is watched for the client going away.
const watchAfter = int64(time.Second)
