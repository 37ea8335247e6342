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
// updates (SetEndpoints, the Kubernetes source's EndpointSlice lane). A
// snapshot is built from a view of the cluster taken before it is applied,
// so an endpoint update can arrive in between, and the snapshot's endpoint
// list for that backend is then older than the one installed. Each endpoint
// set therefore carries a version: 0 for a snapshot's, and for an endpoint
// update a sequence number that grows with every SetEndpoints call. The rule:
//
//   - Sync installs a snapshot's endpoints on a backend that is new to the
//     registry, and on one whose endpoints came from snapshots only
//     (version 0). Once SetEndpoints has set a backend's endpoints, that lane
//     owns them and later snapshots leave them alone; it keeps them current
//     itself, and a snapshot can never tell whether its list is newer.
//   - ExternalName backends have no endpoint lane: their single DNS-name
//     endpoint comes from the Service, so Sync always installs it and
//     SetEndpoints refuses them.
//   - A backend that leaves the snapshot leaves the registry with its
//     version; if it comes back, it is new and the snapshot seeds it.
type Registry struct {
	mu       sync.Mutex
	backends map[string]*Backend
	// seq numbers SetEndpoints calls, for Backend.version.
	seq uint64
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
// survives (round-robin cursor, cooldowns) is kept; endpoints are taken from
// the snapshot as the Registry documentation says: for new backends, for
// backends SetEndpoints never updated, and for ExternalName backends.
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
			external := mb.ExternalName != ""
			b.external.Store(external)
			if b.version == 0 || external {
				b.version = 0
				b.setEndpoints(mb.Endpoints)
			}
		}
		out[i] = b
	}
	r.backends = kept
	return out
}

// SetEndpoints replaces one backend's endpoints without a snapshot rebuild
// (the Kubernetes EndpointSlice lane); from then on snapshots leave them
// alone (see Registry). It returns false, changing nothing, if the ID is
// unknown or names an ExternalName backend. An update for an ID the
// registry does not hold yet is not kept: the caller must make sure the
// next snapshot is built after it (a snapshot seeds new backends).
func (r *Registry) SetEndpoints(id string, eps []model.Endpoint) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.backends[id]
	if b == nil || b.external.Load() {
		return false
	}
	r.seq++
	b.version = r.seq
	b.setEndpoints(eps)
	return true
}
