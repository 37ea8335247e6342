package fastpath

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/listener"
)

// sniffLen is how much of a body net/http's DetectContentType looks at.
const sniffLen = 512

// relay sends the upstream response whose head is parsed in x.res to the
// client, as the proxy and net/http's server would write it (header order
// aside): net/http's status line, the upstream's fields minus hop-by-hop
// ones and those its Connection header names, Torii's Server, a Date if the
// upstream sent none, a sniffed Content-Type where net/http would sniff one,
// and the body framed by Content-Length when the upstream gave one and
// chunked otherwise. Both connections are kept when the framing allows.
//
// A response that fails after its head was sent is aborted: the client
// connection closes before the end of the body, so a truncated body is never
// taken for a whole one.
func (c *conn) relay(u *upConn, x *exchange, start time.Time, early bool) outcome {
	s := c.s
	r := &c.req
	res := &x.res
	readT := int64(s.cfg.UpstreamReadTimeout)
	closeClient := r.wantsClose || early || !c.bodyConsumed || c.draining()
	reuse := res.keepAlive && c.bodyConsumed && !early

	// net/http's server sniffs the first write of a body with a length
	// and no Content-Type (the proxy flushes streams, early answers
	// included, before their first write, so those are not sniffed).
	var ctype string
	if res.mode == bodyLength && res.length > 0 && !res.hasType && !res.hasCE && !early {
		want := int(min(res.length, sniffLen))
		for x.uend-x.upos < want {
			if x.uend == len(x.ubuf) {
				x.makeRoom(true) // the head is still referenced
			}
			n, err := c.readUpstream(u, x.ubuf[x.uend:], monoNow()+readT, slackFor(readT))
			x.uend += n
			if err != nil && n == 0 {
				u.close()
				if c.stopWatch() {
					s.observe(statusClientClosed, start)
					return closeConn
				}
				// Nothing is sent yet, so the client gets a 502.
				return c.upstreamFailed(bodyError{err}, start)
			}
		}
		ctype = http.DetectContentType(x.ubuf[x.upos : x.upos+want])
	}

	chunkedOut := res.mode == bodyChunked || res.mode == bodyClose
	c.sent = false
	out := appendStatusLine(x.out[:0], res.status)
	for i := range res.fields {
		f := &res.fields[i]
		if f.trailer && res.mode != bodyChunked || f.ctype && res.status == 304 ||
			len(res.connTokens) > 0 && named(res.connTokens, f.name) {
			continue
		}
		out = appendCanonicalKey(out, f.name)
		out = append(out, ": "...)
		out = append(out, f.value...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "Server: "...)
	out = append(out, s.cfg.ServerHeader...)
	out = append(out, "\r\n"...)
	if !res.hasDate {
		out = append(out, "Date: "...)
		out = append(out, c.date.get(time.Now())...)
		out = append(out, "\r\n"...)
	}
	switch {
	case res.status < 200 || res.status == 204 || res.status == 304:
		// No body, no length (net/http's suppressedHeaders).
	case r.isHead:
		if res.hasCL {
			out = appendContentLength(out, res.length)
		}
	case res.mode == bodyLength:
		out = appendContentLength(out, res.length)
	case chunkedOut:
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	}
	if ctype != "" {
		out = append(out, "Content-Type: "...)
		out = append(out, ctype...)
		out = append(out, "\r\n"...)
	}
	if closeClient {
		out = append(out, "Connection: close\r\n"...)
	}
	out = append(out, "\r\n"...)

	var werr, rerr error
	extra := false
	switch res.mode {
	case bodyNone:
		werr = c.write(out)
		extra = x.uend > x.upos
	case bodyLength:
		out, extra, werr, rerr = c.relayLength(u, x, out)
	case bodyChunked:
		out, extra, werr, rerr = c.relayChunked(u, x, out)
	case bodyClose:
		out, werr, rerr = c.relayUntilClose(u, x, out)
	}
	x.out = out
	if c.stopWatch() {
		// The client went away while the upstream was silent; the
		// watch closed the upstream connection to end the wait.
		u.close()
		s.observe(res.status, start)
		return closeConn
	}
	if rerr != nil && !c.sent {
		// The body broke before anything reached the client (a malformed
		// chunked body, say): it gets a 502, not a closed connection.
		u.close()
		return c.upstreamFailed(bodyError{rerr}, start)
	}
	s.observe(res.status, start)
	switch {
	case werr != nil:
		// The client went away or stopped reading (ClientSendTimeout).
		u.close()
		return closeConn
	case rerr != nil:
		u.close()
		s.countFail(failBody)
		s.logDebug("upstream body", slog.Any("error", rerr))
		return closeConn
	}
	if reuse && !extra {
		s.pool.put(u)
	} else {
		u.close()
	}
	switch {
	case !closeClient:
		return keepAlive
	case !c.bodyConsumed:
		return closeLinger
	}
	return closeConn
}

func appendContentLength(b []byte, n int64) []byte {
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, "\r\n"...)
}

