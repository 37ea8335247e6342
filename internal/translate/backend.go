package translate

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/torii-dev/torii/internal/model"
)

// Reasons for problems with a backend's Service. They are Warnings: the
// route stays and answers 503 until the Service is fixed.
const (
	reasonServiceNotFound     = "ServiceNotFound"
	reasonServicePortNotFound = "ServicePortNotFound"
	reasonInvalidExternalName = "InvalidExternalName"
	// reasonNamedTargetPort is the one Warning whose backend still has its
	// endpoint: it says which port is dialled instead.
	reasonNamedTargetPort = "NamedTargetPort"
)

// resolved is a backend with what went wrong resolving it, if anything.
type resolved struct {
	backend model.Backend
	// reason is empty when the backend resolved cleanly. Otherwise the
	// backend usually has no endpoints, but see reasonNamedTargetPort.
	reason string
	// onPort tells whether the problem is about the port rather than the
	// Service name, to name the right field.
	onPort bool
	detail string
}

// resolve returns the backend ref points at, resolving each ID once per
// Build.
func (b *builder) resolve(ns string, ref *backendRef) *resolved {
	if r, ok := b.backends[ref.id]; ok {
		return r
	}
	r := &resolved{backend: model.Backend{
		ID:        ref.id,
		Service:   model.ObjectRef{Kind: "Service", Namespace: ns, Name: ref.service},
		Port:      ref.port(),
		Endpoints: []model.Endpoint{},
	}}
	b.backends[ref.id] = r

	svc := b.services[ns+"/"+ref.service]
	if svc == nil {
		r.reason, r.detail = reasonServiceNotFound, fmt.Sprintf("Service %s/%s not found", ns, ref.service)
		return r
	}
	sp := findServicePort(svc, ref)
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		b.resolveExternalName(r, svc, sp, ref)
		return r
	}
	if sp == nil {
		r.reason, r.onPort, r.detail = reasonServicePortNotFound, true, fmt.Sprintf("Service %s/%s has no such TCP port", ns, ref.service)
		return r
	}
	r.backend.Endpoints = b.endpoints(ns, ref.service, sp.Name)
	return r
}

// findServicePort returns the TCP ServicePort ref names, by port number or by
// name. Only TCP ports qualify: a Service may list the same number for TCP
// and UDP, and HTTP needs the TCP one.
func findServicePort(svc *corev1.Service, ref *backendRef) *corev1.ServicePort {
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
			continue
		}
		if ref.portName != "" && sp.Name == ref.portName || ref.portName == "" && sp.Port == ref.portNumber {
			return sp
		}
	}
	return nil
}

// resolveExternalName makes r a single-endpoint DNS backend. Like
// ingress-nginx, it dials the Service port's targetPort: the Service port is
// what the Ingress names, the targetPort is where the remote service listens.
// An unset (zero) targetPort means the port itself, which is also what the
// API server defaults it to. A named targetPort cannot be resolved, as an
// ExternalName Service has no pods to look the name up on, so the port is
// used and a Warning says so. A Service that lists no ports takes the port
// number the Ingress names, since there is nothing to map it through.
func (b *builder) resolveExternalName(r *resolved, svc *corev1.Service, sp *corev1.ServicePort, ref *backendRef) {
	var port int32
	namedTarget := ""
	switch {
	case sp != nil:
		port = sp.Port
		switch tp := sp.TargetPort; {
		case tp.Type == intstr.Int && tp.IntVal > 0:
			port = tp.IntVal
		case tp.Type == intstr.String && tp.StrVal != "":
			namedTarget = tp.StrVal
		}
	case len(svc.Spec.Ports) == 0 && ref.portName == "":
		port = ref.portNumber
	default:
		r.reason, r.onPort, r.detail = reasonServicePortNotFound, true, fmt.Sprintf("ExternalName Service %s/%s has no such TCP port", svc.Namespace, svc.Name)
		return
	}
	if port < 1 || port > 65535 {
		r.reason, r.onPort, r.detail = reasonServicePortNotFound, true, fmt.Sprintf("ExternalName Service %s/%s maps it to invalid port %d", svc.Namespace, svc.Name, port)
		return
	}
	// The name is dialled and sent as the upstream Host, so it must be a
	// plain DNS name; a trailing dot (an absolute name) is dropped.
	name := strings.TrimSuffix(svc.Spec.ExternalName, ".")
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		r.reason, r.detail = reasonInvalidExternalName,
			fmt.Sprintf("ExternalName Service %s/%s has spec.externalName %s, which is not a lower-case DNS name", svc.Namespace, svc.Name, quote(svc.Spec.ExternalName))
		return
	}
	r.backend.ExternalName = name
	r.backend.Endpoints = []model.Endpoint{{Address: name, Port: port}}
	if namedTarget != "" {
		r.reason, r.onPort, r.detail = reasonNamedTargetPort, true,
			fmt.Sprintf("ExternalName Service %s/%s maps it to targetPort %s, a name, which an ExternalName Service has no pods to resolve; port %d is used instead",
				svc.Namespace, svc.Name, quote(namedTarget), port)
	}
}

// endpoints collects the ready, non-terminating addresses of the Service's
// EndpointSlices on the slice port named like the ServicePort, sorted and
// deduplicated (a pod may appear in two slices while they are rebalanced).
func (b *builder) endpoints(ns, service, portName string) []model.Endpoint {
	eps := []model.Endpoint{}
	for _, s := range b.slices[ns+"/"+service] {
		port, ok := slicePort(s, portName)
		if !ok {
			continue
		}
		for i := range s.Endpoints {
			ep := &s.Endpoints[i]
			c := ep.Conditions
			if c.Ready != nil && !*c.Ready || c.Terminating != nil && *c.Terminating {
				continue
			}
			for _, a := range ep.Addresses {
				addr, err := netip.ParseAddr(a)
				// FQDN slices, zoned and non-unicast addresses cannot be
				// dialled as pod endpoints.
				if err != nil || addr.Zone() != "" || addr.IsUnspecified() || addr.IsMulticast() {
					continue
				}
				// ParseAddr accepts IPv4 only in its canonical dotted
				// form, so the input string can be kept as is; IPv6 has
				// several spellings and is normalised.
				if !addr.Is4() {
					a = addr.String()
				}
				eps = append(eps, model.Endpoint{Address: a, Port: port})
			}
		}
	}
	slices.SortFunc(eps, model.CompareEndpoints)
	return slices.Compact(eps)
}

// slicePort returns the TCP port of s named portName ("" for the unnamed
// port).
func slicePort(s *discoveryv1.EndpointSlice, portName string) (int32, bool) {
	for _, p := range s.Ports {
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if name != portName || p.Port == nil || p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		if *p.Port < 1 || *p.Port > 65535 {
			return 0, false
		}
		return *p.Port, true
	}
	return 0, false
}
