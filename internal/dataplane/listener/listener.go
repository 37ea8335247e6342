package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/torii-dev/torii/internal/dataplane/defaults"
)

// Defaults for zero Config fields.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 75 * time.Second
	DefaultMaxHeaderBytes    = 60 << 10
	DefaultDrainTimeout      = 30 * time.Second
	DefaultClientSendTimeout = defaults.ClientSendTimeout
)

const (
	// maxConcurrentStreams is the HTTP/2 stream limit per connection.
	maxConcurrentStreams = 250
	// goAwayInterval is how often GOAWAY is broadcast again while draining,
	// to reach HTTP/2 connections that started just as the drain began.
	goAwayInterval = 200 * time.Millisecond
	// forceCloseWait bounds the wait for connection goroutines after they
	// were force-closed.
	forceCloseWait = 5 * time.Second
)

// Config configures a Server.
type Config struct {
	// HTTPAddr and HTTPSAddr are the listen addresses; "" disables that
	// listener and "127.0.0.1:0" picks a free port.
	HTTPAddr, HTTPSAddr string
	// Handler serves every request, HTTP/1 and HTTP/2.
	Handler http.Handler
	// TLSConfig is required when HTTPSAddr is set. Its NextProtos decide
	// whether clients may negotiate HTTP/2 ("h2").
	TLSConfig *tls.Config
	// ReadHeaderTimeout bounds reading a request head and the TLS
	// handshake. Zero means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections without requests. Zero
	// means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head. Zero means
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// DrainTimeout is how long Serve waits for in-flight requests after its
	// context is done. Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// ClientSendTimeout closes an HTTP/2 connection whose peer accepts no
	// bytes for this long, as nginx's send_timeout does. Zero means
	// DefaultClientSendTimeout. (HTTP/1 responses are bounded per write by
	// the proxy and the fast path.)
	ClientSendTimeout time.Duration
	// Logger receives the servers' own messages. Nil discards them.
	Logger *slog.Logger
	// OnConnState, if set, is called with +1 when a connection is accepted
	// and -1 when it is closed, for an active-connections gauge. It is
	// called from many goroutines and must be quick.
	OnConnState func(delta int)
	// OnReject, if set, is called each time the request-smuggling guard
	// refuses a request, with one of the Reject* reasons (constants, so a
	// caller can resolve metric children up front). It is called from
	// many goroutines and must be quick.
	OnReject func(reason string)
	// FastPath, if set, serves HTTP/1 connections instead of net/http,
	// handing them to net/http for anything it does not serve itself; see
	// FastPath.
	FastPath FastPath
}

// Reasons passed to Config.OnReject.
const (
	// RejectFraming: a head with ambiguous body framing (Content-Length
	// with Transfer-Encoding, an unsupported Transfer-Encoding, differing
	// or invalid Content-Lengths), the requests smuggling relies on.
	RejectFraming = "framing"
	// RejectMalformedHead: a malformed request line or header (obs-fold,
	// whitespace before a colon, control bytes, a version other than
	// HTTP/1.x).
	RejectMalformedHead = "malformed_head"
	// RejectHeadTooLarge: a head over MaxHeaderBytes (answered 431).
	RejectHeadTooLarge = "head_too_large"
	// RejectBadChunked: a malformed chunked body (or one over net/http's
	// limits). The handler's body read fails too, so a proxy that answers
	// it may count the same request once more under a reason of its own.
	RejectBadChunked = "bad_chunked"
	// RejectUpgradeOverflow: more data than the guard holds after a
	// request that may switch protocols, before the switch happened.
	RejectUpgradeOverflow = "upgrade_overflow"
)

// connPhase is where an open connection is in its life.
type connPhase uint8

const (
	phaseDispatch connPhase = iota // TLS handshake or protocol detection
	phaseHTTP1                     // with net/http's HTTP/1 server
	phaseHTTP2                     // with the HTTP/2 server
	phaseFast                      // with Config.FastPath
)

