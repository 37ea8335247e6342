package translate

import (
	"cmp"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"

	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/store"
)

// Config selects which Ingresses Torii owns.
type Config struct {
	// ControllerName is the IngressClass spec.controller value Torii owns,
	// e.g. "torii.dev/ingress-controller". Empty owns no IngressClass.
	ControllerName string
	// IngressClass is a value of the legacy kubernetes.io/ingress.class
	// annotation that Torii also owns, e.g. "torii", even when no IngressClass
	// object of that name exists. Empty disables the match.
	IngressClass string
	// WatchIngressWithoutClass makes Torii own Ingresses that name no class at
	// all, as ingress-nginx's --watch-ingress-without-class does.
	WatchIngressWithoutClass bool
}

// Severity tells whether a problem excluded something from the snapshot.
type Severity string

const (
	// SeverityError means the object, or the part of it the message names,
	// is not served.
	SeverityError Severity = "Error"
	// SeverityWarning means the object is served, but not as its author
	// probably intended (e.g. a missing Service answers 503).
	SeverityWarning Severity = "Warning"
)

// Problem is one finding about one object.
type Problem struct {
	// Object is the offending object, usually the Ingress; problems with a
	// Service or Secret are reported on the Ingress that references it.
	Object   model.ObjectRef
	Severity Severity
	// Reason is a CamelCase, machine-readable cause such as "ServiceNotFound",
	// "InvalidPath" or "RuleConflict".
	Reason string
	// Message is one human sentence that starts with the field it is about,
	// e.g. `spec.rules[0].http.paths[1].path "/a/../b": ...`. User-supplied
	// values in it are always quoted, so it is a single line.
	Message string
}

// String renders the problem as "<Kind> <namespace>/<name>: <Message>".
func (p Problem) String() string {
	return p.Object.String() + ": " + p.Message
}

// Result is the outcome of Build.
type Result struct {
	// Snapshot is never nil. Its Generation is left 0 for the caller to set.
	Snapshot *model.Snapshot
	// Problems are sorted by object, then message.
	Problems []Problem
	// Owned lists every Ingress this controller owns, served or not, sorted
	// by namespace and name. The status writer publishes addresses on these.
	Owned []model.ObjectRef
}

// HasErrors reports whether any problem has SeverityError, which is what the
// admission webhook denies on.
func (r Result) HasErrors() bool {
	for _, p := range r.Problems {
		if p.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Build translates objs into a routing snapshot. It owns the Ingresses cfg
// selects, leaves out every Ingress with an Error problem, resolves backends
// to endpoints and TLS hosts to certificates, and settles conflicts in favour
// of the oldest Ingress. It never modifies objs and never panics; a nil objs
// yields an empty snapshot.
func Build(cfg Config, objs *store.Objects) Result {
	if objs == nil {
		objs = &store.Objects{}
	}
	b := newBuilder(objs)

	var owned []*networkingv1.Ingress
	classes := newClassIndex(cfg, objs.IngressClasses)
	seen := make(map[string]struct{}, len(objs.Ingresses))
	for _, ing := range objs.Ingresses {
		if ing == nil {
			continue
		}
		key := ing.Namespace + "/" + ing.Name
		if _, dup := seen[key]; dup {
			// A store never holds two objects with one name; if a
			// malformed input does, the first one is the object.
			continue
		}
		seen[key] = struct{}{}
		if classes.owns(ing) {
			owned = append(owned, ing)
		}
	}
	// Oldest first: every conflict below is settled by processing order.
	slices.SortFunc(owned, compareAge)

	res := Result{Owned: make([]model.ObjectRef, 0, len(owned))}
	valid := make([]*ingress, 0, len(owned))
	for _, ing := range owned {
		in := parseIngress(ing, &b.problems)
		res.Owned = append(res.Owned, in.ref)
		if in.valid {
			valid = append(valid, in)
		}
	}
	slices.SortFunc(res.Owned, compareRefs)

	b.routes(valid)
	b.tls(valid)
	res.Snapshot = b.snapshot()
	res.Problems = sortProblems(b.problems)
	return res
}

// compareAge orders Ingresses oldest first, then by namespace and name, the
// order in which they win conflicts.
func compareAge(a, b *networkingv1.Ingress) int {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c
	}
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

func compareRefs(a, b model.ObjectRef) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// sortProblems orders problems by object, then message, and drops exact
// duplicates, so that status and test output are stable.
func sortProblems(ps []Problem) []Problem {
	if ps == nil {
		return []Problem{}
	}
	slices.SortFunc(ps, func(a, b Problem) int {
		return cmp.Or(compareRefs(a.Object, b.Object), cmp.Compare(a.Message, b.Message),
			cmp.Compare(a.Severity, b.Severity), cmp.Compare(a.Reason, b.Reason))
	})
	return slices.Compact(ps)
}
