package router

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/torii-dev/torii/internal/model"
)

// noRoute is the rank of "no route". It is larger than every real rank, so
// the best of several candidates is simply the minimum.
const noRoute = math.MaxInt32

// pathEntry holds, for one path key, the best route of each kind.
type pathEntry struct {
	// exact is the rank of the best Exact route whose path equals the key.
	exact int32
	// prefix is the rank of the best Prefix or ImplementationSpecific route
	// whose path, less one trailing '/', equals the key.
	prefix int32
}

// vhost is the compiled path matcher of one virtual host.
//
// Routes are ranked by precedence, so comparing two matches is comparing two
// integers. A Prefix route with key p (its path less one trailing '/')
// matches request path r exactly when p == r, or when p == r[:i] and r[i] is
// '/'. Those candidates are found with one map lookup each, so the cost of a
// match depends on the request path's depth, not on the number of routes.
type vhost struct {
	// targets holds one precomputed target per usable route, best first; a
	// rank is an index into it.
	targets []Target
	// paths maps Exact paths and Prefix keys to their best ranks.
	paths map[string]pathEntry
	// keyLens is a bitset of the lengths of the keys in paths. Candidates of
	// other lengths are skipped without hashing them, which keeps a deep
	// request path from costing one lookup per '/'.
	keyLens []uint64
	// root is the rank of the best Prefix route with path "/", which matches
	// every request, or noRoute.
	root int32
	// fallback serves unmatched paths: the Default, else the CatchAll, else
	// nil.
	fallback *Target
}

// typeRank orders path types at equal path length; -1 marks a type Torii
// cannot match.
func typeRank(t model.PathType) int {
	switch t {
	case model.PathExact:
		return 0
	case model.PathPrefix:
		return 1
	case model.PathImplementationSpecific:
		return 2
	}
	return -1
}

// compileVHost builds the path matcher of vh. catchAll is the fallback when
// vh has no Default.
func compileVHost(vh *model.VirtualHost, backends map[string]int, catchAll *Target) *vhost {
	order := make([]int, 0, len(vh.Routes))
	for i := range vh.Routes {
		// A route whose type is unknown cannot be matched faithfully, and
		// guessing would hand it traffic its author never asked for.
		if typeRank(vh.Routes[i].PathType) >= 0 {
			order = append(order, i)
		}
	}
	// The snapshot's order is not trusted: sort by precedence here. The
	// stable sort keeps the Routes order as the final tie-breaker.
	slices.SortStableFunc(order, func(a, b int) int {
		ra, rb := &vh.Routes[a], &vh.Routes[b]
		if c := cmp.Compare(len(rb.Path), len(ra.Path)); c != 0 {
			return c
		}
		return cmp.Compare(typeRank(ra.PathType), typeRank(rb.PathType))
	})

	v := &vhost{
		targets:  make([]Target, len(order)),
		root:     noRoute,
		fallback: catchAll,
	}
	if vh.Default != nil {
		v.fallback = newTarget(vh.Default, backends)
	}
	for rank, i := range order {
		r := &vh.Routes[i]
		v.targets[rank] = Target{Route: r, Backend: backendIndex(r.BackendID, backends)}
		// Ranks ascend through this loop, so the first route seen for a key
		// is its best and later ones never replace it.
		switch {
		case r.PathType == model.PathExact:
			e := v.entry(r.Path)
			if e.exact == noRoute {
				e.exact = int32(rank)
				v.paths[r.Path] = e
			}
		case r.Path == "/":
			if v.root == noRoute {
				v.root = int32(rank)
			}
		default:
			key := strings.TrimSuffix(r.Path, "/")
			e := v.entry(key)
			if e.prefix == noRoute {
				e.prefix = int32(rank)
				v.paths[key] = e
			}
		}
	}
	return v
}

// entry returns the current entry for key, or an empty one, and records the
// key's length. The caller stores the entry back.
func (v *vhost) entry(key string) pathEntry {
	if v.paths == nil {
		v.paths = make(map[string]pathEntry)
	}
	if e, ok := v.paths[key]; ok {
		return e
	}
	n := len(key)
	for len(v.keyLens) <= n/64 {
		v.keyLens = append(v.keyLens, 0)
	}
	v.keyLens[n/64] |= 1 << (n % 64)
	return pathEntry{exact: noRoute, prefix: noRoute}
}

// hasKeyLen reports whether some key in v.paths is n bytes long.
func (v *vhost) hasKeyLen(n int) bool {
	return n/64 < len(v.keyLens) && v.keyLens[n/64]&(1<<(n%64)) != 0
}

// match returns the target for path within this virtual host.
func (v *vhost) match(path string) *Target {
	// bestLen is a lower bound on the length of best's path as written: a
	// match through key k has a path of len(k) or len(k)+1 bytes.
	best, bestLen := v.root, 1
	if v.hasKeyLen(len(path)) {
		if e, ok := v.paths[path]; ok {
			if r := min(e.exact, e.prefix); r < best {
				best, bestLen = r, len(path)
			}
		}
	}
	// Every other candidate is a Prefix key equal to path[:i] with path[i]
	// == '/'. Keys longer than the longest one present cannot exist, so the
	// scan starts there and walks towards shorter candidates.
	end := min(len(path), len(v.keyLens)*64)
	for i := strings.LastIndexByte(path[:end], '/'); i >= 0; i = strings.LastIndexByte(path[:i], '/') {
		// A key of length i comes from a path of at most i+1 bytes. Once
		// the best match is longer than that, no shorter candidate can
		// outrank it; for canonical paths this stops right after the
		// longest matching key.
		if best != noRoute && bestLen > i+1 {
			break
		}
		if !v.hasKeyLen(i) {
			continue
		}
		if e, ok := v.paths[path[:i]]; ok && e.prefix < best {
			best, bestLen = e.prefix, i
		}
	}
	if best == noRoute {
		return v.fallback
	}
	return &v.targets[best]
}