// Server is the client-facing HTTP and HTTPS listener pair.
type Server struct {
	cfg     Config
	log     *slog.Logger
	maxHead int

	httpLn, httpsLn net.Listener
	tlsConfig       *tls.Config

	h1     *http.Server
	h1Ln   *chanListener
	h2     *http2.Server
	goAway *http.Server // only broadcasts GOAWAY, see New
	pool   bufPool

	// dispatchCtx ends TLS handshakes when draining starts.
	dispatchCtx    context.Context
	cancelDispatch context.CancelFunc

	// forceClosing is set when the drain gives up: connections are then
	// closed at once, without lingering.
	forceClosing atomic.Bool
	lingerWG     sync.WaitGroup // lingering closes, see guardConn.Close
	// lingerMu orders every lingerWG.Add before Serve's lingerWG.Wait, or
	// after it with lingerStopped set (startLinger then refuses). Without
	// it, net/http's connection goroutine can close a connection (and add
	// to lingerWG) after http.Server.Shutdown has already closed that
	// connection as idle and returned, i.e. concurrently with the Wait:
	// a WaitGroup misuse that lets a lingering close outlive Serve.
	lingerMu      sync.Mutex
	lingerStopped bool

	mu       sync.Mutex
	conns    map[*trackedConn]connPhase
	draining bool
	served   bool
	// fastDraining is draining for FastPath connections, which check it
	// without the mutex between requests.
	fastDraining atomic.Bool
	// fastServed and fastHandoffs count connections given to FastPath and
	// those it handed on to net/http (see FastPathStats).
	fastServed, fastHandoffs atomic.Uint64

	acceptWG sync.WaitGroup // accept loops
	connWG   sync.WaitGroup // per-connection goroutines: dispatch and HTTP/2
}

// New validates cfg and binds the listeners, so that address errors surface
// at start-up and callers learn the ports. The listeners stay open until
// Serve returns; to release them without serving, call Serve with a context
// that is already done.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("listener: Handler is required")
	}
	if cfg.HTTPAddr == "" && cfg.HTTPSAddr == "" {
		return nil, errors.New("listener: neither HTTPAddr nor HTTPSAddr is set")
	}
	if cfg.HTTPSAddr != "" && cfg.TLSConfig == nil {
		return nil, errors.New("listener: TLSConfig is required with HTTPSAddr")
	}
	if cfg.ReadHeaderTimeout < 0 || cfg.IdleTimeout < 0 || cfg.DrainTimeout < 0 || cfg.ClientSendTimeout < 0 || cfg.MaxHeaderBytes < 0 {
		return nil, errors.New("listener: timeouts and MaxHeaderBytes must not be negative")
	}
	cfg.ReadHeaderTimeout = orDefault(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	cfg.IdleTimeout = orDefault(cfg.IdleTimeout, DefaultIdleTimeout)
	cfg.DrainTimeout = orDefault(cfg.DrainTimeout, DefaultDrainTimeout)
	cfg.ClientSendTimeout = orDefault(cfg.ClientSendTimeout, DefaultClientSendTimeout)
	cfg.MaxHeaderBytes = orDefault(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	s := &Server{
		cfg: cfg,
		log: log,
		// net/http allows MaxHeaderBytes plus 4096 bytes of slack for the
		// request line; the guard inspects heads up to the same size.
		maxHead: cfg.MaxHeaderBytes + 4096,
		conns:   map[*trackedConn]connPhase{},
	}
	if cfg.TLSConfig != nil {
		s.tlsConfig = cfg.TLSConfig.Clone()
	}
	var err error
	if cfg.HTTPAddr != "" {
		if s.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("listener: listen for HTTP on %s: %w", cfg.HTTPAddr, err)
		}
	}
	if cfg.HTTPSAddr != "" {
		if s.httpsLn, err = net.Listen("tcp", cfg.HTTPSAddr); err != nil {
			if s.httpLn != nil {
				s.httpLn.Close()
			}
			return nil, fmt.Errorf("listener: listen for HTTPS on %s: %w", cfg.HTTPSAddr, err)
		}
	}
	addr := s.HTTPAddr()
	if addr == nil {
		addr = s.HTTPSAddr()
	}
	s.h1Ln = newChanListener(addr)

	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	s.h1 = &http.Server{
		Handler:           cfg.Handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// Scanners make net/http log a lot of client errors; they are noise
		// at any level above debug.
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// HTTP/2 is served by s.h2 on connections routed before net/http
		// sees them; net/http must never upgrade on its own (h2c included).
		Protocols:    protocols,
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ConnState:    s.connState,
	}
	s.h2 = &http2.Server{
		MaxConcurrentStreams: maxConcurrentStreams,
		IdleTimeout:          cfg.IdleTimeout,
	}
	// ConfigureServer is the only way to have an http2.Server send GOAWAY
	// to the connections it serves: it registers that as an OnShutdown hook
	// of an http.Server. A separate http.Server that never serves carries
	// the hook, so GOAWAY can be broadcast again during the drain without
	// shutting s.h1 down twice.
	s.goAway = &http.Server{}
	if err := http2.ConfigureServer(s.goAway, s.h2); err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("listener: configure HTTP/2: %w", err)
	}
	return s, nil
}

