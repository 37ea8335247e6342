package router

import (
	"strings"

	"github.com/torii-dev/torii/internal/model"
)

// Target is what a request is routed to. Targets are precomputed at Compile
// time; Match returns a pointer into the table and never allocates. A Target
// belongs to its Table and must not be modified.
type Target struct {
	// Route is the matched route, the host's Default, or the snapshot's
	// CatchAll. It points into the compiled snapshot.
	Route *model.Route
	// Backend is the index into the compiled snapshot's Backends of
	// Route.BackendID, or -1 if the snapshot has no such backend.
	Backend int
}

// Table is a compiled snapshot. It is immutable and safe for concurrent
// Match calls.
type Table struct {
	// exact maps a lower-case host name to its virtual host.
	exact map[string]*vhost
	// wildcard maps the suffix of "*.suffix" to its virtual host, so that a
	// request host is looked up by the part after its first label.
	wildcard map[string]*vhost
	// hostless serves requests no named virtual host takes; nil if the
	// snapshot has no host-less virtual host.
	hostless *vhost
	// catchAll is the snapshot's CatchAll target, or nil.
	catchAll *Target
}

// Compile builds the lookup table for s. It never modifies s, and the table
// keeps pointers into it, so s must stay unmodified for the table's lifetime
// (the model is immutable by contract). A nil snapshot yields a table that
// matches nothing.
func Compile(s *model.Snapshot) *Table {
	t := &Table{}
	if s == nil {
		return t // Nil maps read as empty, so this table matches nothing.
	}
	// Most virtual hosts are exact; sizing for them avoids rehashing while
	// compiling tens of thousands of hosts.
	t.exact = make(map[string]*vhost, len(s.VirtualHosts))
	t.wildcard = make(map[string]*vhost)

	backends := make(map[string]int, len(s.Backends))
	for i := range s.Backends {
		// First occurrence wins so that a duplicated ID still resolves to
		// one stable index.
		if _, dup := backends[s.Backends[i].ID]; !dup {
			backends[s.Backends[i].ID] = i
		}
	}
	if s.CatchAll != nil {
		t.catchAll = newTarget(s.CatchAll, backends)
	}

	for i := range s.VirtualHosts {
		vh := &s.VirtualHosts[i]
		host := lowerASCII(vh.Host)
		// A host listed twice keeps its first entry: the model promises one
		// entry per host, and a deterministic choice beats a merge whose
		// Default would be ambiguous.
		switch {
		case host == "":
			if t.hostless == nil {
				t.hostless = compileVHost(vh, backends, t.catchAll)
			}
		case strings.HasPrefix(host, "*."):
			suffix := host[len("*."):]
			if suffix == "" {
				continue // "*." covers no label; the API rejects it anyway.
			}
			if _, dup := t.wildcard[suffix]; !dup {
				t.wildcard[suffix] = compileVHost(vh, backends, t.catchAll)
			}
		default:
			if _, dup := t.exact[host]; !dup {
				t.exact[host] = compileVHost(vh, backends, t.catchAll)
			}
		}
	}
	return t
}

// Match returns the target for a request, or nil when nothing matches (the
// proxy then answers 404). host is the raw Host header or HTTP/2 :authority,
// possibly with a port, in any case, or with a trailing dot; path is the
// canonical request path (see package urlpath) without the query.
func (t *Table) Match(host, path string) *Target {
	if t == nil {
		return nil
	}
	v := t.lookupHost(host)
	if v == nil {
		return t.catchAll
	}
	return v.match(path)
}

// lookupHost selects the virtual host for a raw Host value: exact name, then
// wildcard, then host-less. It returns nil when none applies.
func (t *Table) lookupHost(host string) *vhost {
	name, ok := hostName(host)
	if !ok || name == "" {
		return t.hostless
	}
	// Lower-case into a stack buffer: indexing a map with string(buf[:n])
	// does not allocate, while strings.ToLower would.
	var buf [maxHostLen]byte
	n := copy(buf[:], name)
	for i := range n {
		if c := buf[i]; 'A' <= c && c <= 'Z' {
			buf[i] = c + ('a' - 'A')
		}
	}
	if v := t.exact[string(buf[:n])]; v != nil {
		return v
	}
	// The wildcard covers exactly one non-empty first label, so only the
	// suffix after the first dot is ever looked up.
	for i := range n {
		if buf[i] == '.' {
			if i > 0 && i < n-1 {
				if v := t.wildcard[string(buf[i+1:n])]; v != nil {
					return v
				}
			}
			break
		}
	}
	return t.hostless
}

// newTarget precomputes the target of route r.
func newTarget(r *model.Route, backends map[string]int) *Target {
	return &Target{Route: r, Backend: backendIndex(r.BackendID, backends)}
}

// backendIndex resolves a backend ID to its index, or -1 if it is unknown.
func backendIndex(id string, backends map[string]int) int {
	if i, ok := backends[id]; ok {
		return i
	}
	return -1
}
