package model

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/torii-dev/torii/internal/urlpath"
)

// Validate checks the invariants the data plane relies on and returns the
// first violation it finds, or nil.
//
// The checks are: virtual hosts sorted by Host and unique; hosts empty,
// lower-case DNS names (not IP addresses) or "*.<name>"; route IDs present
// and unique among rule routes; every path starting with '/' and canonical
// per package urlpath; every path type one of the three known values; routes
// in RoutePrecedence order, no two of one virtual host on the same path with
// types matched alike (PathType.MatchedAs); no Default on the host-less
// virtual host; default and catch-all routes on Prefix "/"; every BackendID
// present in Backends; backends sorted by ID and unique; endpoints sorted by
// CompareEndpoints, unique and on ports 1–65535; an ExternalName
// backend holding exactly its one endpoint; certificates sorted by ID and
// unique, with sorted, unique, valid hosts, each host served by at most one
// certificate. Nil and empty slices are treated alike.
//
// The controller calls Validate as a last guard before publishing a
// snapshot, and tests call it on every snapshot the translator builds.
func (s *Snapshot) Validate() error {
	if s == nil {
		return errors.New("snapshot is nil")
	}
	backends := make(map[string]struct{}, len(s.Backends))
	for i := range s.Backends {
		b := &s.Backends[i]
		if i > 0 && s.Backends[i-1].ID >= b.ID {
			return fmt.Errorf("backends: %q and %q are not sorted and unique", s.Backends[i-1].ID, b.ID)
		}
		if err := b.validate(); err != nil {
			return fmt.Errorf("backend %q: %w", b.ID, err)
		}
		backends[b.ID] = struct{}{}
	}

	routeIDs := make(map[string]struct{})
	type matchKey struct {
		path     string
		pathType PathType
	}
	matches := make(map[matchKey]string)
	for i := range s.VirtualHosts {
		vh := &s.VirtualHosts[i]
		clear(matches)
		if i > 0 && s.VirtualHosts[i-1].Host >= vh.Host {
			return fmt.Errorf("virtual hosts: %q and %q are not sorted and unique", s.VirtualHosts[i-1].Host, vh.Host)
		}
		if vh.Host != "" && !validHost(vh.Host) {
			return fmt.Errorf("virtual host %q: not a lower-case DNS name or wildcard", vh.Host)
		}
		for j := range vh.Routes {
			r := &vh.Routes[j]
			if err := r.validate(backends); err != nil {
				return fmt.Errorf("virtual host %q: route %q: %w", vh.Host, r.ID, err)
			}
			if _, dup := routeIDs[r.ID]; dup {
				return fmt.Errorf("virtual host %q: route ID %q is not unique", vh.Host, r.ID)
			}
			routeIDs[r.ID] = struct{}{}
			if j > 0 && RoutePrecedence(&vh.Routes[j-1], r) >= 0 {
				return fmt.Errorf("virtual host %q: routes %q and %q are not in precedence order", vh.Host, vh.Routes[j-1].ID, r.ID)
			}
			// Routes that match alike would leave all traffic to the one
			// ranked first, silently: the translator must have settled
			// them as a conflict.
			k := matchKey{r.Path, r.PathType.MatchedAs()}
			if other, dup := matches[k]; dup {
				return fmt.Errorf("virtual host %q: routes %q and %q match the same requests", vh.Host, other, r.ID)
			}
			matches[k] = r.ID
		}
		if vh.Host == "" && vh.Default != nil {
			return fmt.Errorf("virtual host \"\": default route %q is set, but the host-less default is Snapshot.CatchAll", vh.Default.ID)
		}
		if vh.Default != nil {
			if err := vh.Default.validateDefault(backends); err != nil {
				return fmt.Errorf("virtual host %q: default route %q: %w", vh.Host, vh.Default.ID, err)
			}
		}
	}
	if s.CatchAll != nil {
		if err := s.CatchAll.validateDefault(backends); err != nil {
			return fmt.Errorf("catch-all route %q: %w", s.CatchAll.ID, err)
		}
	}
	// Default routes may repeat an ID across virtual hosts and the catch-all
	// (one Ingress's defaultBackend serves all its hosts, and the catch-all
	// when some of its rules name no host), but must never reuse the ID of a
	// rule route, whose runtime state would otherwise be shared by accident.
	for i := range s.VirtualHosts {
		if d := s.VirtualHosts[i].Default; d != nil {
			if _, dup := routeIDs[d.ID]; dup {
				return fmt.Errorf("virtual host %q: default route ID %q is also a rule route ID", s.VirtualHosts[i].Host, d.ID)
			}
		}
	}
	if s.CatchAll != nil {
		if _, dup := routeIDs[s.CatchAll.ID]; dup {
			return fmt.Errorf("catch-all route ID %q is also a rule route ID", s.CatchAll.ID)
		}
	}

	sniOwner := make(map[string]string)
	for i := range s.Certificates {
		c := &s.Certificates[i]
		if c.ID == "" {
			return errors.New("certificate with an empty ID")
		}
		if i > 0 && s.Certificates[i-1].ID >= c.ID {
			return fmt.Errorf("certificates: %q and %q are not sorted and unique", s.Certificates[i-1].ID, c.ID)
		}
		for j, h := range c.Hosts {
			if !validHost(h) {
				return fmt.Errorf("certificate %q: host %q is not a lower-case DNS name or wildcard", c.ID, h)
			}
			if j > 0 && c.Hosts[j-1] >= h {
				return fmt.Errorf("certificate %q: hosts %q and %q are not sorted and unique", c.ID, c.Hosts[j-1], h)
			}
			if other, dup := sniOwner[h]; dup {
				return fmt.Errorf("certificate %q: host %q is already served by certificate %q", c.ID, h, other)
			}
			sniOwner[h] = c.ID
		}
	}
	return nil
}

