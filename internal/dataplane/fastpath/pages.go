package fastpath

import (
	"net/http"
	"strconv"
	"time"
)

// pages are Torii's own answers, byte for byte what the proxy sends through
// net/http: the same status line, headers and short generic body. Each is
// stored up to its Date header, which is added when it is sent.
type pages struct {
	badRequest, notFound, requestTimeout, badGateway, unavailable, gatewayTimeout page
}

type page struct {
	code int
	head []byte // status line and headers, without Date, Connection and the blank line
	body []byte
}

func newPages(server string) pages {
	mk := func(code int) page {
		body := strconv.Itoa(code) + " " + http.StatusText(code) + "\n"
		head := appendStatusLine(nil, code)
		head = append(head, "Content-Length: "+strconv.Itoa(len(body))+"\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\n"+
			"Server: "+server+"\r\n"+
			"X-Content-Type-Options: nosniff\r\n"...)
		return page{code: code, head: head, body: []byte(body)}
	}
	return pages{
		badRequest:     mk(http.StatusBadRequest),
		notFound:       mk(http.StatusNotFound),
		requestTimeout: mk(http.StatusRequestTimeout),
		badGateway:     mk(http.StatusBadGateway),
		unavailable:    mk(http.StatusServiceUnavailable),
		gatewayTimeout: mk(http.StatusGatewayTimeout),
	}
}

// appendStatusLine appends the status line net/http's server writes for
// code: its own reason phrase, never the upstream's.
func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

// dateCache formats the Date header once a second per connection.
type dateCache struct {
	sec int64
	buf [len(http.TimeFormat) + 8]byte
	n   int
}

func (d *dateCache) get(now time.Time) []byte {
	if sec := now.Unix(); sec != d.sec || d.n == 0 {
		d.sec = sec
		d.n = len(now.UTC().AppendFormat(d.buf[:0], http.TimeFormat))
	}
	return d.buf[:d.n]
}