func orDefault[T time.Duration | int](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// HTTPAddr returns the plain HTTP listener's address, or nil if disabled.
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// HTTPSAddr returns the HTTPS listener's address, or nil if disabled.
func (s *Server) HTTPSAddr() net.Addr {
	if s.httpsLn == nil {
		return nil
	}
	return s.httpsLn.Addr()
}

// Serve serves until ctx is done, then stops accepting, lets in-flight
// requests finish (closing idle keep-alive connections and sending GOAWAY on
// HTTP/2 ones) for up to DrainTimeout, force-closes what remains and
// returns. Hijacked connections (WebSockets) are left to their handlers.
// It returns an error only if the drain timed out or Serve was called twice.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.served {
		s.mu.Unlock()
		return errors.New("listener: Serve called more than once")
	}
	s.served = true
	s.mu.Unlock()

	// Requests outlive ctx during the drain, so their contexts descend
	// from a copy of it that is never cancelled.
	base := context.WithoutCancel(ctx)
	s.h1.BaseContext = func(net.Listener) context.Context { return base }
	s.dispatchCtx, s.cancelDispatch = context.WithCancel(base)
	defer s.cancelDispatch()

	h1Done := make(chan struct{})
	go func() {
		defer close(h1Done)
		// Serve returns http.ErrServerClosed once Shutdown closes h1Ln;
		// that is the only way it ends.
		_ = s.h1.Serve(s.h1Ln)
	}()
	if s.httpLn != nil {
		s.acceptWG.Add(1)
		go s.accept(base, s.httpLn, false)
	}
	if s.httpsLn != nil {
		s.acceptWG.Add(1)
		go s.accept(base, s.httpsLn, true)
	}

	<-ctx.Done()
	err := s.drain()
	<-h1Done
	// Lingering closes end within lingerTimeout; waiting for them keeps
	// Serve's promise that nothing of the server outlives it. Closes that
	// come later (net/http's connection goroutines may still be running,
	// hijacked connections belong to their handlers) close at once; see
	// startLinger.
	s.lingerMu.Lock()
	s.lingerStopped = true
	s.lingerMu.Unlock()
	s.lingerWG.Wait()
	return err
}

// drain stops accepting and waits for in-flight work for up to DrainTimeout.
func (s *Server) drain() error {
	s.mu.Lock()
	s.draining = true
	s.fastDraining.Store(true)
	var dispatching []*trackedConn
	var fast []*FastConn
	for c, phase := range s.conns {
		switch phase {
		case phaseDispatch:
			dispatching = append(dispatching, c)
		case phaseFast:
			fast = append(fast, c.fast)
		}
	}
	s.mu.Unlock()
	// Idle FastPath connections close now, as net/http closes its idle
	// keep-alive connections; busy ones close after their request.
	for _, fc := range fast {
		fc.shutIfIdle()
	}
	s.closeListeners()
	// Shutdown closes h1Ln too, unless it runs before h1.Serve has
	// registered it; closing it here makes hand-overs give up either way.
	s.h1Ln.Close()
	s.acceptWG.Wait()
	// Connections not yet given to a server carry no request worth waiting
	// for: abort handshakes and protocol detection.
	s.cancelDispatch()
	for _, c := range dispatching {
		c.Close()
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	s.broadcastGoAway()
	// Shutdown closes h1Ln and idle connections, then waits for active
	// ones. It runs alongside the GOAWAY rebroadcast: an HTTP/2 connection
	// that started just as the drain began must hear GOAWAY while HTTP/1
	// requests are still finishing, not after.
	h1Err := make(chan error, 1)
	go func() { h1Err <- s.h1.Shutdown(ctx) }()
	connsDone := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(connsDone)
	}()
	ticker := time.NewTicker(goAwayInterval)
	defer ticker.Stop()
	h1Finished, connsFinished := false, false
	for !h1Finished || !connsFinished {
		select {
		case err := <-h1Err:
			h1Finished = true
			if err != nil {
				// Shutdown gives up only when ctx is done.
				return s.forceClose(connsDone)
			}
		case <-connsDone:
			connsFinished, connsDone = true, nil
		case <-ticker.C:
			s.broadcastGoAway()
		case <-ctx.Done():
			return s.forceClose(connsDone)
		}
	}
	return nil
}

