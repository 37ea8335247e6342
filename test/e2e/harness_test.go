package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/torii-dev/torii/test/e2e/harness"
)

// waitTimeout bounds every wait in these tests. Informers reconnecting
// after an API server restart back off for up to a few seconds.
const waitTimeout = 30 * time.Second

// TestHarness proves the control plane the e2e tests build on: objects
// through client-go, loopback EndpointSlices through etcd that the API and
// informers see, status updates, and an API server restart.
func TestHarness(t *testing.T) {
	t0 := time.Now()
	c := harness.Start(t)
	t.Logf("timing: harness.Start took %v", time.Since(t0).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := c.Client()
	const ns = "harness"

	t.Run("kubeconfig", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		kc, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		v, err := kc.Discovery().ServerVersion()
		if err != nil {
			t.Fatalf("server version through the kubeconfig: %v", err)
		}
		t.Logf("kube-apiserver %s", v.GitVersion)
	})

	t.Run("objects", func(t *testing.T) {
		mustCreate(t, func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, func() error {
			_, err := cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
				ObjectMeta: metav1.ObjectMeta{Name: "torii"},
				Spec:       networkingv1.IngressClassSpec{Controller: "torii.dev/ingress-controller"},
			}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, func() error {
			// Selector-less: the harness supplies its EndpointSlices.
			_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "web"},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
					Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080),
				}}},
			}, metav1.CreateOptions{})
			return err
		})
		mustCreate(t, func() error {
			_, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, webIngress(), metav1.CreateOptions{})
			return err
		})
	})

	// An informer started before the writes, as Torii's would be.
	rec := startSliceInformer(t, cs, ns)

	t.Run("api refuses loopback", func(t *testing.T) {
		// The premise of PutEndpointSlice: through the API this is invalid.
		_, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, webSlice(ns, "127.0.0.1"), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Fatalf("creating a loopback EndpointSlice through the API: got %v, want Invalid", err)
		}
	})

	t.Run("put loopback slice", func(t *testing.T) {
		start := time.Now()
		if err := c.PutEndpointSlice(ctx, webSlice(ns, "127.0.0.1")); err != nil {
			t.Fatal(err)
		}
		t.Logf("timing: PutEndpointSlice (etcd write, watch event, read back) took %v", time.Since(start).Round(time.Millisecond))
		got, err := cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, "web-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if addrs := sliceAddrs(got); !slices.Equal(addrs, []string{"127.0.0.1"}) {
			t.Errorf("addresses through the API = %v", addrs)
		}
		if got.Generation != 1 || got.UID == "" || got.CreationTimestamp.IsZero() {
			t.Errorf("metadata not set as on create: generation %d uid %q created %v", got.Generation, got.UID, got.CreationTimestamp)
		}
		if p := got.Ports[0]; p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP {
			t.Errorf("port protocol not defaulted to TCP: %+v", p)
		}
		rec.waitFor(t, "informer add of 127.0.0.1", func(e sliceEvent) bool {
			return e.kind == "add" && slices.Equal(e.addrs, []string{"127.0.0.1"})
		})

		// An update keeps identity, bumps the generation and reaches the
		// informer as an update.
		if err := c.PutEndpointSlice(ctx, webSlice(ns, "127.0.0.1", "127.0.0.2")); err != nil {
			t.Fatal(err)
		}
		upd, err := cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, "web-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if upd.UID != got.UID || upd.Generation != 2 {
			t.Errorf("after update: uid %q generation %d, want uid %q generation 2", upd.UID, upd.Generation, got.UID)
		}
		rec.waitFor(t, "informer update to two addresses", func(e sliceEvent) bool {
			return e.kind == "update" && slices.Equal(e.addrs, []string{"127.0.0.1", "127.0.0.2"})
		})
	})

	t.Run("put still validates", func(t *testing.T) {
		bad := webSlice(ns, "127.0.0.1")
		bad.Name = "bad"
		bad.AddressType = "Bogus"
		if err := c.PutEndpointSlice(ctx, bad); err == nil {
			t.Fatal("PutEndpointSlice accepted an invalid addressType")
		}
		other := webSlice("no-such-namespace", "127.0.0.1")
		if err := c.PutEndpointSlice(ctx, other); !apierrors.IsNotFound(err) {
			t.Fatalf("PutEndpointSlice into a missing namespace: got %v, want NotFound", err)
		}
	})

	t.Run("ingress status", func(t *testing.T) {
		ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "127.0.0.1"}, {Hostname: "lb.example.test"}}
		if _, err := cs.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, ing, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("UpdateStatus: %v", err)
		}
		got, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if lb := got.Status.LoadBalancer.Ingress; len(lb) != 2 || lb[0].IP != "127.0.0.1" || lb[1].Hostname != "lb.example.test" {
			t.Errorf("status.loadBalancer.ingress = %+v", lb)
		}
		// The status subresource leaves the spec alone, and the main
		// resource leaves the status alone.
		got.Status.LoadBalancer.Ingress = nil
		got.Spec.Rules[0].Host = "changed.example.test"
		if _, err := cs.NetworkingV1().Ingresses(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		again, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(again.Status.LoadBalancer.Ingress) != 2 {
			t.Errorf("a spec update changed the status: %+v", again.Status.LoadBalancer.Ingress)
		}
	})

	t.Run("rbac applies to impersonated users", func(t *testing.T) {
		kc, err := kubernetes.NewForConfig(c.ImpersonatingConfig("system:serviceaccount:harness:nobody"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = kc.NetworkingV1().Ingresses(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("list ingresses as an unprivileged user: got %v, want Forbidden", err)
		}
	})

	t.Run("restart apiserver", func(t *testing.T) {
		start := time.Now()
		if err := c.StopAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		stopped := time.Since(start)
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			t.Fatal("the API answered while stopped")
		}
		if err := c.StartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("timing: API server stop %v, stop+start %v", stopped.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

		// The same clientset works again: same address, same certificate.
		if _, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, "web", metav1.GetOptions{}); err != nil {
			t.Fatalf("clientset after restart: %v", err)
		}
		// Nothing was lost, and a write after the restart reaches the
		// informer, which has re-established its watch.
		start = time.Now()
		if err := c.PutEndpointSlice(ctx, webSlice(ns, "127.0.0.3")); err != nil {
			t.Fatal(err)
		}
		rec.waitFor(t, "informer update after the restart", func(e sliceEvent) bool {
			return e.kind == "update" && slices.Equal(e.addrs, []string{"127.0.0.3"})
		})
		t.Logf("timing: informer saw the first post-restart write %v after it started", time.Since(start).Round(time.Millisecond))

		if err := c.RestartAPIServer(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Fatalf("clientset after RestartAPIServer: %v", err)
		}
	})

	t.Run("delete slice", func(t *testing.T) {
		start := time.Now()
		if err := c.DeleteEndpointSlice(ctx, ns, "web-1"); err != nil {
			t.Fatal(err)
		}
		t.Logf("timing: DeleteEndpointSlice took %v", time.Since(start).Round(time.Millisecond))
		rec.waitFor(t, "informer delete", func(e sliceEvent) bool { return e.kind == "delete" })
		t.Logf("timing: informer saw the delete %v after it started", time.Since(start).Round(time.Millisecond))
		if err := c.DeleteEndpointSlice(ctx, ns, "web-1"); !apierrors.IsNotFound(err) {
			t.Fatalf("deleting a missing slice: got %v, want NotFound", err)
		}
	})
	t.Logf("timing: TestHarness total %v", time.Since(t0).Round(time.Millisecond))
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

func webIngress() *networkingv1.Ingress {
	class := "torii"
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: "web.example.test",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: "web", Port: networkingv1.ServiceBackendPort{Name: "http"},
						}},
					}},
				}},
			}},
		},
	}
}

