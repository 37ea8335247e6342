package dedicated

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/torii-dev/torii/internal/apis/toriiv1alpha1"
	"github.com/torii-dev/torii/internal/status"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

// Unit is one dedicated load balancer: the Ingress it serves, or the
// Ingresses of one group (same namespace, class and torii.dev/group).
type Unit struct {
	// Name names every child object; see IngressUnitName and
	// GroupUnitName.
	Name      string
	Namespace string
	// Class is the IngressClass, Group the torii.dev/group ("" for a unit
	// of one Ingress).
	Class, Group string
	// Config is the class's IngressClassConfig, defaulted and valid.
	Config *toriiv1alpha1.IngressClassConfig
	// Ingresses are the members, sorted by name; never empty.
	Ingresses []*networkingv1.Ingress
}

// Plan is what dedicated mode makes of one view of the cluster.
type Plan struct {
	// Units are sorted by namespace and name.
	Units []*Unit
	// Claimed are the Ingresses the shared proxies must leave alone: every
	// Ingress of a Dedicated class, and of a class whose parameters or
	// IngressClassConfig are missing or invalid (served by no one until it
	// is fixed, rather than exposed on the shared load balancer).
	Claimed map[types.NamespacedName]bool
	// Held are the units (namespace and child name) of the Ingresses whose
	// class cannot be resolved right now: the IngressClass they name is
	// missing, its spec.parameters are not a valid IngressClassConfig
	// reference, or the IngressClassConfig is missing or invalid. Their
	// children are kept (not updated, not deleted), so that a mistake in
	// the configuration does not cost a load balancer its address.
	Held map[types.NamespacedName]bool
	// Problems are Warnings about Ingresses whose class cannot be used.
	Problems []status.Problem
	// heldQuiet are Warnings about held units that are due only when the
	// unit has children (Reconciler.Plan adds those to Problems).
	heldQuiet []heldWarning
}

// Configs are the IngressClassConfigs by name: the valid ones, and the
// reason each invalid one was refused.
type Configs struct {
	Valid   map[string]*toriiv1alpha1.IngressClassConfig
	Invalid map[string]error
}

