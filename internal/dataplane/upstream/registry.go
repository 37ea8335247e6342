package upstream

import (
	"sync"
	"time"

	"github.com/torii-dev/torii/internal/model"
)

// connectFailureCooldown is how long an endpoint that refused or failed a
// connection is avoided. It is short on purpose: Kubernetes removes dead pods
// from EndpointSlices within seconds, so the cooldown only has to bridge that
// gap without shunning an endpoint that merely restarted.
const connectFailureCooldown = 2 * time.Second

// Registry holds one Backend per backend ID. Its methods are safe for
// concurrent use; they serialise with each other but never block Pick.
//
// Endpoints reach a backend by two lanes: snapshots (Sync) and endpoint
// updates (SetEndpoints, the Kubernetes source's EndpointSlice lane). Each
// call installs its endpoints: the caller must make its calls in the order
// of the cluster views they were computed from, so that the last call always
// carries the newest data. Torii's sources guarantee it: they deliver
// rebuilds and endpoint updates one at a time, each from a view at least as
// new as the one before. (A rule that let the lane's endpoints outrank later
// snapshots would keep stale endpoints after a Service changed its port.)
// ExternalName backends have no endpoint lane: their single DNS-name
// endpoint comes from the Service, and SetEndpoints refuses them.
type Registry struct {
	mu       sync.Mutex
	backends map[string]*Backend
	// clock returns monotonic nanoseconds since the registry was created. It
	// is a field rather than a call to time.Now so tests can drive cooldowns
	// without sleeping.
	clock func() int64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	start := time.Now()
	return &Registry{
		backends: make(map[string]*Backend),
		// time.Since uses the monotonic clock, so wall-clock steps never
		// shorten or stretch a cooldown.
		clock: func() int64 { return int64(time.Since(start)) },
	}
}

// Sync makes the registry hold exactly these backends (by ID) and returns
// their handles aligned with the input slice. State of backends whose ID
// survives (round-robin cursor, cooldowns) is kept; endpoints are replaced by
// the snapshot's (see Registry for the ordering rule).
// Backends whose ID is gone are dropped from the registry, but handles held
// by in-flight requests keep working.
func (r *Registry) Sync(backends []model.Backend) []*Backend {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Backend, len(backends))
	kept := make(map[string]*Backend, len(backends))
	for i := range backends {
		mb := &backends[i]
		b := kept[mb.ID]
		if b == nil {
			b = r.backends[mb.ID]
			if b == nil {
				b = newBackend(r.clock)
			}
			kept[mb.ID] = b
			b.external.Store(mb.ExternalName != "")
			b.setEndpoints(mb.Endpoints)
		}
		out[i] = b
	}
	r.backends = kept
	return out
}

// SetEndpoints replaces one backend's endpoints without a snapshot rebuild
// (the Kubernetes EndpointSlice lane; see Registry for the ordering rule).
// It returns false, changing nothing, if the ID is unknown or names an ExternalName backend. An update for an ID the
// registry does not hold yet is not kept: the caller must make sure the
// next snapshot is built after it (a snapshot seeds new backends).
func (r *Registry) SetEndpoints(id string, eps []model.Endpoint) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.backends[id]
	if b == nil || b.external.Load() {
		return false
	}
	b.setEndpoints(eps)
	return true
}