// webSlice is the EndpointSlice "web-1" of Service web with one ready
// endpoint per address on port 8080.
func webSlice(ns string, addrs ...string) *discoveryv1.EndpointSlice {
	name, port, ready := "http", int32(8080), true
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "web-1",
			Namespace: ns,
			Labels:    map[string]string{discoveryv1.LabelServiceName: "web"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &port}},
	}
	for _, a := range addrs {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{a},
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	return es
}

func sliceAddrs(es *discoveryv1.EndpointSlice) []string {
	var out []string
	for _, ep := range es.Endpoints {
		out = append(out, ep.Addresses...)
	}
	return out
}

type sliceEvent struct {
	kind  string // add, update, delete
	addrs []string
}

// sliceRecorder records what an EndpointSlice informer delivers.
type sliceRecorder struct {
	mu      sync.Mutex
	events  []sliceEvent
	changed chan struct{} // closed and replaced on every event
}

func (r *sliceRecorder) record(kind string, obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, sliceEvent{kind: kind, addrs: sliceAddrs(es)})
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitFor waits until some recorded event matches.
func (r *sliceRecorder) waitFor(t *testing.T, what string, match func(sliceEvent) bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		found := slices.ContainsFunc(r.events, match)
		changed, events := r.changed, fmt.Sprint(r.events)
		r.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %v; informer events: %s", what, waitTimeout, events)
		}
	}
}

// startSliceInformer runs an EndpointSlice informer on namespace ns until
// the test ends.
func startSliceInformer(t *testing.T, cs kubernetes.Interface, ns string) *sliceRecorder {
	t.Helper()
	rec := &sliceRecorder{changed: make(chan struct{})}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := factory.Discovery().V1().EndpointSlices().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { rec.record("add", obj) },
		UpdateFunc: func(_, obj any) { rec.record("update", obj) },
		DeleteFunc: func(obj any) { rec.record("delete", obj) },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	factory.Start(stop)
	t.Cleanup(func() {
		close(stop)
		factory.Shutdown() // waits for the informer goroutines
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatalf("EndpointSlice informer did not sync within %v", waitTimeout)
	}
	return rec
}