// forceClose closes every connection still open after the drain timeout
// and waits a bounded time for their goroutines. connsDone is nil if they
// are done already.
func (s *Server) forceClose(connsDone <-chan struct{}) error {
	// Without lingering: net/http closes its connections under its
	// server lock, and a lingering close each would make this take
	// lingerTimeout per refused connection.
	s.forceClosing.Store(true)
	s.mu.Lock()
	remaining := make([]*trackedConn, 0, len(s.conns))
	for c := range s.conns {
		remaining = append(remaining, c)
	}
	s.mu.Unlock()
	// net/http's Close closes its connections through the guard (and
	// marks them closed for its own bookkeeping); the rest are HTTP/2.
	s.h1.Close()
	for _, c := range remaining {
		c.Close()
	}
	if connsDone != nil {
		select {
		case <-connsDone:
		case <-time.After(forceCloseWait):
			s.log.Warn("connection goroutines still running after force-close")
		}
	}
	return fmt.Errorf("listener: drain did not finish within %s; closed %d connections", s.cfg.DrainTimeout, len(remaining))
}

// startLinger registers a lingering close with lingerWG. It reports false
// once Serve has begun its final wait for them; the caller then closes at
// once, as after a forced drain.
func (s *Server) startLinger() bool {
	s.lingerMu.Lock()
	defer s.lingerMu.Unlock()
	if s.lingerStopped {
		return false
	}
	s.lingerWG.Add(1)
	return true
}

// broadcastGoAway tells every HTTP/2 connection to finish its streams and
// accept no more. It runs the OnShutdown hook that ConfigureServer put on
// s.goAway; that server has no listeners or connections of its own, so
// Shutdown returns at once and may be called again.
func (s *Server) broadcastGoAway() {
	_ = s.goAway.Shutdown(context.Background())
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.httpLn, s.httpsLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// accept runs one listener's accept loop; each connection is set up on a
// goroutine of its own so that slow clients cannot stall accepting.
func (s *Server) accept(ctx context.Context, ln net.Listener, secure bool) {
	defer s.acceptWG.Done()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Typically out of file descriptors: back off like net/http
			// rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed", "addr", ln.Addr().String(), "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-s.dispatchCtx.Done():
				return
			}
			continue
		}
		delay = 0
		tc := s.track(c)
		if tc == nil {
			continue
		}
		s.connWG.Add(1)
		if secure {
			go s.serveTLS(ctx, tc)
		} else {
			go s.servePlain(ctx, tc)
		}
	}
}

// track registers an accepted socket, or closes it if draining has begun.
func (s *Server) track(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, srv: s}
	if f := s.cfg.OnConnState; f != nil {
		f(+1)
	}
	s.mu.Lock()
	draining := s.draining
	if !draining {
		s.conns[tc] = phaseDispatch
	}
	s.mu.Unlock()
	if draining {
		tc.Close()
		return nil
	}
	return tc
}

// forget is called once when a tracked socket closes.
func (s *Server) forget(c *trackedConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	if f := s.cfg.OnConnState; f != nil {
		f(-1)
	}
}

// enter moves a connection to a server, unless draining has begun or the
// connection is already closed.
func (s *Server) enter(c *trackedConn, phase connPhase) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, open := s.conns[c]; !open || s.draining {
		return false
	}
	s.conns[c] = phase
	return true
}

