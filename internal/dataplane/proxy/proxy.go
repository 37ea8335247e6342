package proxy

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/defaults"
	"github.com/torii-dev/torii/internal/dataplane/upstream"
	"github.com/torii-dev/torii/internal/metrics"
	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/urlpath"
)

// Defaults applied by New to zero (or negative) Config fields; the fast
// path shares them (package defaults).
const (
	DefaultConnectTimeout        = defaults.ConnectTimeout
	DefaultResponseHeaderTimeout = defaults.ResponseHeaderTimeout
	DefaultIdleConnTimeout       = defaults.IdleConnTimeout
	DefaultMaxIdleConnsPerHost   = defaults.MaxIdleConnsPerHost
	DefaultMaxConnectAttempts    = defaults.MaxConnectAttempts
	DefaultServerHeader          = defaults.ServerHeader
	DefaultUpstreamReadTimeout   = defaults.UpstreamReadTimeout
	DefaultUpstreamSendTimeout   = defaults.UpstreamSendTimeout
	DefaultClientBodyTimeout     = defaults.ClientBodyTimeout
	DefaultClientSendTimeout     = defaults.ClientSendTimeout
	DefaultTunnelIdleTimeout     = defaults.TunnelIdleTimeout
)

// copyBufferSize is the size of the pooled buffer that relays response
// bodies; 32 KiB matches io.Copy and keeps syscalls per megabyte low.
const copyBufferSize = 32 << 10

// Config tunes a Proxy. The zero value is usable: every zero field takes the
// default documented on it.
type Config struct {
	// ConnectTimeout bounds one TCP connect to an endpoint. Default 5s.
	ConnectTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers once the request is written; expiry answers 504. Default 60s.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout is how long an idle upstream keep-alive connection is
	// kept. Default 90s.
	IdleConnTimeout time.Duration
	// MaxIdleConnsPerHost is the idle upstream connections kept per
	// endpoint. Default 1024: Go's default of 2 makes a loaded proxy open
	// and close connections constantly.
	MaxIdleConnsPerHost int
	// MaxConnectAttempts is how many endpoints one request may try when
	// connects fail (nothing sent yet, so any method is safe to retry).
	// Default 3.
	MaxConnectAttempts int
	// RejectEncodedSlash answers 400 to paths holding %2F, %5C or a raw
	// backslash instead of treating them as opaque path characters.
	RejectEncodedSlash bool
	// ServerHeader replaces the upstream's Server header on every response.
	// Default "torii".
	ServerHeader string

	// The read and send timeouts bound the gap between two reads or
	// writes, not a whole transfer, so large bodies to slow but live peers
	// still go through. They are deadlines renewed at most about once a
	// second, so each fires between timeout-min(timeout/16, 1s) and
	// timeout after the last progress.

	// UpstreamReadTimeout bounds the wait for the next bytes of an
	// upstream's response: mid-body its expiry aborts the response to the
	// client (a reset stream, or a connection closed before the end).
	// Until the response starts, ResponseHeaderTimeout applies (504)
	// instead. An idle pooled connection is closed after this long
	// without traffic. Default 60s.
	UpstreamReadTimeout time.Duration
	// UpstreamSendTimeout bounds one write of the request to an upstream
	// that does not read it; expiry before a response answers 504.
	// Default 60s.
	UpstreamSendTimeout time.Duration
	// ClientBodyTimeout bounds the gap between two reads of the client's
	// request body; expiry answers 408 (with Connection: close on HTTP/1)
	// unless the upstream already answered. Default 60s.
	ClientBodyTimeout time.Duration
	// ClientSendTimeout bounds one write of the response to a client that
	// does not read it; expiry ends the response. Default 60s.
	ClientSendTimeout time.Duration
	// TunnelIdleTimeout closes an upgraded connection (WebSocket) that
	// carried no bytes in either direction for this long. Default 60s, as
	// ingress-nginx's proxy-read-timeout.
	TunnelIdleTimeout time.Duration

	// AllowExternalNameLoopback lets ExternalName backends connect to
	// loopback addresses, for local development and tests. Without it an
	// externalName resolving to (or being) a loopback address is refused
	// like a failed connect (502), so that an ExternalName Service cannot
	// expose Torii's own admin port. Link-local (cloud metadata),
	// unspecified and multicast addresses are refused either way.
	// Endpoints from EndpointSlices are never checked.
	AllowExternalNameLoopback bool

	// Metrics, if non-nil, receives the data-plane metrics.
	Metrics *metrics.Metrics
	// Logger receives upstream errors at debug level. Nil discards.
	Logger *slog.Logger
}

// Router finds the route for a request. host is the request's Host header
// (HTTP/2 :authority) exactly as the client sent it, in any case, with any
// port or trailing dot: normalising it is the Router's job (see package
// router), so that there is one set of rules. path is canonical (see package
// urlpath). backend indexes the backend handles given to Swap alongside the
// router, or is -1 when the route's backend is absent. ok is false when
// nothing matches.
type Router interface {
	Match(host, path string) (route *model.Route, backend int, ok bool)
}

// table is what one Swap installs. Requests load it once and use only it.
type table struct {
	router   Router
	backends []*upstream.Backend
}

