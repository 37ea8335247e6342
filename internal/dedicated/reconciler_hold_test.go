package dedicated

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/torii-dev/torii/internal/apis/toriiv1alpha1"
	"github.com/torii-dev/torii/internal/store"
)

// startReconciler runs a Reconciler on fake clients until the test ends,
// its caches synced.
func startReconciler(t *testing.T, onProblems func()) (context.Context, *Reconciler, *fake.Clientset) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := fake.NewClientset()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{toriiv1alpha1.GroupVersionResource: "IngressClassConfigList"})
	r, err := New(Config{Client: c, Dynamic: dyn, Translate: tcfg, Image: "img", OnProblems: onProblems})
	if err != nil {
		t.Fatal(err)
	}
	go r.configs.RunWithContext(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "caches", func() bool { return r.synced.Load() && r.configs.HasSynced() })
	return ctx, r, c
}

// reconcileUnit creates the children of one dedicated Ingress and waits
// until the caches show them.
func reconcileUnit(ctx context.Context, t *testing.T, r *Reconciler, view *store.Objects, conf *toriiv1alpha1.IngressClassConfig) string {
	t.Helper()
	plan := BuildPlan(tcfg, view, configs(conf))
	if len(plan.Units) != 1 {
		t.Fatalf("plan: %v", describe(plan))
	}
	unit := plan.Units[0].Name
	r.SetPlan(plan)
	if err := r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	for _, k := range r.kinds {
		waitFor(t, k.name+" in the cache", func() bool { return k.get("shop", unit) != nil })
	}
	return unit
}

func deletes(c *fake.Clientset, from int) []k8stesting.Action {
	var out []k8stesting.Action
	for _, a := range c.Actions()[from:] {
		if a.GetVerb() == "delete" {
			out = append(out, a)
		}
	}
	return out
}

// TestReconcileInvalidKeepsChild: an apply the API server refuses (422)
// for a reason other than an immutable field keeps the object (a typo in
// the config must not cost the load balancer its address); a changed
// loadBalancerClass, which the server cannot update, replaces it.
func TestReconcileInvalidKeepsChild(t *testing.T) {
	ctx, r, c := startReconciler(t, nil)
	view := &store.Objects{IngressClasses: []*networkingv1.IngressClass{class("c", "ded")}, Ingresses: []*networkingv1.Ingress{ingress("shop", "web", "c", "")}}
	conf := config("ded", toriiv1alpha1.ModeDedicated)
	unit := reconcileUnit(ctx, t, r, view, conf)

	c.PrependReactor("patch", "services", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, unit, field.ErrorList{
			field.Invalid(field.NewPath("metadata", "annotations"), "bad key", "refused"),
		})
	})
	annotated := config("ded", toriiv1alpha1.ModeDedicated)
	annotated.Spec.Dedicated.Service.Annotations = map[string]string{"bad key": "x"}
	before := len(c.Actions())
	r.SetPlan(BuildPlan(tcfg, view, configs(annotated)))
	if err := r.Reconcile(ctx); err == nil {
		t.Fatal("a refused apply reported no error")
	}
	if d := deletes(c, before); len(d) != 0 {
		t.Fatalf("a refused apply deleted: %v", d)
	}
	if _, err := c.CoreV1().Services("shop").Get(ctx, unit, metav1.GetOptions{}); err != nil {
		t.Fatalf("the Service is gone: %v", err)
	}
	if p := r.Problems(); len(p) != 1 || p[0].Reason != ReasonApplyFailed || !strings.Contains(p[0].Message, "bad key") {
		t.Fatalf("problems %+v, want the refusal reported on the Ingress", p)
	}

	// An immutable field that really differs: replaced.
	classed := config("ded", toriiv1alpha1.ModeDedicated)
	classed.Spec.Dedicated.Service.LoadBalancerClass = ptr("example.com/lb")
	before = len(c.Actions())
	r.SetPlan(BuildPlan(tcfg, view, configs(classed)))
	if err := r.Reconcile(ctx); err == nil {
		t.Fatal("a refused apply reported no error")
	}
	d := deletes(c, before)
	if len(d) != 1 || d[0].GetResource().Resource != "services" {
		t.Fatalf("deletes after a loadBalancerClass change: %v", d)
	}
	// The replacement is the controller's own doing, not a failure to
	// report: the next pass creates the Service.
	if p := r.Problems(); len(p) != 0 {
		t.Fatalf("problems %+v after a replacement, want none", p)
	}
}

