package translate

import (
	networkingv1 "k8s.io/api/networking/v1"
)

const (
	// annotationIngressClass is the deprecated class annotation that
	// cert-manager's HTTP-01 solver still sets instead of the field.
	annotationIngressClass = "kubernetes.io/ingress.class"
	// annotationDefaultClass marks the IngressClass that class-less
	// Ingresses belong to.
	annotationDefaultClass = "ingressclass.kubernetes.io/is-default-class"
)

// classIndex answers which Ingresses Torii owns.
type classIndex struct {
	cfg Config
	// owned holds the names of the IngressClasses whose controller is ours.
	owned map[string]struct{}
	// defaultOwned is set when one of the owned classes is the default.
	defaultOwned bool
}

func newClassIndex(cfg Config, classes []*networkingv1.IngressClass) classIndex {
	idx := classIndex{cfg: cfg, owned: make(map[string]struct{})}
	// An empty controller name would match every class whose controller is
	// unset, which no operator means.
	if cfg.ControllerName == "" {
		return idx
	}
	seen := make(map[string]struct{}, len(classes))
	for _, c := range classes {
		if c == nil {
			continue
		}
		if _, dup := seen[c.Name]; dup {
			continue
		}
		seen[c.Name] = struct{}{}
		if c.Spec.Controller != cfg.ControllerName {
			continue
		}
		idx.owned[c.Name] = struct{}{}
		if c.Annotations[annotationDefaultClass] == "true" {
			idx.defaultOwned = true
		}
	}
	return idx
}

// owns reports whether ing belongs to Torii. The spec.ingressClassName field
// decides when set; the legacy annotation is honoured only without it; an
// Ingress naming no class is owned through a default class or the
// WatchIngressWithoutClass setting. An empty field or annotation counts as
// unset, since neither can name a class.
func (x classIndex) owns(ing *networkingv1.Ingress) bool {
	if name := ing.Spec.IngressClassName; name != nil && *name != "" {
		_, ok := x.owned[*name]
		return ok
	}
	if name := ing.Annotations[annotationIngressClass]; name != "" {
		if _, ok := x.owned[name]; ok {
			return true
		}
		return x.cfg.IngressClass != "" && name == x.cfg.IngressClass
	}
	return x.defaultOwned || x.cfg.WatchIngressWithoutClass
}

// Classes answers, for callers outside the translator (dedicated mode),
// which Ingresses Torii owns and through which IngressClass, by the same
// rules Build applies.
type Classes struct {
	idx classIndex
	// defaultName is the first (by the order given) owned class marked
	// default.
	defaultName string
}

// NewClasses indexes classes under cfg.
func NewClasses(cfg Config, classes []*networkingv1.IngressClass) Classes {
	c := Classes{idx: newClassIndex(cfg, classes)}
	if c.idx.defaultOwned {
		for _, ic := range classes {
			if ic == nil || ic.Annotations[annotationDefaultClass] != "true" {
				continue
			}
			if _, ok := c.idx.owned[ic.Name]; ok {
				c.defaultName = ic.Name
				break
			}
		}
	}
	return c
}

// Owner reports whether Torii owns ing and, if it does through an
// IngressClass object of its controller, that class's name. The name is
// empty for Ingresses owned without one: the legacy annotation naming
// Config.IngressClass when no such class exists, or
// WatchIngressWithoutClass.
func (c Classes) Owner(ing *networkingv1.Ingress) (class string, owned bool) {
	if !c.idx.owns(ing) {
		return "", false
	}
	name := ""
	if n := ing.Spec.IngressClassName; n != nil && *n != "" {
		name = *n
	} else if a := ing.Annotations[annotationIngressClass]; a != "" {
		name = a
	} else {
		return c.defaultName, true
	}
	if _, ok := c.idx.owned[name]; ok {
		return name, true
	}
	return "", true
}

// AnnotationGroup ("torii.dev/group: NAME") puts an Ingress of a Dedicated
// class into a group whose members (same namespace and class) share one
// dedicated load balancer. Dedicated mode reads it (package dedicated); it
// has no effect on routing, so the translator accepts it as known.
const AnnotationGroup = ToriiAnnotationPrefix + "group"
