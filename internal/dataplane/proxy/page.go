package proxy

import (
	"net/http"
	"strconv"
	"time"
)

// allowedMethods is the Allow header of 405 answers. Torii forwards every
// method except CONNECT and TRACE, so it lists the common ones.
const allowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// constHeaders holds header values used on every request. The slices are
// shared between requests and never modified; each has len == cap, so an
// append by anyone else copies rather than writes through.
type constHeaders struct {
	upgrade   []string
	trailers  []string
	empty     []string
	http      []string
	https     []string
	server    []string
	close     []string
	textPlain []string
	nosniff   []string
	allow     []string
}

func one(v string) []string { return []string{v} }

func newConstHeaders(server string) constHeaders {
	return constHeaders{
		upgrade:   one("Upgrade"),
		trailers:  one("trailers"),
		empty:     one(""),
		http:      one("http"),
		https:     one("https"),
		server:    one(server),
		close:     one("close"),
		textPlain: one("text/plain; charset=utf-8"),
		nosniff:   one("nosniff"),
		allow:     one(allowedMethods),
	}
}

// errorPage is a response Torii answers itself. Bodies are short and
// generic: they must never reveal backend details.
type errorPage struct {
	code   int
	body   []byte
	length []string
}

type errorPages struct {
	badRequest, notFound, methodNotAllowed, requestTimeout, badGateway, unavailable, gatewayTimeout errorPage
}

func newErrorPage(code int) errorPage {
	body := []byte(strconv.Itoa(code) + " " + http.StatusText(code) + "\n")
	return errorPage{code: code, body: body, length: one(strconv.Itoa(len(body)))}
}

func newErrorPages() errorPages {
	return errorPages{
		badRequest:       newErrorPage(http.StatusBadRequest),
		notFound:         newErrorPage(http.StatusNotFound),
		methodNotAllowed: newErrorPage(http.StatusMethodNotAllowed),
		requestTimeout:   newErrorPage(http.StatusRequestTimeout),
		badGateway:       newErrorPage(http.StatusBadGateway),
		unavailable:      newErrorPage(http.StatusServiceUnavailable),
		gatewayTimeout:   newErrorPage(http.StatusGatewayTimeout),
	}
}

// writePage sends pg. The header map is the server's fresh one, so nothing
// from an upstream response can leak into it.
func (p *Proxy) writePage(w http.ResponseWriter, pg *errorPage) {
	h := w.Header()
	h["Content-Type"] = p.hdr.textPlain
	h["Content-Length"] = pg.length
	h["X-Content-Type-Options"] = p.hdr.nosniff
	h["Server"] = p.hdr.server
	if pg.code == http.StatusMethodNotAllowed {
		h["Allow"] = p.hdr.allow
	}
	w.WriteHeader(pg.code)
	// A write error means the client is gone; there is nobody to tell.
	_, _ = w.Write(pg.body)
}

// answer sends pg and records it.
func (p *Proxy) answer(w http.ResponseWriter, start time.Time, pg *errorPage) {
	p.writePage(w, pg)
	p.observe(pg.code, start)
}

// reject sends pg for a request refused before routing.
func (p *Proxy) reject(w http.ResponseWriter, start time.Time, pg *errorPage, why rejectReason) {
	if p.inst != nil {
		p.inst.Reject[why].Inc()
	}
	p.answer(w, start, pg)
}

// fail sends pg for a request the upstream side could not serve.
func (p *Proxy) fail(w http.ResponseWriter, start time.Time, pg *errorPage, why failReason) {
	if p.inst != nil {
		p.inst.Fail[why].Inc()
	}
	p.answer(w, start, pg)
}
