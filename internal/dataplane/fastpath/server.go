package fastpath

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/defaults"
	"github.com/torii-dev/torii/internal/dataplane/listener"
	"github.com/torii-dev/torii/internal/dataplane/upstream"
	"github.com/torii-dev/torii/internal/metrics"
	"github.com/torii-dev/torii/internal/urlpath"
)

// Proxy is what the fast path shares with the net/http path's proxy
// (*proxy.Proxy implements it): the live routing table, the request-ID
// sequence and the ExternalName connect check.
type Proxy interface {
	// Lookup routes a request: host is the Host header as sent, path the
	// canonical path. ready is false before the first routing table (503),
	// found false when no route matches (404), be nil when the route's
	// backend is absent (503).
	Lookup(host, path string) (be *upstream.Backend, ready, found bool)
	// AppendRequestID appends a fresh X-Request-ID value.
	AppendRequestID(b []byte) []byte
	// ExternalNameControl refuses addresses an ExternalName backend must
	// not reach; it is the Control of the dialer for such backends.
	ExternalNameControl(network, address string, c syscall.RawConn) error
}

// Defaults for zero Config fields; they are the proxy's (package defaults).
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
)

// Config configures a Server. The timeouts and limits mean what the fields
// of the same names in proxy.Config mean, and a server should pass the
// proxy's (proxy.Proxy.Settings) so that both paths behave alike.
type Config struct {
	Proxy Proxy

	ConnectTimeout        time.Duration
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout and UpstreamReadTimeout, whichever is shorter, bound
	// how long an idle upstream connection is kept, as in the proxy.
	IdleConnTimeout     time.Duration
	UpstreamReadTimeout time.Duration
	UpstreamSendTimeout time.Duration
	ClientBodyTimeout   time.Duration
	ClientSendTimeout   time.Duration
	// MaxIdleConnsPerHost bounds the idle connections kept per upstream
	// endpoint. Default 1024, enough for far more than 256 concurrent
	// client connections to one endpoint.
	MaxIdleConnsPerHost int
	MaxConnectAttempts  int
	RejectEncodedSlash  bool
	ServerHeader        string

	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

// Server is the HTTP/1 fast path. It implements listener.FastPath.
type Server struct {
	cfg      Config
	proxy    Proxy
	pathOpts urlpath.Options
	log      *slog.Logger
	inst     *instruments
	pages    pages
	pool     *pool

	exchanges sync.Pool // *exchange
	conns     sync.Pool // *conn
}

var _ listener.FastPath = (*Server)(nil)

// New returns a fast path forwarding through cfg.Proxy's routing table.
func New(cfg Config) *Server {
	defaults.Or(&cfg.ConnectTimeout, DefaultConnectTimeout)
	defaults.Or(&cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	defaults.Or(&cfg.IdleConnTimeout, DefaultIdleConnTimeout)
	defaults.Or(&cfg.UpstreamReadTimeout, DefaultUpstreamReadTimeout)
	defaults.Or(&cfg.UpstreamSendTimeout, DefaultUpstreamSendTimeout)
	defaults.Or(&cfg.ClientBodyTimeout, DefaultClientBodyTimeout)
	defaults.Or(&cfg.ClientSendTimeout, DefaultClientSendTimeout)
	defaults.Or(&cfg.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	defaults.Or(&cfg.MaxConnectAttempts, DefaultMaxConnectAttempts)
	if cfg.ServerHeader == "" {
		cfg.ServerHeader = DefaultServerHeader
	}
	s := &Server{
		cfg:      cfg,
		proxy:    cfg.Proxy,
		pathOpts: urlpath.Options{RejectEncodedSlash: cfg.RejectEncodedSlash},
		log:      cfg.Logger,
		pages:    newPages(cfg.ServerHeader),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics != nil {
		s.inst = newInstruments(cfg.Metrics)
	}
	s.exchanges.New = func() any { return newExchange() }
	s.conns.New = func() any { return &conn{s: s} }
	dialer := net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	nameDialer := dialer
	nameDialer.Control = cfg.Proxy.ExternalNameControl
	s.pool = newPool(dialer, nameDialer, cfg.MaxIdleConnsPerHost, min(cfg.IdleConnTimeout, cfg.UpstreamReadTimeout))
	return s
}

// Close closes idle upstream connections and stops the pool's reaper.
// Connections being served are not interrupted; the Server stays usable.
func (s *Server) Close() { s.pool.close() }

// ServeConn serves one HTTP/1 connection; see listener.FastPath.
func (s *Server) ServeConn(fc *listener.FastConn) {
	c := s.conns.Get().(*conn)
	defer func() {
		// As net/http does for a handler, a panic (a bug) ends this
		// connection, not the process.
		if v := recover(); v != nil {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, false)]
			s.log.Error("panic serving HTTP/1 fast path", "client", c.clientIP, "panic", fmt.Sprint(v), "stack", string(buf))
			if c.watching {
				c.stopWatch()
			}
			fc.Close(false)
			// The conn may be inconsistent: it is not pooled.
		}
	}()
	c.init(fc)
	c.serve()
	c.reset()
	s.conns.Put(c)
}

func (s *Server) logDebug(msg string, attrs ...slog.Attr) {
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	s.log.LogAttrs(context.Background(), slog.LevelDebug, msg, attrs...)
}