func TestImmutableChanged(t *testing.T) {
	u := &Unit{Name: "u", Namespace: "shop", Class: "c", Config: config("ded", toriiv1alpha1.ModeDedicated), Ingresses: []*networkingv1.Ingress{ingress("shop", "web", "c", "")}}
	want := Desired(u, Settings{Image: "img", ControllerName: ctrl})
	if immutableChanged(want.Service.DeepCopy(), want.Service) || immutableChanged(want.Deployment.DeepCopy(), want.Deployment) ||
		immutableChanged(want.RoleBinding.DeepCopy(), want.RoleBinding) {
		t.Errorf("equal objects reported as differing")
	}
	svc := want.Service.DeepCopy()
	svc.Spec.LoadBalancerClass = ptr("example.com/lb")
	svc.Annotations = map[string]string{"bad key": "x"}
	if !immutableChanged(svc, want.Service) {
		t.Errorf("loadBalancerClass change not seen")
	}
	svc = want.Service.DeepCopy()
	svc.Annotations = map[string]string{"other": "x"}
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	if immutableChanged(svc, want.Service) {
		t.Errorf("mutable Service fields reported as immutable")
	}
	dep := want.Deployment.DeepCopy()
	dep.Spec.Selector.MatchLabels = map[string]string{"x": "y"}
	if !immutableChanged(dep, want.Deployment) {
		t.Errorf("Deployment selector change not seen")
	}
	dep = want.Deployment.DeepCopy()
	dep.Spec.Template.Spec.NodeSelector = map[string]string{"x": "y y"}
	if immutableChanged(dep, want.Deployment) {
		t.Errorf("Deployment template change reported as immutable")
	}
	rb := want.RoleBinding.DeepCopy()
	rb.RoleRef.Name = "other"
	if !immutableChanged(rb, want.RoleBinding) {
		t.Errorf("roleRef change not seen")
	}
}

// TestReconcileUnresolvableClassHolds: an Ingress whose class is missing
// or whose parameters are broken keeps its children (and is warned about
// once it has some); a class of another controller releases them.
func TestReconcileUnresolvableClassHolds(t *testing.T) {
	ctx, r, c := startReconciler(t, nil)
	ing := ingress("shop", "web", "c", "")
	other := ingress("shop", "other", "c", "") // no children
	conf := config("ded", toriiv1alpha1.ModeDedicated)
	unit := reconcileUnit(ctx, t, r, &store.Objects{IngressClasses: []*networkingv1.IngressClass{class("c", "ded")}, Ingresses: []*networkingv1.Ingress{ing}}, conf)
	present := func() bool {
		_, err := c.CoreV1().Services("shop").Get(ctx, unit, metav1.GetOptions{})
		return err == nil
	}
	pass := func(classes ...*networkingv1.IngressClass) *Plan {
		t.Helper()
		p := BuildPlan(tcfg, &store.Objects{IngressClasses: classes, Ingresses: []*networkingv1.Ingress{ing, other}}, configs(conf))
		r.SetPlan(p)
		if err := r.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The class deleted (or being recreated): kept.
	pass()
	if !present() {
		t.Fatal("the Service went with its IngressClass")
	}
	p := r.Plan(&store.Objects{Ingresses: []*networkingv1.Ingress{ing, other}})
	if len(p.Problems) != 1 || p.Problems[0].Object.Name != "web" || p.Problems[0].Reason != "IngressClassNotFound" {
		t.Errorf("problems with the class missing: %v (want one, about the Ingress with children)", p.Problems)
	}

	// A typo in the parameters' apiGroup: kept.
	pass(class("c", "ded", func(c *networkingv1.IngressClass) { c.Spec.Parameters.APIGroup = ptr("torii.dev.") }))
	if !present() {
		t.Fatal("the Service went with a typo in the class's parameters")
	}

	// The class now another controller's: released.
	pass(class("c", "ded", func(c *networkingv1.IngressClass) { c.Spec.Controller = "example.com/other" }))
	if present() {
		t.Fatal("the Service outlived the move to another controller")
	}
}