func (b *Backend) validate() error {
	if b.ID == "" {
		return errors.New("empty ID")
	}
	for i, e := range b.Endpoints {
		if e.Address == "" {
			return errors.New("endpoint with an empty address")
		}
		if e.Port < 1 || e.Port > 65535 {
			return fmt.Errorf("endpoint %s: port out of range 1-65535", e.HostPort())
		}
		if i > 0 && CompareEndpoints(b.Endpoints[i-1], e) >= 0 {
			return fmt.Errorf("endpoints %s and %s are not sorted and unique", b.Endpoints[i-1].HostPort(), e.HostPort())
		}
	}
	if b.ExternalName != "" && (len(b.Endpoints) != 1 || b.Endpoints[0].Address != b.ExternalName) {
		return fmt.Errorf("ExternalName %q needs exactly one endpoint with that address", b.ExternalName)
	}
	return nil
}

func (r *Route) validate(backends map[string]struct{}) error {
	if r.ID == "" {
		return errors.New("empty ID")
	}
	switch r.PathType {
	case PathExact, PathPrefix, PathImplementationSpecific:
	default:
		return fmt.Errorf("unknown path type %q", r.PathType)
	}
	if !strings.HasPrefix(r.Path, "/") {
		return fmt.Errorf("path %q does not start with '/'", r.Path)
	}
	if c, err := urlpath.Canonical(r.Path, urlpath.Options{}); err != nil || c != r.Path {
		return fmt.Errorf("path %q is not canonical", r.Path)
	}
	if _, ok := backends[r.BackendID]; !ok {
		return fmt.Errorf("backend %q is not in the snapshot", r.BackendID)
	}
	return nil
}

// validateDefault checks a default or catch-all route, which always matches
// every path of its scope.
func (r *Route) validateDefault(backends map[string]struct{}) error {
	if err := r.validate(backends); err != nil {
		return err
	}
	if r.Path != "/" || r.PathType != PathPrefix {
		return fmt.Errorf("%s %q, want Prefix \"/\"", r.PathType, r.Path)
	}
	return nil
}

// pathTypeRank orders path types of equal-length paths: Exact is the more
// specific match, and ImplementationSpecific behaves like Prefix but yields
// to an explicit Prefix. Unknown types, which Validate rejects, come last so
// that the order stays total.
func pathTypeRank(t PathType) int {
	switch t {
	case PathExact:
		return 0
	case PathPrefix:
		return 1
	case PathImplementationSpecific:
		return 2
	}
	return 3
}

// RoutePrecedence orders routes best first, as VirtualHost.Routes requires:
// the longer path string first (a trailing '/' counts, per the Ingress
// API: Prefix "/foo/" beats Prefix "/foo" for "/foo"), then Exact before
// Prefix before ImplementationSpecific, then by ID so that the order is
// total. It returns a negative number when a takes precedence over b, as
// slices.SortFunc expects. It is the one definition of precedence: the
// translator sorts with it and Validate checks with it.
func RoutePrecedence(a, b *Route) int {
	return cmp.Or(
		cmp.Compare(len(b.Path), len(a.Path)),
		cmp.Compare(pathTypeRank(a.PathType), pathTypeRank(b.PathType)),
		strings.Compare(a.ID, b.ID),
	)
}

// CompareEndpoints orders endpoints as Backend.Endpoints requires: byte-wise
// by Address, then by Port. A total order on content alone keeps snapshots
// deterministic: the same endpoints come out in the same order whatever the
// order of the EndpointSlices they were read from.
func CompareEndpoints(a, b Endpoint) int {
	return cmp.Or(strings.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port))
}

// validHost reports whether h is a lower-case RFC 1123 DNS subdomain that is
// not an IP address, or such a name behind a "*." first label.
func validHost(h string) bool {
	if len(h) > 253 {
		return false
	}
	name := strings.TrimPrefix(h, "*.")
	if _, err := netip.ParseAddr(name); err == nil && name == h {
		return false
	}
	return validDNSName(name)
}

// validDNSName mirrors the Kubernetes DNS-1123 subdomain pattern: labels of
// lower-case letters, digits and '-', each starting and ending with a letter
// or digit, joined by dots.
func validDNSName(s string) bool {
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
