package status

import (
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// OnlyStatusChanged reports whether an Ingress update changed nothing but
// its status (and the bookkeeping every write changes: resourceVersion,
// managedFields). The rebuild lane should drop such updates: they are
// mostly the echo of the writer's own writes, and status is never an input
// to routing, so acting on them could only start a write-rebuild loop.
//
// metadata.generation is not enough for this: it ignores annotations,
// which carry routing configuration.
func OnlyStatusChanged(old, cur *networkingv1.Ingress) bool {
	if old == nil || cur == nil {
		return false
	}
	a, b := old.ObjectMeta, cur.ObjectMeta
	a.ResourceVersion, b.ResourceVersion = "", ""
	a.ManagedFields, b.ManagedFields = nil, nil
	return equality.Semantic.DeepEqual(a, b) && equality.Semantic.DeepEqual(old.Spec, cur.Spec)
}
