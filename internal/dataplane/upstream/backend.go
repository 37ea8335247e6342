package upstream

import (
	"slices"
	"sync/atomic"

	"github.com/torii-dev/torii/internal/model"
)

// Backend is the runtime handle of one backend: its current endpoint set and
// balancing state. A handle stays valid after its backend leaves the
// registry, so requests that loaded it finish normally.
type Backend struct {
	clock func() int64
	set   atomic.Pointer[endpointSet]
	// external marks an ExternalName backend, whose endpoints only
	// snapshots provide. Set under the registry's mutex, read by requests.
	external atomic.Bool
	// next is the round-robin cursor. It only ever increases; wrap-around
	// after 2^64 picks is harmless.
	next atomic.Uint64
	// downHint is the latest cooldown deadline reported on any endpoint, or 0
	// when none is pending. It lets Pick skip reading the clock and the
	// per-endpoint deadlines in the common case where nothing failed.
	downHint atomic.Int64
}

// endpointSet is an immutable list of endpoints with their dial addresses.
type endpointSet struct {
	endpoints []model.Endpoint
	states    []*endpointState
}

// endpointState is the per-address state. The same pointer is carried into
// every later set that still lists the address, so a failure reported against
// an older set is never lost to a concurrent endpoint update.
type endpointState struct {
	addr string
	// downUntil is the clock value until which connects are avoided; 0 means
	// healthy.
	downUntil atomic.Int64
}

func newBackend(clock func() int64) *Backend {
	b := &Backend{clock: clock}
	b.set.Store(&endpointSet{})
	return b
}

// IsExternalName reports whether the backend is an ExternalName Service's:
// its endpoint is a DNS name (or address) chosen by whoever wrote the
// Service, which may resolve anywhere, so connects to it need checking.
func (b *Backend) IsExternalName() bool { return b.external.Load() }

// Endpoints returns the current endpoints. The slice is shared and must not
// be modified.
func (b *Backend) Endpoints() []model.Endpoint { return b.set.Load().endpoints }

// setEndpoints installs eps as the new endpoint set, keeping the state of
// addresses that remain. Callers serialise through the registry's mutex.
func (b *Backend) setEndpoints(eps []model.Endpoint) {
	old := b.set.Load()
	if slices.Equal(old.endpoints, eps) {
		return
	}
	prev := make(map[string]*endpointState, len(old.states))
	for _, st := range old.states {
		prev[st.addr] = st
	}
	next := &endpointSet{
		endpoints: make([]model.Endpoint, 0, len(eps)),
		states:    make([]*endpointState, 0, len(eps)),
	}
	seen := make(map[string]bool, len(eps))
	for _, ep := range eps {
		addr := ep.HostPort()
		if seen[addr] {
			// The model promises unique endpoints; a duplicate would only
			// skew the round robin, so drop it rather than trust it.
			continue
		}
		seen[addr] = true
		st := prev[addr]
		if st == nil {
			st = &endpointState{addr: addr}
		}
		next.endpoints = append(next.endpoints, ep)
		next.states = append(next.states, st)
	}
	b.set.Store(next)
}

// Pick returns the next endpoint address ("host:port", precomputed, no
// allocation) by per-request round-robin, skipping endpoints in
// connect-failure cooldown unless all remaining ones are, and skipping the
// addresses in tried. ok is false when there are no endpoints, or when every
// endpoint is in tried.
func (b *Backend) Pick(tried []string) (addr string, ok bool) {
	s := b.set.Load()
	n := uint64(len(s.states))
	if n == 0 {
		return "", false
	}
	var now int64
	checkDown := false
	if hint := b.downHint.Load(); hint != 0 {
		now = b.clock()
		if now < hint {
			checkDown = true
		} else {
			// Every cooldown has expired; clear the hint so later picks
			// skip the clock again. A failure reported meanwhile raised
			// the hint, which makes this CAS fail harmlessly.
			b.downHint.CompareAndSwap(hint, 0)
		}
	}
	start := b.next.Add(1) - 1
	var fallback *endpointState
	var fallbackUntil int64
	var cooling uint64
	for i := uint64(0); i < n; i++ {
		st := s.states[(start+i)%n]
		if len(tried) > 0 && slices.Contains(tried, st.addr) {
			continue
		}
		if checkDown {
			if until := st.downUntil.Load(); until > now {
				// Remember the endpoint whose cooldown ends first: if
				// all are cooling down it is the likeliest to be back.
				if fallback == nil || until < fallbackUntil {
					fallback, fallbackUntil = st, until
				}
				cooling++
				continue
			}
		}
		if cooling > 0 {
			// Move the cursor past the endpoints skipped for cooldown, so
			// the endpoint after them does not take their share as well.
			b.next.Add(cooling)
		}
		return st.addr, true
	}
	if fallback != nil {
		return fallback.addr, true
	}
	return "", false
}

// ReportConnectFailure puts the endpoint at addr in a short cooldown after a
// refused or failed connect. Unknown addresses are ignored.
func (b *Backend) ReportConnectFailure(addr string) {
	s := b.set.Load()
	for _, st := range s.states {
		if st.addr != addr {
			continue
		}
		until := b.clock() + int64(connectFailureCooldown)
		st.downUntil.Store(until)
		for {
			hint := b.downHint.Load()
			if hint >= until || b.downHint.CompareAndSwap(hint, until) {
				return
			}
		}
	}
}