// Proxy is the data plane's http.Handler. It is safe for concurrent use.
//
// ServeHTTP rewrites r.Header in place into the header sent upstream (hop-by-
// hop headers removed, X-Forwarded-* and X-Request-ID set) instead of cloning
// it, so middleware that reads r.Header after ServeHTTP sees the forwarded
// header set, including the request ID.
type Proxy struct {
	cfg      Config
	pathOpts urlpath.Options
	// dialer connects to endpoints from EndpointSlices, nameDialer to those
	// of ExternalName backends, refusing addresses they must not reach.
	// Each has its Transport, so their pooled connections never mix.
	dialer, nameDialer net.Dialer
	transport          *http.Transport
	externalTransport  *http.Transport
	// roundTripper sends requests to EndpointSlice endpoints: transport,
	// or what WrapRoundTripper made of it (the fast path's upstream side),
	// or a canned one in tests that measure the handler alone.
	roundTripper http.RoundTripper
	table        atomic.Pointer[table]
	bufs         sync.Pool // *[]byte of copyBufferSize
	tunnelBufs   sync.Pool // *[]byte of tunnelBufferSize
	ids          requestIDs
	ports        portCache
	log          *slog.Logger
	inst         *instruments
	hdr          constHeaders
	pages        errorPages
	// halfClosedIdle is halfClosedIdleTimeout, shortened by tests.
	halfClosedIdle time.Duration
}

// New returns a Proxy that answers 503 until the first Swap.
func New(cfg Config) *Proxy {
	defaults.Or(&cfg.ConnectTimeout, DefaultConnectTimeout)
	defaults.Or(&cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	defaults.Or(&cfg.IdleConnTimeout, DefaultIdleConnTimeout)
	defaults.Or(&cfg.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	defaults.Or(&cfg.MaxConnectAttempts, DefaultMaxConnectAttempts)
	defaults.Or(&cfg.UpstreamReadTimeout, DefaultUpstreamReadTimeout)
	defaults.Or(&cfg.UpstreamSendTimeout, DefaultUpstreamSendTimeout)
	defaults.Or(&cfg.ClientBodyTimeout, DefaultClientBodyTimeout)
	defaults.Or(&cfg.ClientSendTimeout, DefaultClientSendTimeout)
	defaults.Or(&cfg.TunnelIdleTimeout, DefaultTunnelIdleTimeout)
	if cfg.ServerHeader == "" {
		cfg.ServerHeader = DefaultServerHeader
	}
	p := &Proxy{
		cfg:      cfg,
		pathOpts: urlpath.Options{RejectEncodedSlash: cfg.RejectEncodedSlash},
		log:      cfg.Logger,
		hdr:      newConstHeaders(cfg.ServerHeader),

		halfClosedIdle: halfClosedIdleTimeout,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.pages = newErrorPages()
	p.ids.init()
	p.bufs.New = func() any { b := make([]byte, copyBufferSize); return &b }
	p.tunnelBufs.New = func() any { b := make([]byte, tunnelBufferSize); return &b }
	if cfg.Metrics != nil {
		p.inst = newInstruments(cfg.Metrics)
	}
	p.initTransports()
	p.roundTripper = p.transport
	return p
}

// WrapRoundTripper replaces the round tripper for EndpointSlice endpoints
// with wrap(the proxy's http.Transport); the fast path uses it to send the
// requests it can (fastpath.Transport) and leave the rest to the
// Transport. ExternalName backends keep their own Transport. It must be
// called before the proxy serves. A connect error from the new round
// tripper must implement ConnectFailure to be retried on another endpoint.
func (p *Proxy) WrapRoundTripper(wrap func(http.RoundTripper) http.RoundTripper) {
	p.roundTripper = wrap(p.transport)
}

// Swap atomically installs a new routing table and the backend handles
// aligned with the snapshot's Backends (from upstream.Registry.Sync).
// In-flight requests keep the state they loaded. A nil Router makes the
// proxy answer 503 again, as before the first Swap.
func (p *Proxy) Swap(r Router, backends []*upstream.Backend) {
	if r == nil {
		p.table.Store(nil)
		return
	}
	p.table.Store(&table{router: r, backends: backends})
}

// Close closes idle upstream connections. Requests in flight and tunnels are
// not interrupted, and the Proxy stays usable.
func (p *Proxy) Close() {
	p.transport.CloseIdleConnections()
	p.externalTransport.CloseIdleConnections()
}

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var start time.Time
	if p.inst != nil {
		start = time.Now()
	}
	t := p.table.Load()
	if t == nil {
		p.reject(w, start, &p.pages.unavailable, rejectNotReady)
		return
	}
	if r.Method == http.MethodConnect || r.Method == http.MethodTrace {
		p.reject(w, start, &p.pages.methodNotAllowed, rejectMethod)
		return
	}
	rawPath, rawQuery, hasQuery, ok := requestTarget(r)
	if !ok {
		p.reject(w, start, &p.pages.badRequest, rejectQuery)
		return
	}
	path, err := urlpath.Canonical(rawPath, p.pathOpts)
	if err != nil {
		p.reject(w, start, &p.pages.badRequest, rejectPath)
		return
	}
	_, idx, ok := t.router.Match(r.Host, path)
	if !ok {
		p.answer(w, start, &p.pages.notFound)
		return
	}
	if idx < 0 || idx >= len(t.backends) || t.backends[idx] == nil {
		p.fail(w, start, &p.pages.unavailable, failNoEndpoints)
		return
	}
	p.forward(w, r, start, t.backends[idx], path, rawQuery, hasQuery)
}
