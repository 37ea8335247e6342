package webhook

import (
	"slices"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

// Verdict is the judgement on one Ingress, shared by the admission webhook
// and `torii check`, so that the two cannot disagree.
type Verdict struct {
	Ref model.ObjectRef
	// Owned tells whether Torii owns the Ingress. One it does not own is
	// allowed untouched: its problems are another controller's business.
	Owned bool
	// Denials are the problems that make the Ingress, or part of it, not
	// served: invalid fields, unknown Torii annotations, and conflicts the
	// Ingress loses to an older one.
	Denials []translate.Problem
	// Warnings are the problems that leave the Ingress served, but maybe
	// not as meant: a missing Service or TLS Secret (which may be created
	// next), ignored ingress-nginx annotations, TLS conflicts.
	Warnings []translate.Problem
}

// Allowed reports whether the Ingress is admitted.
func (v Verdict) Allowed() bool { return len(v.Denials) == 0 }

// denies is the one rule that sorts problems: an Error (something left out
// of the snapshot) denies, a Warning does not.
func denies(p translate.Problem) bool { return p.Severity == translate.SeverityError }

// Judge returns the verdict on the Ingress ref from the result of a Build
// over a view that holds it.
func Judge(res translate.Result, ref model.ObjectRef) Verdict {
	v := Verdict{Ref: ref, Owned: slices.Contains(res.Owned, ref)}
	if !v.Owned {
		return v
	}
	for _, p := range res.Problems {
		if p.Object == ref {
			v.add(p)
		}
	}
	return v
}

// Verdicts returns the verdict on every Ingress the result owns, in the
// order of res.Owned.
func Verdicts(res translate.Result) []Verdict {
	out := make([]Verdict, len(res.Owned))
	index := make(map[model.ObjectRef]int, len(res.Owned))
	for i, ref := range res.Owned {
		out[i] = Verdict{Ref: ref, Owned: true}
		index[ref] = i
	}
	for _, p := range res.Problems {
		if i, ok := index[p.Object]; ok {
			out[i].add(p)
		}
	}
	return out
}

// add files p under the denials or the warnings.
func (v *Verdict) add(p translate.Problem) {
	if denies(p) {
		v.Denials = append(v.Denials, p)
	} else {
		v.Warnings = append(v.Warnings, p)
	}
}

// Partition narrows a view to the objects a candidate is judged over: the
// Ingresses served by the same proxies as the candidate, and what they
// reference. view already holds the candidate; Partition must not modify
// it. In dedicated mode (see package dedicated) the shared proxies serve
// one partition and every dedicated load balancer another, so two
// Ingresses in different partitions never conflict. nil judges over the
// whole view.
type Partition func(view *store.Objects, candidate *networkingv1.Ingress) *store.Objects

// Review judges candidate as if it were stored next to objs, replacing the
// object of the same namespace and name, over the partition of the view
// that serves it (partition may be nil: the whole view). It runs the
// translator, which is pure, over that view and nothing else: no object is
// written, no file is touched and nothing is executed. objs is not
// modified. It also returns the Build result the verdict was taken from.
func Review(cfg translate.Config, objs *store.Objects, candidate *networkingv1.Ingress, partition Partition) (Verdict, translate.Result) {
	view := WithIngress(objs, candidate)
	if partition != nil {
		view = partition(view, candidate)
	}
	res := translate.Build(cfg, view)
	return Judge(res, ingressRef(candidate)), res
}

// WithIngress returns a shallow copy of objs in which ing replaces the
// Ingress of its namespace and name, or is added. objs is not modified.
func WithIngress(objs *store.Objects, ing *networkingv1.Ingress) *store.Objects {
	if objs == nil {
		objs = &store.Objects{}
	}
	view := *objs
	view.Ingresses = make([]*networkingv1.Ingress, 0, len(objs.Ingresses)+1)
	for _, o := range objs.Ingresses {
		if o != nil && o.Namespace == ing.Namespace && o.Name == ing.Name {
			continue
		}
		view.Ingresses = append(view.Ingresses, o)
	}
	view.Ingresses = append(view.Ingresses, ing)
	return &view
}

func ingressRef(ing *networkingv1.Ingress) model.ObjectRef {
	return model.ObjectRef{Kind: "Ingress", Namespace: ing.Namespace, Name: ing.Name}
}
