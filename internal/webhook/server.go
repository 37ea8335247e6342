package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// ServerConfig configures the webhook's TLS listener.
type ServerConfig struct {
	// Addr is the listen address, e.g. ":9443".
	Addr string
	// Handler serves Path; normally a *Handler.
	Handler http.Handler
	// GetCertificate returns the serving certificate; it is asked on every
	// handshake, so a rotated certificate is served without a restart.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ReviewTimeout is the handler's review timeout; responses may be
	// written for 5 s past it. Zero means DefaultReviewTimeout.
	ReviewTimeout time.Duration
	Logger        *slog.Logger
}

// Server is the webhook's HTTPS listener. It serves Path and nothing else.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// NewServer binds the listener.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Handler == nil || cfg.GetCertificate == nil {
		return nil, errors.New("webhook server: a handler and a certificate source are required")
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, cfg.Handler)
	review := cfg.ReviewTimeout
	if review <= 0 {
		review = DefaultReviewTimeout
	}
	return &Server{ln: ln, srv: &http.Server{
		Handler:   mux,
		TLSConfig: tlsConfig(cfg.GetCertificate),
		// HTTP/1.1 only: a non-nil, empty TLSNextProto turns HTTP/2 off.
		// The API server sends one review per request and falls back to
		// HTTP/1.1; HTTP/2 would only add its per-connection state and its
		// history of resource-exhaustion bugs (rapid reset, CONTINUATION
		// floods) to a port whose one client needs none of it.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// The API server sends a small request in one write and waits at
		// most the webhook's timeout for the answer. ReadTimeout bounds
		// the TLS handshake, headers and body of every request; the
		// handler cuts the body shorter (2 s).
		ReadHeaderTimeout: 3 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      review + 5*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(serverErrorWriter{logger}, "", 0),
	}}, nil
}

// tlsConfig is the listener's TLS configuration.
//
// The minimum is TLS 1.2, not 1.3, for compatibility: the one client is
// the API server, and an API server built in FIPS mode with Go's
// BoringCrypto before Go 1.24 cannot negotiate TLS 1.3 at all. Every other
// API server offers TLS 1.3, which is then chosen. With TLS 1.2 only the
// ECDHE AEAD suites are accepted (forward secrecy, no CBC); a generated
// certificate is ECDSA, one from cert-manager may be RSA.
func tlsConfig(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos:     []string{"http/1.1"},
		GetCertificate: get,
	}
}

// serverErrorWriter logs what http.Server reports through its ErrorLog:
// failed TLS handshakes at debug level (port scans, health checks of load
// balancers, and every call before the first certificate is ready make
// them), everything else (a panic in a handler, an accept error) as a
// warning.
type serverErrorWriter struct{ log *slog.Logger }

func (w serverErrorWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.Contains(msg, "TLS handshake error") {
		w.log.Debug("webhook listener", "error", msg)
	} else {
		w.log.Warn("webhook listener", "error", msg)
	}
	return len(p), nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx is done, then lets requests in progress finish
// (for up to 5 s).
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.ServeTLS(s.ln, "", "") }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.srv.Shutdown(shutdownCtx)
		if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
			return serveErr
		}
		return err
	}
}

// Close releases the listener of a server that was never served.
func (s *Server) Close() error { return s.ln.Close() }
