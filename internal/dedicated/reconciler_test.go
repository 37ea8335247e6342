package dedicated

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/torii-dev/torii/internal/apis/toriiv1alpha1"
	"github.com/torii-dev/torii/internal/store"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestReconcile runs the apply loop against client-go's fake clientset
// (which implements server-side apply): children created, orphans of this
// controller deleted, another controller's children and held ones kept.
func TestReconcile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	orphanLabels := map[string]string{LabelManagedBy: "torii", LabelController: ControllerHash(ctrl), LabelInstance: "torii-old-00000000"}
	foreignLabels := map[string]string{LabelManagedBy: "torii", LabelController: ControllerHash("example.com/other"), LabelInstance: "torii-x-00000000"}
	c := fake.NewClientset(
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "torii-old-00000000", Labels: orphanLabels, UID: "orphan"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "torii-x-00000000", Labels: foreignLabels, UID: "foreign"}},
	)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{toriiv1alpha1.GroupVersionResource: "IngressClassConfigList"})
	r, err := New(Config{Client: c, Dynamic: dyn, Translate: tcfg, Image: "img"})
	if err != nil {
		t.Fatal(err)
	}
	go r.configs.RunWithContext(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "caches", func() bool { return r.synced.Load() && r.configs.HasSynced() })

	deployments := func() map[string]bool {
		list, err := c.AppsV1().Deployments("shop").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, d := range list.Items {
			out[d.Name] = true
		}
		return out
	}

	ing := ingress("shop", "web", "c", "")
	view := &store.Objects{IngressClasses: []*networkingv1.IngressClass{class("c", "ded")}, Ingresses: []*networkingv1.Ingress{ing}}
	plan := BuildPlan(tcfg, view, configs(config("ded", toriiv1alpha1.ModeDedicated)))
	unit := plan.Units[0].Name
	r.SetPlan(plan)
	if err := r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := deployments()
	if !got[unit] || got["torii-old-00000000"] || !got["torii-x-00000000"] {
		t.Fatalf("deployments after the first pass: %v (want %s and the other controller's, not the orphan)", got, unit)
	}
	for _, k := range r.kinds {
		waitFor(t, k.name+" in the cache", func() bool { return k.get("shop", unit) != nil })
		if k.name == "Deployment" {
			// Else the next pass deletes the orphan again (NotFound).
			waitFor(t, "the orphan gone from the cache", func() bool { return k.get("shop", "torii-old-00000000") == nil })
		}
	}
	// A pass with nothing changed writes nothing.
	before := len(c.Actions())
	if err := r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Actions()) - before; n != 0 {
		t.Errorf("an unchanged pass made %d API calls: %v", n, c.Actions()[before:])
	}

	// Its IngressClassConfig missing: held, nothing deleted.
	held := BuildPlan(tcfg, view, configs())
	if len(held.Units) != 0 || !held.Held[types.NamespacedName{Namespace: "shop", Name: unit}] {
		t.Fatalf("plan without the config: %v", describe(held))
	}
	r.SetPlan(held)
	if err := r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if !deployments()[unit] {
		t.Fatalf("a held unit's Deployment was deleted")
	}

	// The Ingress gone: every child deleted.
	r.SetPlan(BuildPlan(tcfg, &store.Objects{IngressClasses: view.IngressClasses}, configs(config("ded", toriiv1alpha1.ModeDedicated))))
	if err := r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := deployments(); got[unit] || !got["torii-x-00000000"] {
		t.Fatalf("deployments after the Ingress went: %v", got)
	}
	if _, err := c.CoreV1().Services("shop").Get(ctx, unit, metav1.GetOptions{}); err == nil {
		t.Errorf("the Service outlived its Ingress")
	}
}

// TestReconcileApplyRefused: a child the API server refuses (here a
// ResourceQuota on load-balancer Services) becomes a Warning on the
// Ingress, reported once, and clears when the apply goes through.
func TestReconcileApplyRefused(t *testing.T) {
	var calls atomic.Int32
	ctx, r, c := startReconciler(t, func() { calls.Add(1) })
	var refuse atomic.Bool
	refuse.Store(true)
	c.PrependReactor("patch", "services", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if !refuse.Load() {
			return false, nil, nil
		}
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, action.(k8stesting.PatchAction).GetName(),
			errors.New("exceeded quota: lb, requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0"))
	})

	ing := ingress("shop", "web", "c", "")
	ing.UID = "uid-web"
	view := &store.Objects{IngressClasses: []*networkingv1.IngressClass{class("c", "ded")}, Ingresses: []*networkingv1.Ingress{ing}}
	r.SetPlan(BuildPlan(tcfg, view, configs(config("ded", toriiv1alpha1.ModeDedicated))))
	for pass := range 2 {
		if err := r.Reconcile(ctx); err == nil {
			t.Fatalf("pass %d: no error with the Service refused", pass)
		}
		got := r.Problems()
		if len(got) != 1 || got[0].Reason != ReasonApplyFailed || got[0].Object.UID != "uid-web" ||
			!strings.Contains(got[0].Message, "exceeded quota") || !strings.Contains(got[0].Message, "Service shop/") {
			t.Fatalf("pass %d: problems %+v, want one %s about the Service's quota on shop/web", pass, got, ReasonApplyFailed)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("pass %d: OnProblems called %d times, want once (the same failure again is no change)", pass, n)
		}
	}
	refuse.Store(false)
	if err := r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.Problems(); len(got) != 0 {
		t.Fatalf("problems after the apply went through: %+v", got)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("OnProblems called %d times, want 2 (failure, recovery)", n)
	}
}