// servePlain routes a plain connection: HTTP/2 with prior knowledge if it
// starts with the HTTP/2 preface, HTTP/1 through the guard otherwise.
func (s *Server) servePlain(ctx context.Context, tc *trackedConn) {
	defer s.connWG.Done()
	g := newGuard(tc, tc, &s.pool, s.maxHead, s.cfg.ReadHeaderTimeout)
	_ = tc.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
	h2c, err := g.detectPreface()
	if err != nil {
		s.log.Debug("reading first bytes failed", "remote", tc.RemoteAddr().String(), "err", err)
		tc.Close()
		return
	}
	_ = tc.SetReadDeadline(time.Time{})
	if h2c {
		s.serveHTTP2(ctx, tc, g.replay())
		return
	}
	if s.cfg.FastPath != nil {
		s.serveFast(tc, tc, nil, g)
		return
	}
	s.serveHTTP1(tc, g)
}

// serveTLS handshakes, bounded by ReadHeaderTimeout, and routes by ALPN.
func (s *Server) serveTLS(ctx context.Context, tc *trackedConn) {
	defer s.connWG.Done()
	conn := tls.Server(tc, s.tlsConfig)
	deadline := time.Now().Add(s.cfg.ReadHeaderTimeout)
	_ = tc.SetDeadline(deadline)
	hctx, cancel := context.WithDeadline(s.dispatchCtx, deadline)
	err := conn.HandshakeContext(hctx)
	cancel()
	if err != nil {
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) && rhe.Conn != nil && looksLikeHTTP(rhe.RecordHeader) {
			_, _ = io.WriteString(rhe.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		s.log.Debug("TLS handshake failed", "remote", tc.RemoteAddr().String(), "err", err)
		tc.Close()
		return
	}
	_ = tc.SetDeadline(time.Time{})
	state := conn.ConnectionState()
	if state.NegotiatedProtocol == http2.NextProtoTLS {
		// The HTTP/2 server sets r.TLS from the *tls.Conn itself.
		s.serveHTTP2(ctx, tc, conn)
		return
	}
	if s.cfg.FastPath != nil {
		s.serveFast(tc, conn, &state, nil)
		return
	}
	g := newGuard(conn, tc, &s.pool, s.maxHead, s.cfg.ReadHeaderTimeout)
	s.serveHTTP1(tc, &tlsGuardConn{guardConn: g, state: state})
}

func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

func (s *Server) serveHTTP1(tc *trackedConn, c net.Conn) {
	if !s.enter(tc, phaseHTTP1) {
		c.Close()
		return
	}
	s.h1Ln.handoff(c)
}

// testHookServeHTTP2, if set by a test, runs when an HTTP/2 connection has
// been accepted for serving but before the HTTP/2 server knows it.
var testHookServeHTTP2 func()

func (s *Server) serveHTTP2(ctx context.Context, tc *trackedConn, c net.Conn) {
	if !s.enter(tc, phaseHTTP2) {
		c.Close()
		return
	}
	if testHookServeHTTP2 != nil {
		testHookServeHTTP2()
	}
	// The HTTP/2 server's writes are batched; see writeBehindConn.
	wc := newWriteBehindConn(c, s.cfg.ClientSendTimeout)
	s.h2.ServeConn(wc, &http2.ServeConnOpts{Context: ctx, BaseConfig: s.h1, Handler: s.cfg.Handler})
	// ServeConn does not close a connection it refuses at once (bad TLS
	// parameters).
	wc.Close()
}

// connState follows net/http's view of HTTP/1 connections for the guard.
func (s *Server) connState(c net.Conn, state http.ConnState) {
	gc, ok := c.(guarded)
	if !ok {
		return
	}
	g := gc.guard()
	switch state {
	case http.StateIdle:
		g.noteIdle()
	case http.StateHijacked:
		g.noteHijacked()
		// The handler owns it now: the drain neither waits for it nor
		// closes it.
		s.mu.Lock()
		delete(s.conns, g.raw)
		s.mu.Unlock()
	}
}

// FastPathStats returns how many connections were given to Config.FastPath
// and how many of those it handed on to net/http. Connections, not
// requests: counted where no request is being served.
func (s *Server) FastPathStats() (served, handedOff uint64) {
	return s.fastServed.Load(), s.fastHandoffs.Load()
}
