package status

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeIngresses creates the Ingresses in a fake clientset and returns them
// as read back (with resourceVersions), like informer cache entries.
func fakeIngresses(t *testing.T, ings ...*networkingv1.Ingress) (*fake.Clientset, []*networkingv1.Ingress) {
	t.Helper()
	c := fake.NewClientset()
	var out []*networkingv1.Ingress
	for i, ing := range ings {
		ing = ing.DeepCopy()
		ing.UID = types.UID("uid-" + ing.Name)
		ing.ResourceVersion = ""
		created, err := c.NetworkingV1().Ingresses(ing.Namespace).Create(context.Background(), ing, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create ingress %d: %v", i, err)
		}
		// The fake tracker keeps status as given on create.
		out = append(out, created)
	}
	c.ClearActions()
	return c, out
}

// statusUpdates counts UpdateStatus calls on Ingresses.
func statusUpdates(c *fake.Clientset) int {
	n := 0
	for _, a := range c.Actions() {
		if a.GetVerb() == "update" && a.GetSubresource() == "status" && a.GetResource().Resource == "ingresses" {
			n++
		}
	}
	return n
}

func getStatus(t *testing.T, c *fake.Clientset, ns, name string) []string {
	t.Helper()
	ing, err := c.NetworkingV1().Ingresses(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return render(ing.Status.LoadBalancer.Ingress)
}

func eq(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func TestWriterSyncFake(t *testing.T) {
	ctx := context.Background()
	addrs := []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1"), host("lb.example.com")}
	c, ings := fakeIngresses(t,
		ingress("a", "new"),
		ingress("a", "done", host("lb.example.com"), ip("192.0.2.1")), // same, other order
		ingress("b", "stale", ip("192.0.2.9")),
		ingress("b", "left", ip("192.0.2.1"), host("lb.example.com")), // no longer owned, ours
		ingress("b", "foreign", ip("203.0.113.5")),                    // no longer owned, another controller's
	)
	w := NewWriter(WriterConfig{Client: c})
	if err := w.Sync(ctx, ings[:3], ings[3:], addrs); err != nil {
		t.Fatal(err)
	}
	if n := statusUpdates(c); n != 3 {
		t.Errorf("%d status updates, want 3 (new, stale, left)", n)
	}
	if got := getStatus(t, c, "a", "new"); !eq(got, []string{"192.0.2.1", "lb.example.com"}) {
		t.Errorf("new: status %q", got)
	}
	if got := getStatus(t, c, "b", "stale"); !eq(got, []string{"192.0.2.1", "lb.example.com"}) {
		t.Errorf("stale: status %q", got)
	}
	if got := getStatus(t, c, "a", "done"); !eq(got, []string{"lb.example.com", "192.0.2.1"}) {
		t.Errorf("done: rewritten to %q", got)
	}
	if got := getStatus(t, c, "b", "left"); len(got) != 0 {
		t.Errorf("left: status %q, want cleared", got)
	}
	if got := getStatus(t, c, "b", "foreign"); !eq(got, []string{"203.0.113.5"}) {
		t.Errorf("foreign: status %q, want untouched", got)
	}

	// The same cached objects again: the cache is behind Torii's own
	// writes, which must not be repeated.
	c.ClearActions()
	if err := w.Sync(ctx, ings[:3], ings[3:], addrs); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Actions()); n != 0 {
		t.Errorf("second Sync made %d API calls, want 0: %v", n, c.Actions())
	}
	if s := w.Stats(); s.Writes != 3 || s.Conflicts != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestWriterRemovesWhatItWroteAfterAddressChange(t *testing.T) {
	ctx := context.Background()
	c, ings := fakeIngresses(t, ingress("a", "moving"))
	w := NewWriter(WriterConfig{Client: c})
	old := []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}
	if err := w.Sync(ctx, ings, nil, old); err != nil {
		t.Fatal(err)
	}
	cur, _ := c.NetworkingV1().Ingresses("a").Get(ctx, "moving", metav1.GetOptions{})
	// The Ingress leaves Torii while the published address changes: what
	// Torii wrote is still Torii's to remove.
	if err := w.Sync(ctx, nil, []*networkingv1.Ingress{cur}, []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.2")}); err != nil {
		t.Fatal(err)
	}
	if got := getStatus(t, c, "a", "moving"); len(got) != 0 {
		t.Errorf("status %q, want cleared", got)
	}
}

func TestWriterRetriesConflict(t *testing.T) {
	ctx := context.Background()
	c, ings := fakeIngresses(t, ingress("a", "x"))
	var calls atomic.Int32
	c.PrependReactor("update", "ingresses", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" && calls.Add(1) == 1 {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, "x", nil)
		}
		return false, nil, nil
	})
	w := NewWriter(WriterConfig{Client: c})
	if err := w.Sync(ctx, ings, nil, []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	var verbs []string
	for _, a := range c.Actions() {
		verbs = append(verbs, a.GetVerb()+"/"+a.GetSubresource())
	}
	if want := "update/status,get/,update/status"; strings.Join(verbs, ",") != want {
		t.Errorf("calls %v, want %s", verbs, want)
	}
	if got := getStatus(t, c, "a", "x"); !eq(got, []string{"192.0.2.1"}) {
		t.Errorf("status %q", got)
	}
	if s := w.Stats(); s.Writes != 1 || s.Conflicts != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestWriterConflictWithForeignWriteLeavesItAlone(t *testing.T) {
	ctx := context.Background()
	ours := []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}
	c, ings := fakeIngresses(t, ingress("a", "x", ours...))
	// Between Torii's read (the cache) and its write, another controller
	// takes the Ingress and writes its own address.
	live := ings[0].DeepCopy()
	live.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{ip("203.0.113.5")}
	if _, err := c.NetworkingV1().Ingresses("a").UpdateStatus(ctx, live, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.PrependReactor("update", "ingresses", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.UpdateAction).GetObject().(*networkingv1.Ingress)
		if obj.ResourceVersion == ings[0].ResourceVersion {
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, "x", nil)
		}
		return false, nil, nil
	})
	w := NewWriter(WriterConfig{Client: c})
	if err := w.Sync(ctx, nil, ings, ours); err != nil {
		t.Fatal(err)
	}
	if got := getStatus(t, c, "a", "x"); !eq(got, []string{"203.0.113.5"}) {
		t.Errorf("status %q, want the other controller's", got)
	}
}

