package translate

import (
	"fmt"
	"slices"
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/torii-dev/torii/internal/model"
)

// Reasons for problems that exclude a whole Ingress.
const (
	reasonInvalidIngress     = "InvalidIngress"
	reasonInvalidHost        = "InvalidHost"
	reasonInvalidPath        = "InvalidPath"
	reasonInvalidPathType    = "InvalidPathType"
	reasonInvalidBackend     = "InvalidBackend"
	reasonUnsupportedBackend = "UnsupportedBackend"
)

// ingress is an owned Ingress after validation, with its paths
// canonicalised.
type ingress struct {
	obj *networkingv1.Ingress
	ref model.ObjectRef
	// id prefixes the IDs of the Ingress's routes: "ingress/<ns>/<name>".
	id    string
	valid bool
	// paths are in spec order, which is the order they win conflicts within
	// the Ingress.
	paths []path
	// hosts are the distinct hosts the rules name, "" included, in spec
	// order.
	hosts []string
	// defaultBackend is nil when spec.defaultBackend is unset.
	defaultBackend *backendRef
}

// loc locates a path in an Ingress spec, or its defaultBackend when rule is
// negative. Field names are only rendered for messages, which keeps them off
// the hot path of large clusters.
type loc struct{ rule, path int }

// defaultBackendLoc is the location of spec.defaultBackend.
var defaultBackendLoc = loc{rule: -1}

// String names the path, e.g. "spec.rules[0].http.paths[1]".
func (l loc) String() string {
	if l.rule < 0 {
		return "spec.defaultBackend"
	}
	return "spec.rules[" + strconv.Itoa(l.rule) + "].http.paths[" + strconv.Itoa(l.path) + "]"
}

// backend names the backend at l.
func (l loc) backend() string {
	if l.rule < 0 {
		return l.String()
	}
	return l.String() + ".backend"
}

// path is one valid spec.rules[i].http.paths[j].
type path struct {
	id   string
	loc  loc
	host string
	// path is canonical; raw is as written, for messages.
	path, raw string
	pathType  model.PathType
	backend   backendRef
}

// backendRef is a validated service backend.
type backendRef struct {
	loc     loc
	service string
	// Exactly one of portNumber and portName is set.
	portNumber int32
	portName   string
	// id is the model.Backend ID "<ns>/<service>:<port>".
	id string
}

// port renders the port as the Ingress names it.
func (r *backendRef) port() string {
	if r.portName != "" {
		return r.portName
	}
	return strconv.Itoa(int(r.portNumber))
}

// portField names the port field with its value, for messages.
func (r *backendRef) portField() string {
	if r.portName != "" {
		return r.loc.backend() + ".service.port.name " + quote(r.portName)
	}
	return r.loc.backend() + ".service.port.number " + strconv.Itoa(int(r.portNumber))
}

// nameField names the service name field with its value, for messages.
func (r *backendRef) nameField() string {
	return r.loc.backend() + ".service.name " + quote(r.service)
}

