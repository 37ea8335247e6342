package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/torii-dev/torii/internal/admin"
	"github.com/torii-dev/torii/internal/controller"
	"github.com/torii-dev/torii/internal/dataplane"
	"github.com/torii-dev/torii/internal/dataplane/certstore"
	"github.com/torii-dev/torii/internal/dataplane/fastpath"
	"github.com/torii-dev/torii/internal/dataplane/listener"
	"github.com/torii-dev/torii/internal/dataplane/proxy"
	"github.com/torii-dev/torii/internal/metrics"
	"github.com/torii-dev/torii/internal/source/dir"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

// Config is everything `torii serve` is configured with.
type Config struct {
	// ManifestDir is the directory of Kubernetes YAML to serve. Empty means
	// Kubernetes mode: objects come from the API server (see Kube).
	ManifestDir string
	// Kube configures Kubernetes mode.
	Kube KubeConfig
	// Version is reported in the Kubernetes client's user agent.
	Version string

	HTTPAddr, HTTPSAddr, AdminAddr string

	Translate translate.Config
	// Webhook configures the validating admission webhook.
	Webhook WebhookConfig
	// DefaultSSLCertificate names a TLS Secret "<namespace>/<name>" served
	// when no certificate matches; a self-signed one is generated otherwise.
	DefaultSSLCertificate string

	Proxy proxy.Config

	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// ShutdownGracePeriod is how long readiness reports false before the
	// listeners stop accepting, so load balancers stop sending new traffic.
	ShutdownGracePeriod time.Duration
	// DrainTimeout bounds the wait for in-flight requests at shutdown.
	DrainTimeout time.Duration

	Pprof  bool
	Logger *slog.Logger

	// DisableHTTP1FastPath serves every request with net/http and its
	// Transport. By default HTTP/1 requests go to the fast path (package
	// fastpath), which hands what it does not handle to net/http, and the
	// requests net/http serves (HTTP/2 included) reach upstreams through
	// the fast path's pool when they carry no body (fastpath.Transport).
	DisableHTTP1FastPath bool
}

// Server is a running Torii process.
type Server struct {
	cfg       Config
	log       *slog.Logger
	metrics   *metrics.Metrics
	dp        *dataplane.Dataplane
	ctrl      *controller.Controller
	source    *dir.Source // directory mode
	kube      *kubeMode   // Kubernetes mode
	listeners *listener.Server
	admin     *admin.Server
	webhook   *webhookParts // nil when disabled

	// lastObjects is the last view of the manifest source, which the
	// webhook judges against in directory mode.
	lastObjects atomic.Pointer[store.Objects]

	// fast is the HTTP/1 fast path, nil with Config.DisableHTTP1FastPath.
	fast *fastpath.Server

	stopping     atomic.Bool
	sourceMu     sync.Mutex
	sourceErrors []string
	// defaultCertOutcome is the last logged result of loading
	// --default-ssl-certificate; applyObjects runs one view at a time.
	defaultCertOutcome string
}

// New builds every part and binds every listener. In directory mode it also
// publishes the first snapshot, so that when New returns the process can
// serve; in Kubernetes mode the first snapshot follows the informers' sync
// in Run, and readiness waits for it.
func New(cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, metrics: metrics.New()}

	defaultCert, err := certstore.SelfSigned(nil, time.Now())
	if err != nil {
		return nil, fmt.Errorf("generate default certificate: %w", err)
	}
	proxyCfg := cfg.Proxy
	proxyCfg.Metrics = s.metrics
	proxyCfg.Logger = log
	s.dp = dataplane.New(dataplane.Config{Proxy: proxyCfg, DefaultCertificate: &defaultCert})
	s.ctrl = controller.New(controller.Config{Translate: cfg.Translate, Dataplane: s.dp, Metrics: s.metrics, Logger: log})

	if cfg.ManifestDir != "" {
		if s.source, err = dir.New(dir.Config{Dir: cfg.ManifestDir, Logger: log}); err != nil {
			return nil, err
		}
		s.apply(s.source.Load())
	} else if s.kube, err = newKubeMode(s, cfg.Kube); err != nil {
		return nil, err
	}
	if s.webhook, err = s.newWebhook(cfg.Webhook); err != nil {
		return nil, err
	}

	if s.listeners, err = listener.New(listener.Config{
		HTTPAddr:          cfg.HTTPAddr,
		HTTPSAddr:         cfg.HTTPSAddr,
		Handler:           s.dp.Handler(),
		TLSConfig:         s.dp.TLSConfig(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		DrainTimeout:      cfg.DrainTimeout,
		ClientSendTimeout: cfg.Proxy.ClientSendTimeout,
		Logger:            log,
		OnConnState:       func(delta int) { s.metrics.ActiveConnections.Add(float64(delta)) },
		// Refusals are rare (attacks, broken clients), so the label lookup
		// is no hot-path cost.
		OnReject: func(reason string) { s.metrics.RejectedRequests.WithLabelValues(reason).Inc() },
		FastPath: s.newFastPath(),
	}); err != nil {
		s.closeWebhook()
		return nil, err
	}
	if cfg.AdminAddr == "" {
		return s, nil
	}
	if s.admin, err = admin.New(admin.Config{
		Addr:    cfg.AdminAddr,
		Ready:   s.Ready,
		Metrics: s.metrics.Handler(),
		Routes:  func() any { return s.ctrl.DebugRoutes(s.currentSourceErrors()) },
		Pprof:   cfg.Pprof,
		Logger:  log,
	}); err != nil {
		// Serve with a done context releases the bound proxy listeners.
		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.listeners.Serve(canceled)
		s.closeWebhook()
		return nil, err
	}
	return s, nil
}