// relayLength relays a body of res.length bytes after head. extra reports
// bytes from the upstream beyond the body, which make its connection
// unusable.
func (c *conn) relayLength(u *upConn, x *exchange, head []byte) (out []byte, extra bool, werr, rerr error) {
	readT := int64(c.s.cfg.UpstreamReadTimeout)
	left := x.res.length
	avail := x.ubuf[x.upos:x.uend]
	if int64(len(avail)) > left {
		extra = true
		avail = avail[:left]
	}
	left -= int64(len(avail))
	out = head
	if len(out)+len(avail) <= cap(out) {
		// A small answer leaves in one write.
		out = append(out, avail...)
		werr = c.write(out)
	} else if werr = c.write(out); werr == nil {
		werr = c.write(avail)
	}
	for left > 0 && werr == nil {
		n, err := c.readUpstream(u, x.ubuf, monoNow()+readT, slackFor(readT))
		if n > 0 {
			k := int(min(int64(n), left))
			extra = extra || k < n
			left -= int64(k)
			werr = c.write(x.ubuf[:k])
		}
		if err != nil && left > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return out, extra, werr, err
		}
	}
	return out, extra, werr, nil
}

// relayChunked relays a chunked body re-chunked (one chunk per run of data,
// no extensions) with its trailer section, flushing after every read from
// the upstream, as the proxy streams responses without a length.
func (c *conn) relayChunked(u *upConn, x *exchange, head []byte) (out []byte, extra bool, werr, rerr error) {
	readT := int64(c.s.cfg.UpstreamReadTimeout)
	x.dec = listener.ChunkedDecoder{}
	x.trailer = x.trailer[:0]
	out = head
	for {
		in := x.ubuf[x.upos:x.uend]
		for len(in) > 0 {
			n, part, done, err := x.dec.Decode(in)
			if err != nil {
				return out, false, nil, err
			}
			switch part {
			case listener.ChunkData:
				if out, werr = c.appendChunk(out, in[:n]); werr != nil {
					return out, false, werr, nil
				}
			case listener.ChunkTrailer:
				// Trailer fields and the final CRLF, checked by the
				// decoder, are passed on as they came.
				x.trailer = append(x.trailer, in[:n]...)
			}
			in = in[n:]
			if done {
				out = append(out, "0\r\n"...)
				out = append(out, x.trailer...)
				werr = c.write(out)
				return out[:0], len(in) > 0, werr, nil
			}
		}
		if werr = c.write(out); werr != nil {
			return out, false, werr, nil
		}
		out = out[:0]
		x.upos, x.uend = 0, 0
		n, err := c.readUpstream(u, x.ubuf, monoNow()+readT, slackFor(readT))
		x.uend = n
		if err != nil && n == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return out, false, nil, err
		}
	}
}

// relayUntilClose relays a body that ends when the upstream closes the
// connection, chunked to the client.
func (c *conn) relayUntilClose(u *upConn, x *exchange, head []byte) (out []byte, werr, rerr error) {
	readT := int64(c.s.cfg.UpstreamReadTimeout)
	out = head
	in := x.ubuf[x.upos:x.uend]
	for {
		if len(in) > 0 {
			if out, werr = c.appendChunk(out, in); werr != nil {
				return out, werr, nil
			}
		}
		if werr = c.write(out); werr != nil {
			return out, werr, nil
		}
		out = out[:0]
		n, err := c.readUpstream(u, x.ubuf, monoNow()+readT, slackFor(readT))
		in = x.ubuf[:n]
		if err == io.EOF && n == 0 {
			out = append(out, "0\r\n\r\n"...)
			return out[:0], c.write(out), nil
		}
		if err != nil && n == 0 {
			return out, nil, err
		}
	}
}

// bodyError is an upstream body that failed before any of the response was
// sent to the client.
type bodyError struct{ err error }

func (e bodyError) Error() string { return "upstream body: " + e.err.Error() }
func (e bodyError) Unwrap() error { return e.err }

// appendChunk appends data as one chunk, writing out first when it would
// not fit, and writing large data straight from the upstream buffer.
func (c *conn) appendChunk(out, data []byte) ([]byte, error) {
	if len(out)+len(data)+24 <= cap(out) {
		out = appendChunkHeader(out, len(data))
		out = append(out, data...)
		return append(out, "\r\n"...), nil
	}
	out = appendChunkHeader(out, len(data))
	if err := c.write(out); err != nil {
		return out, err
	}
	if err := c.write(data); err != nil {
		return out, err
	}
	return append(out[:0], "\r\n"...), nil
}