// BuildPlan groups the dedicated Ingresses of view into units. It is pure:
// ownership follows translate's rules for cfg, and a class is Dedicated
// when its spec.parameters name an IngressClassConfig (torii.dev,
// cluster-scoped) whose mode is Dedicated.
func BuildPlan(cfg translate.Config, view *store.Objects, configs Configs) *Plan {
	p := &Plan{Claimed: map[types.NamespacedName]bool{}, Held: map[types.NamespacedName]bool{}}
	if view == nil {
		return p
	}
	owners := translate.NewClasses(cfg, view.IngressClasses)
	classes := make(map[string]*networkingv1.IngressClass, len(view.IngressClasses))
	for _, c := range view.IngressClasses {
		if c != nil {
			if _, dup := classes[c.Name]; !dup {
				classes[c.Name] = c
			}
		}
	}
	units := map[string]*Unit{} // by namespace/name
	for _, ing := range view.Ingresses {
		if ing == nil {
			continue
		}
		key := types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}
		className, owned := owners.Owner(ing)
		if named := namedClass(ing); named != "" && classes[named] == nil {
			// The class it names is missing (deleted, being recreated):
			// whose it is cannot be told, so its children, if any, are
			// kept. Warned only when there are some (see heldQuiet).
			p.holdQuiet(ing, named, "IngressClassNotFound", fmt.Sprintf(
				"IngressClass %q does not exist; the dedicated load balancer of this Ingress, if any, is kept until the class exists again or the Ingress is deleted", named))
			continue
		}
		if !owned || className == "" {
			continue
		}
		params := classes[className].Spec.Parameters
		if params == nil {
			continue // no parameters: Shared
		}
		var conf *toriiv1alpha1.IngressClassConfig
		switch {
		case !IsConfigRef(params):
			// A typo in apiGroup or kind: Torii knows no other parameters,
			// so this is a broken reference, held like a missing config.
			p.warn(ing, "InvalidIngressClassParameters", fmt.Sprintf(
				"IngressClass %q: spec.parameters names %s %q of API group %q; Torii reads only IngressClassConfig of API group %s. The Ingress is not served until the class is fixed",
				className, params.Kind, params.Name, deref(params.APIGroup), toriiv1alpha1.Group))
		case params.Scope != nil && *params.Scope != networkingv1.IngressClassParametersReferenceScopeCluster:
			p.warn(ing, "InvalidIngressClassParameters", fmt.Sprintf(
				"IngressClass %q: spec.parameters names IngressClassConfig %q with scope %q; IngressClassConfig is cluster-scoped. The Ingress is not served until the class is fixed",
				className, params.Name, *params.Scope))
		case configs.Invalid[params.Name] != nil:
			p.warn(ing, "InvalidIngressClassConfig", fmt.Sprintf(
				"IngressClass %q: %v. The Ingress is not served until it is fixed", className, configs.Invalid[params.Name]))
		case configs.Valid[params.Name] == nil:
			p.warn(ing, "IngressClassConfigNotFound", fmt.Sprintf(
				"IngressClass %q: IngressClassConfig %q does not exist. The Ingress is not served until it does", className, params.Name))
		default:
			conf = configs.Valid[params.Name]
		}
		if conf == nil {
			p.Claimed[key] = true
			p.Held[types.NamespacedName{Namespace: ing.Namespace, Name: unitNameOf(ing.Namespace, ing.Name, className, ing.Annotations[AnnotationGroup])}] = true
			continue
		}
		if conf.Spec.Mode != toriiv1alpha1.ModeDedicated {
			continue // Shared: the controller's own proxies serve it
		}
		p.Claimed[key] = true
		group := strings.TrimSpace(ing.Annotations[AnnotationGroup])
		name := unitNameOf(ing.Namespace, ing.Name, className, group)
		u := units[ing.Namespace+"/"+name]
		if u == nil {
			u = &Unit{Name: name, Namespace: ing.Namespace, Class: className, Group: group, Config: conf}
			units[ing.Namespace+"/"+name] = u
			p.Units = append(p.Units, u)
		}
		u.Ingresses = append(u.Ingresses, ing)
	}
	slices.SortFunc(p.Units, func(a, b *Unit) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, u := range p.Units {
		slices.SortFunc(u.Ingresses, func(a, b *networkingv1.Ingress) int { return cmp.Compare(a.Name, b.Name) })
	}
	return p
}

// namedClass is the IngressClass an Ingress names explicitly (field, else
// the legacy annotation), or "".
func namedClass(ing *networkingv1.Ingress) string {
	if n := ing.Spec.IngressClassName; n != nil && *n != "" {
		return *n
	}
	return ing.Annotations["kubernetes.io/ingress.class"]
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// holdQuiet holds the unit an Ingress of class would belong to, with a
// Warning that Reconciler.Plan raises only when children exist: an
// Ingress naming a missing class may well be another controller's.
func (p *Plan) holdQuiet(ing *networkingv1.Ingress, class, reason, msg string) {
	unit := types.NamespacedName{Namespace: ing.Namespace, Name: unitNameOf(ing.Namespace, ing.Name, class, ing.Annotations[AnnotationGroup])}
	p.Held[unit] = true
	p.heldQuiet = append(p.heldQuiet, heldWarning{unit: unit, problem: status.Problem{Object: ingressRef(ing), Reason: reason, Message: msg}})
}

// heldWarning is a Warning about a held unit, due only if it has children.
type heldWarning struct {
	unit    types.NamespacedName
	problem status.Problem
}

// IsConfigRef reports whether IngressClass parameters name an
// IngressClassConfig.
func IsConfigRef(p *networkingv1.IngressClassParametersReference) bool {
	return p != nil && p.APIGroup != nil && *p.APIGroup == toriiv1alpha1.Group && p.Kind == toriiv1alpha1.Kind
}

func (p *Plan) warn(ing *networkingv1.Ingress, reason, msg string) {
	p.Problems = append(p.Problems, status.Problem{Object: ingressRef(ing), Reason: reason, Message: msg})
}

func ingressRef(ing *networkingv1.Ingress) corev1.ObjectReference {
	return corev1.ObjectReference{
		APIVersion: "networking.k8s.io/v1", Kind: "Ingress",
		Namespace: ing.Namespace, Name: ing.Name, UID: ing.UID,
	}
}

// SharedView returns view without the claimed Ingresses: what the shared
// proxies serve. The other objects are shared with view.
func (p *Plan) SharedView(view *store.Objects) *store.Objects {
	if len(p.Claimed) == 0 {
		return view
	}
	out := *view
	out.Ingresses = make([]*networkingv1.Ingress, 0, len(view.Ingresses))
	for _, ing := range view.Ingresses {
		if ing != nil && p.Claimed[types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}] {
			continue
		}
		out.Ingresses = append(out.Ingresses, ing)
	}
	return &out
}

