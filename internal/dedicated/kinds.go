package dedicated

import (
	"context"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// kind is one kind of child: its informers (one per watched namespace, or
// one cluster-wide) and its typed client calls.
type kind struct {
	name      string
	informer  func(informers.SharedInformerFactory) cache.SharedIndexInformer
	informers []cache.SharedIndexInformer
	patch     func(ctx context.Context, ns, name string, data []byte) (metav1.Object, error)
	delete    func(ctx context.Context, ns, name string, opts metav1.DeleteOptions) error
}

var applyOptions = metav1.PatchOptions{FieldManager: FieldManager, Force: ptr(true)}

// newKinds lists the child kinds in creation order.
func newKinds(c kubernetes.Interface) []*kind {
	return []*kind{
		{
			name: "ServiceAccount",
			informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
				return f.Core().V1().ServiceAccounts().Informer()
			},
			patch: func(ctx context.Context, ns, name string, data []byte) (metav1.Object, error) {
				return c.CoreV1().ServiceAccounts(ns).Patch(ctx, name, types.ApplyPatchType, data, applyOptions)
			},
			delete: func(ctx context.Context, ns, name string, o metav1.DeleteOptions) error {
				return c.CoreV1().ServiceAccounts(ns).Delete(ctx, name, o)
			},
		},
		{
			name: "Role",
			informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
				return f.Rbac().V1().Roles().Informer()
			},
			patch: func(ctx context.Context, ns, name string, data []byte) (metav1.Object, error) {
				return c.RbacV1().Roles(ns).Patch(ctx, name, types.ApplyPatchType, data, applyOptions)
			},
			delete: func(ctx context.Context, ns, name string, o metav1.DeleteOptions) error {
				return c.RbacV1().Roles(ns).Delete(ctx, name, o)
			},
		},
		{
			name: "RoleBinding",
			informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
				return f.Rbac().V1().RoleBindings().Informer()
			},
			patch: func(ctx context.Context, ns, name string, data []byte) (metav1.Object, error) {
				return c.RbacV1().RoleBindings(ns).Patch(ctx, name, types.ApplyPatchType, data, applyOptions)
			},
			delete: func(ctx context.Context, ns, name string, o metav1.DeleteOptions) error {
				return c.RbacV1().RoleBindings(ns).Delete(ctx, name, o)
			},
		},
		{
			name: "Service",
			informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
				return f.Core().V1().Services().Informer()
			},
			patch: func(ctx context.Context, ns, name string, data []byte) (metav1.Object, error) {
				return c.CoreV1().Services(ns).Patch(ctx, name, types.ApplyPatchType, data, applyOptions)
			},
			delete: func(ctx context.Context, ns, name string, o metav1.DeleteOptions) error {
				return c.CoreV1().Services(ns).Delete(ctx, name, o)
			},
		},
		{
			name: "Deployment",
			informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
				return f.Apps().V1().Deployments().Informer()
			},
			patch: func(ctx context.Context, ns, name string, data []byte) (metav1.Object, error) {
				return c.AppsV1().Deployments(ns).Patch(ctx, name, types.ApplyPatchType, data, applyOptions)
			},
			delete: func(ctx context.Context, ns, name string, o metav1.DeleteOptions) error {
				return c.AppsV1().Deployments(ns).Delete(ctx, name, o)
			},
		},
		{
			name: "PodDisruptionBudget",
			informer: func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
				return f.Policy().V1().PodDisruptionBudgets().Informer()
			},
			patch: func(ctx context.Context, ns, name string, data []byte) (metav1.Object, error) {
				return c.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, name, types.ApplyPatchType, data, applyOptions)
			},
			delete: func(ctx context.Context, ns, name string, o metav1.DeleteOptions) error {
				return c.PolicyV1().PodDisruptionBudgets(ns).Delete(ctx, name, o)
			},
		},
	}
}

func (k *kind) key(ns, name string) string { return k.name + "/" + ns + "/" + name }

// get returns the cached object, or nil.
func (k *kind) get(ns, name string) metav1.Object {
	for _, inf := range k.informers {
		obj, ok, err := inf.GetStore().GetByKey(ns + "/" + name)
		if err == nil && ok {
			if m, ok := obj.(metav1.Object); ok {
				return m
			}
		}
	}
	return nil
}

// cached lists every cached child of this kind.
func (k *kind) cached() []metav1.Object {
	var out []metav1.Object
	for _, inf := range k.informers {
		for _, obj := range inf.GetStore().List() {
			if m, ok := obj.(metav1.Object); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// kindOfObject returns the kind of a desired object (the builders set
// TypeMeta).
func kindOfObject(kinds []*kind, obj Object) *kind {
	name := obj.GetObjectKind().GroupVersionKind().Kind
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	panic("dedicated: no kind " + name)
}

// ControllerRules are the permissions dedicated mode needs beyond the
// controller's own (deploy/dedicated.yaml grants them; go test ./deploy
// checks it grants exactly these). The children are written by server-side
// apply (patch; create when missing) and read through label-selected
// informers (list, watch).
func ControllerRules() []rbacv1.PolicyRule {
	children := []string{"list", "watch", "create", "patch", "delete"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"torii.dev"}, Resources: []string{"ingressclassconfigs"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: children},
		{APIGroups: []string{""}, Resources: []string{"services", "serviceaccounts"}, Verbs: children},
		{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "rolebindings"}, Verbs: children},
		{APIGroups: []string{"policy"}, Resources: []string{"poddisruptionbudgets"}, Verbs: children},
		// blockOwnerDeletion on the children's ownerReferences, where the
		// OwnerReferencesPermissionEnforcement admission plugin runs.
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses/finalizers"}, Verbs: []string{"update"}},
	}
}
