package dataplane

import (
	"crypto/tls"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/torii-dev/torii/internal/dataplane/certstore"
	"github.com/torii-dev/torii/internal/dataplane/proxy"
	"github.com/torii-dev/torii/internal/dataplane/router"
	"github.com/torii-dev/torii/internal/dataplane/upstream"
	"github.com/torii-dev/torii/internal/model"
)

// Config configures a Dataplane.
type Config struct {
	Proxy proxy.Config
	// DefaultCertificate is served when no certificate matches the SNI name.
	DefaultCertificate *tls.Certificate
}

// Dataplane is the live serving state. Apply may be called from one
// goroutine at a time; everything else is safe for concurrent use.
type Dataplane struct {
	registry *upstream.Registry
	proxy    *proxy.Proxy
	certs    *certstore.Store

	applyMu sync.Mutex
	live    atomic.Pointer[Live]
}

// Live is what the data plane currently serves.
type Live struct {
	Snapshot *model.Snapshot
	// Backends are the runtime handles aligned with Snapshot.Backends; their
	// endpoints may be newer than the snapshot's (endpoint lane).
	Backends []*upstream.Backend
}

// New creates a data plane that answers 503 until the first Apply.
func New(cfg Config) *Dataplane {
	return &Dataplane{
		registry: upstream.NewRegistry(),
		proxy:    proxy.New(cfg.Proxy),
		certs:    certstore.New(cfg.DefaultCertificate),
	}
}

// Apply compiles s and swaps it in: certificates first, so that a new host's
// first TLS handshake already finds its certificate, then routes and
// backends in one atomic step. It returns the certificates that failed to
// load (they are skipped; their hosts get the default certificate).
func (d *Dataplane) Apply(s *model.Snapshot) []error {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	certErrs := d.certs.Update(s.Certificates)
	table := router.Compile(s)
	backends := d.registry.Sync(s.Backends)
	d.proxy.Swap(tableRouter{table}, backends)
	d.live.Store(&Live{Snapshot: s, Backends: backends})
	return certErrs
}

// SetEndpoints replaces one backend's endpoints without a rebuild. From then
// on Apply leaves that backend's endpoints alone, since the snapshot may have
// been built before this update; see upstream.Registry for the rule. It
// returns false for an unknown backend (the next snapshot must then carry the
// update) and for ExternalName backends.
func (d *Dataplane) SetEndpoints(backendID string, eps []model.Endpoint) bool {
	return d.registry.SetEndpoints(backendID, eps)
}

// Live returns the state being served, or nil before the first Apply.
func (d *Dataplane) Live() *Live { return d.live.Load() }

// Handler is the proxy's http.Handler.
func (d *Dataplane) Handler() http.Handler { return d.proxy }

// TLSConfig is the server TLS configuration selecting certificates by SNI.
func (d *Dataplane) TLSConfig() *tls.Config { return d.certs.TLSConfig() }

// Close releases idle upstream connections.
func (d *Dataplane) Close() { d.proxy.Close() }

// tableRouter adapts a compiled router.Table to the proxy's Router interface.
type tableRouter struct{ t *router.Table }

func (r tableRouter) Match(host, path string) (*model.Route, int, bool) {
	target := r.t.Match(host, path)
	if target == nil {
		return nil, -1, false
	}
	return target.Route, target.Backend, true
}

// SetDefaultCertificate replaces the certificate served when no other
// matches the SNI name.
func (d *Dataplane) SetDefaultCertificate(cert *tls.Certificate) { d.certs.SetDefault(cert) }