func TestWriterErrorsLoggedOnceAndJoined(t *testing.T) {
	ctx := context.Background()
	c, ings := fakeIngresses(t, ingress("a", "x"), ingress("a", "y"))
	var refuse atomic.Bool
	refuse.Store(true)
	c.PrependReactor("update", "ingresses", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "status" && refuse.Load() {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses/status"}, "x", nil)
		}
		return false, nil, nil
	})
	var logs bytes.Buffer
	w := NewWriter(WriterConfig{Client: c, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	addrs := []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}
	for range 3 {
		err := w.Sync(ctx, ings, nil, addrs)
		if err == nil || !strings.Contains(err.Error(), "ingress a/x") || !strings.Contains(err.Error(), "ingress a/y") {
			t.Fatalf("err = %v, want both objects", err)
		}
		if apierrors.IsConflict(err) || !apierrors.IsForbidden(err) {
			t.Errorf("joined error lost its cause: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "ingress status write failed"); n != 2 {
		t.Errorf("%d failure log lines over 3 Syncs, want 2 (one per object):\n%s", n, logs.String())
	}
	if n := statusUpdates(c); n != 6 {
		t.Errorf("%d update attempts, want 6: a forbidden write is not retried within a Sync", n)
	}
	refuse.Store(false)
	if err := w.Sync(ctx, ings, nil, addrs); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "recovered"); n != 2 {
		t.Errorf("%d recovery lines, want 2", n)
	}
}

func TestWriterConflictRetriesBounded(t *testing.T) {
	ctx := context.Background()
	c, ings := fakeIngresses(t, ingress("a", "x"))
	c.PrependReactor("update", "ingresses", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, "x", nil)
	})
	w := NewWriter(WriterConfig{Client: c})
	err := w.Sync(ctx, ings, nil, []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")})
	if !apierrors.IsConflict(err) {
		t.Fatalf("err = %v, want a conflict", err)
	}
	if n := statusUpdates(c); n != maxAttempts {
		t.Errorf("%d attempts, want %d", n, maxAttempts)
	}
}

func TestWriterIgnoresDeleted(t *testing.T) {
	ctx := context.Background()
	c, ings := fakeIngresses(t, ingress("a", "gone"))
	if err := c.NetworkingV1().Ingresses("a").Delete(ctx, "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(WriterConfig{Client: c})
	if err := w.Sync(ctx, ings, nil, []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}); err != nil {
		t.Fatalf("Sync on a deleted Ingress: %v", err)
	}
}

func TestWriterClear(t *testing.T) {
	ctx := context.Background()
	addrs := []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}
	c, ings := fakeIngresses(t,
		ingress("a", "ours", ip("192.0.2.1")),
		ingress("a", "mixed", ip("192.0.2.1"), host("other.example.com")),
		ingress("a", "none", host("other.example.com")),
	)
	w := NewWriter(WriterConfig{Client: c})
	if err := w.Clear(ctx, ings, addrs); err != nil {
		t.Fatal(err)
	}
	if got := getStatus(t, c, "a", "ours"); len(got) != 0 {
		t.Errorf("ours: %q", got)
	}
	if got := getStatus(t, c, "a", "mixed"); !eq(got, []string{"other.example.com"}) {
		t.Errorf("mixed: %q", got)
	}
	if n := statusUpdates(c); n != 2 {
		t.Errorf("%d updates, want 2 (none needs no write)", n)
	}
}

func TestWriterInterrupted(t *testing.T) {
	c, ings := fakeIngresses(t, ingress("a", "x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w := NewWriter(WriterConfig{Client: c})
	err := w.Sync(ctx, ings, nil, []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("err = %v", err)
	}
}