// parseIngress validates ing and reports every Error it finds, so that an
// author sees all mistakes at once. The result is valid only if none was
// found.
func parseIngress(ing *networkingv1.Ingress, problems *[]Problem) *ingress {
	in := &ingress{
		obj: ing,
		ref: model.ObjectRef{Kind: "Ingress", Namespace: ing.Namespace, Name: ing.Name},
		id:  "ingress/" + ing.Namespace + "/" + ing.Name,
	}
	errs := 0
	fail := func(reason, format string, args ...any) {
		errs++
		*problems = append(*problems, Problem{
			Object:   in.ref,
			Severity: SeverityError,
			Reason:   reason,
			Message:  fmt.Sprintf(format, args...),
		})
	}

	checkAnnotations(ing.Annotations, fail, func(reason, msg string) {
		*problems = append(*problems, Problem{Object: in.ref, Severity: SeverityWarning, Reason: reason, Message: msg})
	})

	// Object names end up in route and backend IDs; names Kubernetes itself
	// would refuse could make two IDs collide.
	if ing.Namespace != "" && len(validation.IsDNS1123Label(ing.Namespace)) > 0 {
		fail(reasonInvalidIngress, "metadata.namespace %s: must be a DNS-1123 label", quote(ing.Namespace))
	}
	if len(validation.IsDNS1123Subdomain(ing.Name)) > 0 {
		fail(reasonInvalidIngress, "metadata.name %s: must be a DNS-1123 subdomain", quote(ing.Name))
	}

	spec := &ing.Spec
	if len(spec.Rules) == 0 && spec.DefaultBackend == nil {
		fail(reasonInvalidIngress, "spec: an Ingress needs rules or a defaultBackend")
	}
	if spec.DefaultBackend != nil {
		ref, ok := parseBackend(defaultBackendLoc, spec.DefaultBackend, ing.Namespace, fail)
		if ok {
			in.defaultBackend = &ref
		}
	}

	// A linear scan dedupes the few hosts of a typical Ingress without
	// allocating; a map keeps a huge one from going quadratic.
	var hostSet map[string]struct{}
	if len(spec.Rules) > 16 {
		hostSet = make(map[string]struct{}, len(spec.Rules))
	}
	for i := range spec.Rules {
		rule := &spec.Rules[i]
		if rule.Host != "" {
			if msg := checkHost(rule.Host); msg != "" {
				fail(reasonInvalidHost, "spec.rules[%d].host %s: %s", i, quote(rule.Host), msg)
			}
		}
		if hostSet != nil {
			if _, dup := hostSet[rule.Host]; !dup {
				hostSet[rule.Host] = struct{}{}
				in.hosts = append(in.hosts, rule.Host)
			}
		} else if !slices.Contains(in.hosts, rule.Host) {
			in.hosts = append(in.hosts, rule.Host)
		}
		if rule.HTTP == nil {
			continue
		}
		for j := range rule.HTTP.Paths {
			hp := &rule.HTTP.Paths[j]
			p := path{
				id:   in.id + "/rule/" + strconv.Itoa(i) + "/path/" + strconv.Itoa(j),
				loc:  loc{rule: i, path: j},
				host: rule.Host,
			}
			ok := true
			switch {
			case hp.PathType == nil:
				fail(reasonInvalidPathType, "%s.pathType: required, one of Exact, Prefix or ImplementationSpecific", p.loc)
				ok = false
			case *hp.PathType == networkingv1.PathTypeExact, *hp.PathType == networkingv1.PathTypePrefix,
				*hp.PathType == networkingv1.PathTypeImplementationSpecific:
				p.pathType = model.PathType(*hp.PathType)
			default:
				fail(reasonInvalidPathType, "%s.pathType %s: must be Exact, Prefix or ImplementationSpecific", p.loc, quote(string(*hp.PathType)))
				ok = false
			}
			raw := hp.Path
			if raw == "" && p.pathType == model.PathImplementationSpecific {
				// Only ImplementationSpecific may leave the path out; it
				// then matches everything, like ingress-nginx's "/".
				raw = "/"
			}
			canon, msg := checkPath(raw)
			if msg != "" {
				fail(reasonInvalidPath, "%s.path %s: %s", p.loc, quote(hp.Path), msg)
				ok = false
			}
			p.path, p.raw = canon, hp.Path
			ref, bok := parseBackend(p.loc, &hp.Backend, ing.Namespace, fail)
			p.backend = ref
			if ok && bok {
				in.paths = append(in.paths, p)
			}
		}
	}
	in.valid = errs == 0
	return in
}

// parseBackend validates one backend; fail reports what is wrong with it.
func parseBackend(l loc, b *networkingv1.IngressBackend, ns string, fail func(reason, format string, args ...any)) (backendRef, bool) {
	ref := backendRef{loc: l}
	switch {
	case b.Service != nil && b.Resource != nil:
		fail(reasonInvalidBackend, "%s: must set exactly one of service and resource", l.backend())
		return ref, false
	case b.Resource != nil:
		fail(reasonUnsupportedBackend, "%s.resource: resource backends (kind %s) are not supported, use a service backend",
			l.backend(), quote(b.Resource.Kind))
		return ref, false
	case b.Service == nil:
		fail(reasonInvalidBackend, "%s: must set a service", l.backend())
		return ref, false
	}
	svc := b.Service
	ok := true
	switch {
	case svc.Name == "":
		fail(reasonInvalidBackend, "%s.service.name: required", l.backend())
		ok = false
	case len(validation.IsDNS1035Label(svc.Name)) > 0:
		fail(reasonInvalidBackend, "%s.service.name %s: must be a Service name (a DNS-1035 label)", l.backend(), quote(svc.Name))
		ok = false
	}
	switch port := svc.Port; {
	case (port.Number != 0) == (port.Name != ""):
		fail(reasonInvalidBackend, "%s.service.port: must set exactly one of number and name", l.backend())
		ok = false
	case port.Name != "":
		if len(validation.IsValidPortName(port.Name)) > 0 {
			fail(reasonInvalidBackend, "%s.service.port.name %s: must be an IANA service name (at most 15 lower-case letters, digits and '-', with a letter)",
				l.backend(), quote(port.Name))
			ok = false
		}
	case port.Number < 1 || port.Number > 65535:
		fail(reasonInvalidBackend, "%s.service.port.number %d: must be between 1 and 65535", l.backend(), port.Number)
		ok = false
	}
	if !ok {
		return ref, false
	}
	ref.service = svc.Name
	ref.portNumber = svc.Port.Number
	ref.portName = svc.Port.Name
	ref.id = ns + "/" + svc.Name + ":" + ref.port()
	return ref, true
}
