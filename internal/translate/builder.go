package translate

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/store"
)

// labelServiceName links an EndpointSlice to its Service.
const labelServiceName = "kubernetes.io/service-name"

// builder holds the indexes and partial output of one Build.
type builder struct {
	services map[string]*corev1.Service
	slices   map[string][]*discoveryv1.EndpointSlice
	secrets  map[string]*corev1.Secret

	problems []Problem
	// backends caches resolution by backend ID.
	backends map[string]*resolved
	// used holds the IDs of backends some published route refers to.
	used  map[string]struct{}
	hosts map[string]*vhost
	// catchAll is the winning defaultBackend of an Ingress without rules or
	// with rules without a host.
	catchAll      *model.Route
	catchAllOwner *ingress
	certs         map[string]*cert
}

// vhost is a virtual host under construction.
type vhost struct {
	routes       []model.Route
	def          *model.Route
	defaultOwner *ingress
}

func newBuilder(objs *store.Objects) *builder {
	b := &builder{
		services: make(map[string]*corev1.Service, len(objs.Services)),
		slices:   make(map[string][]*discoveryv1.EndpointSlice, len(objs.EndpointSlices)),
		secrets:  make(map[string]*corev1.Secret, len(objs.Secrets)),
		backends: make(map[string]*resolved),
		used:     make(map[string]struct{}),
		hosts:    make(map[string]*vhost),
		certs:    make(map[string]*cert),
	}
	for _, s := range objs.Services {
		if s == nil {
			continue
		}
		key := s.Namespace + "/" + s.Name
		if _, dup := b.services[key]; !dup {
			b.services[key] = s
		}
	}
	seenSlice := make(map[string]struct{}, len(objs.EndpointSlices))
	for _, s := range objs.EndpointSlices {
		if s == nil {
			continue
		}
		svc := s.Labels[labelServiceName]
		if svc == "" {
			continue
		}
		key := s.Namespace + "/" + s.Name
		if _, dup := seenSlice[key]; dup {
			continue
		}
		seenSlice[key] = struct{}{}
		k := s.Namespace + "/" + svc
		b.slices[k] = append(b.slices[k], s)
	}
	for _, s := range objs.Secrets {
		if s == nil {
			continue
		}
		key := s.Namespace + "/" + s.Name
		if _, dup := b.secrets[key]; !dup {
			b.secrets[key] = s
		}
	}
	return b
}

// warn records a Warning on an Ingress.
func (b *builder) warn(in *ingress, reason, msg string) {
	b.problems = append(b.problems, Problem{Object: in.ref, Severity: SeverityWarning, Reason: reason, Message: msg})
}

// fail records an Error on an Ingress.
func (b *builder) fail(in *ingress, reason, msg string) {
	b.problems = append(b.problems, Problem{Object: in.ref, Severity: SeverityError, Reason: reason, Message: msg})
}

// snapshot assembles the model from what routes and tls collected, sorting
// every list.
func (b *builder) snapshot() *model.Snapshot {
	s := &model.Snapshot{
		VirtualHosts: make([]model.VirtualHost, 0, len(b.hosts)),
		CatchAll:     b.catchAll,
		Backends:     make([]model.Backend, 0, len(b.used)),
		Certificates: make([]model.Certificate, 0, len(b.certs)),
	}
	for host, vh := range b.hosts {
		slices.SortFunc(vh.routes, func(a, b model.Route) int { return model.RoutePrecedence(&a, &b) })
		s.VirtualHosts = append(s.VirtualHosts, model.VirtualHost{Host: host, Routes: vh.routes, Default: vh.def})
	}
	slices.SortFunc(s.VirtualHosts, func(a, b model.VirtualHost) int { return cmp.Compare(a.Host, b.Host) })

	for id := range b.used {
		s.Backends = append(s.Backends, b.backends[id].backend)
	}
	slices.SortFunc(s.Backends, func(a, b model.Backend) int { return cmp.Compare(a.ID, b.ID) })

	for _, c := range b.certs {
		if len(c.hosts) == 0 {
			continue
		}
		hosts := make([]string, 0, len(c.hosts))
		for h := range c.hosts {
			hosts = append(hosts, h)
		}
		slices.Sort(hosts)
		s.Certificates = append(s.Certificates, model.Certificate{
			ID:      c.id,
			Hosts:   hosts,
			CertPEM: c.certPEM,
			KeyPEM:  c.keyPEM,
			Source:  c.source,
		})
	}
	slices.SortFunc(s.Certificates, func(a, b model.Certificate) int { return cmp.Compare(a.ID, b.ID) })
	return s
}
