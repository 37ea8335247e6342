package model

import (
	"net"
	"strconv"
)

// PathType is how a route's path is compared with a request path. The values
// are the networking.k8s.io/v1 spellings.
type PathType string

const (
	// PathExact matches the request path byte for byte, case-sensitively.
	PathExact PathType = "Exact"
	// PathPrefix matches by '/'-separated elements; a trailing slash on either
	// side is ignored.
	PathPrefix PathType = "Prefix"
	// PathImplementationSpecific is matched like PathPrefix by Torii.
	PathImplementationSpecific PathType = "ImplementationSpecific"
)

// MatchedAs returns the path type t is matched as: PathPrefix for
// PathImplementationSpecific, t itself otherwise. Two routes of one virtual
// host whose paths are equal and whose types are matched alike would serve
// exactly the same requests, so the translator settles them as a conflict
// and Validate rejects them.
func (t PathType) MatchedAs() PathType {
	if t == PathImplementationSpecific {
		return PathPrefix
	}
	return t
}

// ObjectRef names the Kubernetes object a piece of the model came from.
type ObjectRef struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String renders the reference as "<Kind> <namespace>/<name>" (cluster-scoped
// objects as "<Kind> <name>").
func (r ObjectRef) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Snapshot is one complete, immutable routing configuration.
type Snapshot struct {
	// Generation increases with every snapshot the controller publishes.
	Generation uint64 `json:"generation"`
	// VirtualHosts holds one entry per distinct host, sorted by Host. Host ""
	// is the host-less virtual host serving rules that name no host.
	VirtualHosts []VirtualHost `json:"virtualHosts"`
	// CatchAll serves requests that no virtual host takes, and unmatched paths
	// of virtual hosts without a Default (the host-less one included): the
	// defaultBackend of the oldest owned Ingress that has no rules or has
	// rules without a host. Both kinds compete for this one slot because
	// both would serve requests for hosts no rule names, as the catch-all
	// server's default location does in ingress-nginx. Nil means Torii
	// answers 404 itself.
	CatchAll *Route `json:"catchAll,omitempty"`
	// Backends lists every backend a route refers to, sorted by ID.
	Backends []Backend `json:"backends"`
	// Certificates lists the TLS certificates to serve by SNI, sorted by ID.
	Certificates []Certificate `json:"certificates"`
}

// VirtualHost is the merged set of routes for one host across all Ingresses.
type VirtualHost struct {
	// Host is a lower-case FQDN, a wildcard "*.<suffix>" covering exactly one
	// extra label, or "" for every host.
	Host string `json:"host"`
	// Routes are sorted by RoutePrecedence: longer path first; at equal
	// length Exact, then Prefix, then ImplementationSpecific; then by ID. No
	// two have the same Path and the same PathType.MatchedAs.
	Routes []Route `json:"routes"`
	// Default serves paths of this host that no route matches: the
	// defaultBackend of the oldest Ingress with rules for this host. Nil
	// defers to Snapshot.CatchAll. Always nil for the host-less virtual host,
	// whose default is Snapshot.CatchAll.
	Default *Route `json:"default,omitempty"`
}

// Route sends requests whose path matches Path (per PathType) to a backend.
type Route struct {
	// ID is stable and readable: "ingress/<ns>/<name>/rule/<i>/path/<j>", or
	// "ingress/<ns>/<name>/defaultBackend".
	ID string `json:"id"`
	// Path is canonical (see package urlpath); "/" for default routes.
	Path     string   `json:"path"`
	PathType PathType `json:"pathType"`
	// BackendID is the ID of an entry in Snapshot.Backends.
	BackendID string `json:"backend"`
	// Source is the Ingress the route came from.
	Source ObjectRef `json:"source"`
}

// Backend is a Service port and the endpoints currently serving it.
type Backend struct {
	// ID is "<namespace>/<service>:<port>" with the port as the Ingress names
	// it (number or name).
	ID      string    `json:"id"`
	Service ObjectRef `json:"service"`
	// Port is the Service port as the Ingress references it.
	Port string `json:"port"`
	// ExternalName is set for type ExternalName Services: requests go to this
	// DNS name (its single endpoint's Address), on the Service port's numeric
	// targetPort if set, else on the port itself, as ingress-nginx dials it.
	ExternalName string `json:"externalName,omitempty"`
	// Endpoints are the ready, non-terminating endpoints, sorted by
	// CompareEndpoints and unique. Empty means requests get 503.
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one address a backend's requests may be sent to.
type Endpoint struct {
	// Address is an IP address, or a DNS name for ExternalName backends.
	Address string `json:"address"`
	Port    int32  `json:"port"`
}

// HostPort renders the endpoint as a dialable "host:port" (IPv6 bracketed).
func (e Endpoint) HostPort() string {
	return net.JoinHostPort(e.Address, strconv.Itoa(int(e.Port)))
}

// Certificate is a TLS certificate and key served for some SNI names.
type Certificate struct {
	// ID is "<namespace>/<secret name>".
	ID string `json:"id"`
	// Hosts are the lower-case SNI names (exact or "*.<suffix>") this
	// certificate serves, sorted and unique.
	Hosts   []string `json:"hosts"`
	CertPEM []byte   `json:"-"`
	KeyPEM  []byte   `json:"-"`
	// Source is the Secret the certificate came from.
	Source ObjectRef `json:"source"`
}