// closeWebhook releases the webhook listener of a server that will not run.
func (s *Server) closeWebhook() {
	if s.webhook != nil {
		_ = s.webhook.server.Close()
	}
}

// HTTPAddr is the plain HTTP listener's address (nil when disabled).
func (s *Server) HTTPAddr() net.Addr { return s.listeners.HTTPAddr() }

// FastPathStats returns how many HTTP/1 connections the fast path was given
// and how many of those it handed on to net/http (listener.FastPathStats);
// both stay 0 with Config.DisableHTTP1FastPath.
func (s *Server) FastPathStats() (served, handedOff uint64) { return s.listeners.FastPathStats() }

// HTTPSAddr is the TLS listener's address (nil when disabled).
func (s *Server) HTTPSAddr() net.Addr { return s.listeners.HTTPSAddr() }

// AdminAddr is the admin listener's address (nil when disabled).
func (s *Server) AdminAddr() net.Addr {
	if s.admin == nil {
		return nil
	}
	return s.admin.Addr()
}

// Ready reports whether a snapshot is live and the server is not stopping,
// and, with the admission webhook enabled, whether it has a certificate to
// serve.
func (s *Server) Ready() bool { return s.ctrl.Ready() && !s.stopping.Load() && s.webhookReady() }

// Run serves until ctx is done, then stops gracefully: readiness turns false,
// the grace period passes (load balancers stop sending new traffic),
// listeners stop accepting and in-flight requests drain; the manifest source
// and the admin endpoints stop last, so health and metrics stay visible for
// the whole drain. The admission webhook keeps answering until the end too:
// the API server may call it until the endpoints drop this pod.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 5)
	start := func(name string, fn func(context.Context) error) (stop func()) {
		runCtx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := fn(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
		return func() { cancel(); <-done }
	}
	stopAdmin := func() {}
	if s.admin != nil {
		stopAdmin = start("admin listener", s.admin.Serve)
	}
	var stopSource func()
	if s.source != nil {
		stopSource = start("manifest source", func(ctx context.Context) error { return s.source.Run(ctx, s.apply) })
	} else {
		stopSource = start("kubernetes mode", s.kube.run)
	}
	stopListeners := start("proxy listeners", s.listeners.Serve)
	stopWebhook := func() {}
	if s.webhook != nil {
		stopCerts := start("webhook certificate", s.webhook.certs.Run)
		stopServer := start("webhook listener", s.webhook.server.Serve)
		stopWebhook = func() { stopServer(); stopCerts() }
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.stopping.Store(true)
	if err == nil && s.cfg.ShutdownGracePeriod > 0 {
		s.log.Info("shutting down: readiness is false, waiting for the grace period", "period", s.cfg.ShutdownGracePeriod)
		time.Sleep(s.cfg.ShutdownGracePeriod)
	}
	s.log.Info("draining in-flight requests", "timeout", s.cfg.DrainTimeout)
	stopListeners()
	if s.kube != nil {
		clearCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s.kube.shutdown(clearCtx)
		cancel()
	}
	stopSource()
	s.dp.Close()
	s.closeFastPath()
	stopWebhook()
	stopAdmin()
	if err == nil {
		select {
		case err = <-errc: // a failure while draining, such as a forced close
		default:
		}
	}
	return err
}

// apply publishes a source update.
func (s *Server) apply(u dir.Update) {
	errs := make([]string, 0, len(u.Errors))
	for _, e := range u.Errors {
		errs = append(errs, e.Error())
	}
	s.sourceMu.Lock()
	s.sourceErrors = errs
	s.sourceMu.Unlock()
	s.lastObjects.Store(u.Objects)
	s.applyObjects(u.Objects)
}

// applyObjects publishes a view of the objects. Sources call it one view at
// a time.
func (s *Server) applyObjects(objs *store.Objects) {
	if err := s.ctrl.Apply(objs); err != nil {
		return // the controller logged it; the last good snapshot keeps serving
	}
	s.applyDefaultCertificate(objs)
}

func (s *Server) currentSourceErrors() []string {
	s.sourceMu.Lock()
	defer s.sourceMu.Unlock()
	return s.sourceErrors
}

// applyDefaultCertificate loads --default-ssl-certificate from the objects.
// Its outcome is logged only when it changes, never on every rebuild.
func (s *Server) applyDefaultCertificate(objs *store.Objects) {
	ref := s.cfg.DefaultSSLCertificate
	if ref == "" {
		return
	}
	outcome := "secret not found; keeping the current default certificate"
	for _, sec := range objs.Secrets {
		if sec.Namespace+"/"+sec.Name != ref {
			continue
		}
		cert, err := tls.X509KeyPair(sec.Data["tls.crt"], sec.Data["tls.key"])
		if err != nil {
			outcome = "secret is not a valid TLS pair (" + err.Error() + "); keeping the current default certificate"
			break
		}
		s.dp.SetDefaultCertificate(&cert)
		outcome = "loaded"
		break
	}
	if outcome == s.defaultCertOutcome {
		return
	}
	s.defaultCertOutcome = outcome
	if outcome == "loaded" {
		s.log.Info("default SSL certificate loaded", "secret", ref)
		return
	}
	s.log.Warn("default SSL certificate: "+outcome, "secret", ref)
}
