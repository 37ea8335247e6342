package kube

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/torii-dev/torii/internal/store"
)

// view lists every cache into a new store.Objects, each slice sorted by
// namespace and name so that the translator sees the same order whatever
// the informers' map order. The objects are the cached pointers: listing
// copies only the slices, which keeps a view of thousands of objects cheap.
func (s *Source) view() *store.Objects {
	v := &store.Objects{}
	if s.classes != nil {
		v.IngressClasses = appendCached[*networkingv1.IngressClass](nil, s.classes)
	} else {
		v.IngressClasses = slices.Clone(s.fixedClasses)
	}
	for _, sc := range s.scopes {
		for _, inf := range sc.ingresses {
			v.Ingresses = appendCached[*networkingv1.Ingress](v.Ingresses, inf)
		}
		v.Services = appendCached[*corev1.Service](v.Services, sc.services)
		v.EndpointSlices = appendCached[*discoveryv1.EndpointSlice](v.EndpointSlices, sc.slices)
		v.Secrets = appendCached[*corev1.Secret](v.Secrets, sc.secrets)
	}
	// Redundant with the informers' field selector, except with clients
	// that ignore field selectors (the fake clientset): a view must hold
	// only TLS Secrets either way.
	v.Secrets = slices.DeleteFunc(v.Secrets, func(s *corev1.Secret) bool { return s.Type != corev1.SecretTypeTLS })
	sortByName(v.IngressClasses)
	sortByName(v.Ingresses)
	sortByName(v.Services)
	sortByName(v.EndpointSlices)
	sortByName(v.Secrets)
	return v
}

// appendCached appends the objects in inf's cache to dst.
func appendCached[T any](dst []T, inf cache.SharedIndexInformer) []T {
	objs := inf.GetStore().List()
	dst = slices.Grow(dst, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			dst = append(dst, t)
		}
	}
	return dst
}

func sortByName[T metav1.Object](s []T) {
	slices.SortFunc(s, func(a, b T) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
}
