package dir

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/torii-dev/torii/internal/store"
)

// objectKey identifies an object the way the API server would: two
// manifests with the same key describe the same object.
type objectKey struct {
	kind, namespace, name string
}

func (k objectKey) String() string {
	if k.namespace == "" {
		return k.kind + " " + k.name
	}
	return k.kind + " " + k.namespace + "/" + k.name
}

// keyOf returns the key of one of the five kinds store.Objects holds.
func keyOf(obj runtime.Object) objectKey {
	var kind string
	switch obj.(type) {
	case *networkingv1.IngressClass:
		kind = "IngressClass"
	case *networkingv1.Ingress:
		kind = "Ingress"
	case *corev1.Service:
		kind = "Service"
	case *discoveryv1.EndpointSlice:
		kind = "EndpointSlice"
	case *corev1.Secret:
		kind = "Secret"
	default:
		panic(fmt.Sprintf("dir: unexpected object type %T", obj))
	}
	m := obj.(metav1.Object)
	return objectKey{kind: kind, namespace: m.GetNamespace(), name: m.GetName()}
}

// add appends obj to the slice of its kind.
func add(out *store.Objects, obj runtime.Object) {
	switch o := obj.(type) {
	case *networkingv1.IngressClass:
		out.IngressClasses = append(out.IngressClasses, o)
	case *networkingv1.Ingress:
		out.Ingresses = append(out.Ingresses, o)
	case *corev1.Service:
		out.Services = append(out.Services, o)
	case *discoveryv1.EndpointSlice:
		out.EndpointSlices = append(out.EndpointSlices, o)
	case *corev1.Secret:
		out.Secrets = append(out.Secrets, o)
	default:
		panic(fmt.Sprintf("dir: unexpected object type %T", obj))
	}
}

// each calls fn for every object in objs, kind by kind in a fixed order.
func each(objs *store.Objects, fn func(runtime.Object)) {
	for _, o := range objs.IngressClasses {
		fn(o)
	}
	for _, o := range objs.Ingresses {
		fn(o)
	}
	for _, o := range objs.Services {
		fn(o)
	}
	for _, o := range objs.EndpointSlices {
		fn(o)
	}
	for _, o := range objs.Secrets {
		fn(o)
	}
}

// count returns how many objects objs holds.
func count(objs *store.Objects) int {
	return len(objs.IngressClasses) + len(objs.Ingresses) + len(objs.Services) +
		len(objs.EndpointSlices) + len(objs.Secrets)
}

// sortObjects orders every slice by namespace, then name, so that views are
// deterministic whatever the file and document order.
func sortObjects(objs *store.Objects) {
	sortByName(objs.IngressClasses)
	sortByName(objs.Ingresses)
	sortByName(objs.Services)
	sortByName(objs.EndpointSlices)
	sortByName(objs.Secrets)
}

func sortByName[T metav1.Object](s []T) {
	slices.SortFunc(s, func(a, b T) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
}