// Target is one dedicated Ingress and the status it should carry.
type Target = status.Target

// Status returns the status each unit's Ingresses should carry: the
// load-balancer ingress of the unit's Service in services (IP or hostname,
// ports included) and, with publishClusterIP, its ClusterIP. It also
// returns a Normal Event per Ingress whose LoadBalancer Service has no
// address yet, saying what it waits for.
func (p *Plan) Status(services []*corev1.Service, publishClusterIP bool) ([]Target, []status.Problem) {
	byKey := make(map[string]*corev1.Service, len(p.Units))
	want := make(map[string]bool, len(p.Units))
	for _, u := range p.Units {
		want[u.Namespace+"/"+u.Name] = true
	}
	for _, s := range services {
		if k := s.Namespace + "/" + s.Name; want[k] {
			byKey[k] = s
		}
	}
	var targets []Target
	var waiting []status.Problem
	for _, u := range p.Units {
		svc := byKey[u.Namespace+"/"+u.Name]
		var addrs []networkingv1.IngressLoadBalancerIngress
		if svc != nil {
			addrs = status.ServiceAddresses(svc)
			if publishClusterIP && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
				addrs = append(addrs, networkingv1.IngressLoadBalancerIngress{IP: svc.Spec.ClusterIP})
			}
		}
		lb := u.Config.Spec.Dedicated.Service.Type == corev1.ServiceTypeLoadBalancer
		noLB := svc == nil || len(svc.Status.LoadBalancer.Ingress) == 0
		for _, ing := range u.Ingresses {
			targets = append(targets, Target{Ingress: ing, Addresses: addrs})
			if lb && noLB {
				waiting = append(waiting, status.Problem{
					Object: ingressRef(ing), Type: corev1.EventTypeNormal, Reason: "WaitingForLoadBalancer",
					Message: waitingMessage(u, svc),
				})
			}
		}
	}
	return targets, waiting
}

func waitingMessage(u *Unit, svc *corev1.Service) string {
	what := fmt.Sprintf("Service %s/%s", u.Namespace, u.Name)
	if svc == nil {
		return fmt.Sprintf("Dedicated load balancer: creating %s (type LoadBalancer); the Ingress status gets its address once the load-balancer implementation assigns one", what)
	}
	impl := "the cluster's load-balancer implementation (cloud provider, MetalLB, ...)"
	if c := svc.Spec.LoadBalancerClass; c != nil && *c != "" {
		impl = fmt.Sprintf("the implementation of loadBalancerClass %q", *c)
	}
	return fmt.Sprintf("Dedicated load balancer: waiting for %s to assign an address to %s (type LoadBalancer)", impl, what)
}
