package proxy

import (
	"syscall"

	"github.com/torii-dev/torii/internal/dataplane/upstream"
)

// This file exports what the HTTP/1 fast path (package fastpath) shares with
// the proxy, so that both route, name requests and guard ExternalName
// connects alike. None of it changes how the proxy itself behaves.

// Settings returns the configuration in use, with New's defaults applied.
func (p *Proxy) Settings() Config { return p.cfg }

// Lookup routes a request as ServeHTTP does: host is the Host header as
// sent, path the canonical path. ready is false before the first Swap (or
// after a Swap with a nil Router): ServeHTTP answers 503. found is false when
// no route matches (404). be is nil when the route's backend is absent (503).
func (p *Proxy) Lookup(host, path string) (be *upstream.Backend, ready, found bool) {
	t := p.table.Load()
	if t == nil {
		return nil, false, false
	}
	_, idx, ok := t.router.Match(host, path)
	if !ok {
		return nil, true, false
	}
	if idx < 0 || idx >= len(t.backends) {
		return nil, true, true
	}
	return t.backends[idx], true, true
}

// AppendRequestID appends a fresh X-Request-ID value to b, from the same
// sequence ServeHTTP draws from, so IDs never repeat across the two paths.
func (p *Proxy) AppendRequestID(b []byte) []byte { return p.ids.appendNext(b) }

// ExternalNameControl is the net.Dialer Control the proxy applies to every
// connect to an ExternalName backend (and to any endpoint given by name): it
// refuses loopback (unless AllowExternalNameLoopback), link-local,
// unspecified, multicast and cloud metadata addresses.
func (p *Proxy) ExternalNameControl(network, address string, c syscall.RawConn) error {
	return p.checkResolved(network, address, c)
}
