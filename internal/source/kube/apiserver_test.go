package kube

import (
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/test/e2e/harness"
)

// These tests run the source against a real kube-apiserver and etcd
// (test/e2e/harness). They never skip: without the binaries they fail with
// the command that builds them.

// apiWait bounds a wait for a call the source owes. The contract is about
// a second; the slack absorbs a loaded CI machine running -race.
const apiWait = 30 * time.Second

// shared is one cluster for every test that neither stops the API server
// nor needs a pristine cluster; each test works in namespaces of its own.
// It starts on first use, so the fake-clientset tests do not pay for it.
var shared harness.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e harness:", err)
	}
	os.Exit(code) // after Close: os.Exit skips deferred calls
}

func sharedCluster(t *testing.T) *harness.Cluster {
	t.Helper()
	return shared.Get(t)
}

// apiSource returns a running source on cluster c, through a clientset of
// its own (as Torii would have), and its recorder.
func apiSource(t *testing.T, c *harness.Cluster, cfg Config, reqs *requestLog) (*Source, *recorder) {
	t.Helper()
	rc := c.RESTConfig()
	rc.UserAgent = "torii-kube-source-test"
	if reqs != nil {
		rc.WrapTransport = reqs.wrap
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Client = client
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t)
	runSource(t, s, rec)
	return s, rec
}

// namespaceSeq makes namespace names unique within the test binary, so
// that -count=N runs can share a cluster: without a namespace controller a
// deleted namespace never goes away.
var namespaceSeq atomic.Int64

// createNamespace creates a namespace named base-<n> and returns its name.
func createNamespace(t *testing.T, cs kubernetes.Interface, base string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", base, namespaceSeq.Add(1))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

// must fails the test on err; it keeps object set-up to one line each.
func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func isRebuildWith(ns, name string) func(call) bool {
	return func(c call) bool { return c.rebuild && hasIngress(c.view, ns, name) }
}

// waitNext waits for the call at index i and checks it matches: the source
// made no other call in between.
func waitNext(t *testing.T, rec *recorder, i int, what string, match func(call) bool) call {
	t.Helper()
	_, c := rec.wait(t, i, apiWait, "call "+fmt.Sprint(i), func(call) bool { return true })
	if !match(c) {
		t.Fatalf("call %d is %v, want %s; calls: %v", i, c, what, rec.snapshot())
	}
	return c
}

// TestAPIServerInitialSync: objects created before Run arrive in exactly
// one Rebuild, stripped, with only TLS Secrets.
func TestAPIServerInitialSync(t *testing.T) {
	c := sharedCluster(t)
	cs := c.Client()
	ctx := t.Context()
	ns := createNamespace(t, cs, "initial")
	class := "torii-" + ns
	must[*networkingv1.IngressClass](t)(cs.NetworkingV1().IngressClasses().Create(ctx, ingressClass(class), metav1.CreateOptions{}))
	ing := ingress(ns, "web", "web.example", "web")
	ing.Annotations = map[string]string{
		corev1.LastAppliedConfigAnnotation:           `{"apiVersion":"networking.k8s.io/v1","kind":"Ingress"}`,
		"nginx.ingress.kubernetes.io/rewrite-target": "/",
	}
	created := must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}))
	if len(created.ManagedFields) == 0 {
		t.Fatal("the API server set no managedFields; the test would prove nothing")
	}
	must[*corev1.Service](t)(cs.CoreV1().Services(ns).Create(ctx, service(ns, "web"), metav1.CreateOptions{}))
	must[*corev1.Secret](t)(cs.CoreV1().Secrets(ns).Create(ctx, secret(ns, "tls", corev1.SecretTypeTLS), metav1.CreateOptions{}))
	must[*corev1.Secret](t)(cs.CoreV1().Secrets(ns).Create(ctx, secret(ns, "opaque", corev1.SecretTypeOpaque), metav1.CreateOptions{}))
	if err := c.PutEndpointSlice(ctx, endpointSlice(ns, "web", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	s, rec := apiSource(t, c, Config{Namespaces: []string{ns}}, nil)
	first := waitNext(t, rec, 0, "the initial Rebuild", func(c call) bool { return c.rebuild })
	t.Logf("timing: Run to initial Rebuild %v", first.at.Sub(t0).Round(time.Millisecond))
	if !s.HasSynced() {
		t.Error("HasSynced false after the initial Rebuild")
	}
	v := first.view
	if got := names(v.Ingresses); !slices.Equal(got, []string{ns + "/web"}) {
		t.Errorf("Ingresses %v", got)
	}
	if got := names(v.Services); !slices.Equal(got, []string{ns + "/web"}) {
		t.Errorf("Services %v", got)
	}
	if got := names(v.EndpointSlices); !slices.Equal(got, []string{ns + "/web-1"}) {
		t.Errorf("EndpointSlices %v", got)
	}
	if got := names(v.Secrets); !slices.Equal(got, []string{ns + "/tls"}) {
		t.Errorf("Secrets %v, want only the TLS one", got)
	}
	if !slices.Contains(names(v.IngressClasses), "/"+class) {
		t.Errorf("IngressClasses %v lack %s", names(v.IngressClasses), class)
	}
	checkStripped(t, v)
	if got := v.Ingresses[0].Annotations; len(got) != 1 || got["nginx.ingress.kubernetes.io/rewrite-target"] != "/" {
		t.Errorf("Ingress annotations %v, want only the nginx one", got)
	}
	if got := names(s.Ingresses()); !slices.Equal(got, []string{ns + "/web"}) {
		t.Errorf("Ingresses() = %v", got)
	}

	// Exactly one Rebuild for the initial objects: the next call is the
	// one for the next change.
	must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Create(ctx, ingress(ns, "next", "next.example", "web"), metav1.CreateOptions{}))
	waitNext(t, rec, 1, "a Rebuild with the next Ingress", isRebuildWith(ns, "next"))
}

// checkStripped checks that every object in v went through the transform.
func checkStripped(t *testing.T, v *store.Objects) {
	t.Helper()
	var all []metav1.Object
	for _, o := range v.IngressClasses {
		all = append(all, o)
	}
	for _, o := range v.Ingresses {
		all = append(all, o)
	}
	for _, o := range v.Services {
		all = append(all, o)
	}
	for _, o := range v.EndpointSlices {
		all = append(all, o)
	}
	for _, o := range v.Secrets {
		all = append(all, o)
		if len(o.Data) != 2 || o.Data[corev1.TLSCertKey] == nil || o.Data[corev1.TLSPrivateKeyKey] == nil {
			t.Errorf("Secret %s/%s data keys: want exactly tls.crt and tls.key, got %d keys", o.Namespace, o.Name, len(o.Data))
		}
	}
	for _, o := range all {
		if o.GetManagedFields() != nil {
			t.Errorf("%s/%s keeps managedFields", o.GetNamespace(), o.GetName())
		}
		if _, ok := o.GetAnnotations()[corev1.LastAppliedConfigAnnotation]; ok {
			t.Errorf("%s/%s keeps the last-applied annotation", o.GetNamespace(), o.GetName())
		}
	}
}

// TestAPIServerLanes: which change causes which call, and how fast.
func TestAPIServerLanes(t *testing.T) {
	c := sharedCluster(t)
	cs := c.Client()
	ctx := t.Context()
	ns := createNamespace(t, cs, "lanes")
	must[*corev1.Service](t)(cs.CoreV1().Services(ns).Create(ctx, service(ns, "web"), metav1.CreateOptions{}))

	s, rec := apiSource(t, c, Config{Namespaces: []string{ns}}, nil)
	waitNext(t, rec, 0, "the initial Rebuild", func(c call) bool { return c.rebuild })
	next := 1
	step := func(what string, change func(), match func(call) bool) (call, time.Duration) {
		t.Helper()
		t0 := time.Now()
		change()
		c := waitNext(t, rec, next, what, match)
		next++
		d := c.at.Sub(t0)
		t.Logf("timing: %s after %v", what, d.Round(time.Millisecond))
		return c, d
	}

	_, d := step("Rebuild with a new Ingress", func() {
		must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Create(ctx, ingress(ns, "web", "web.example", "web"), metav1.CreateOptions{}))
	}, isRebuildWith(ns, "web"))
	if d > 5*time.Second {
		t.Errorf("Ingress create took %v to reach a Rebuild; the contract is about a second", d)
	}

	web := []types.NamespacedName{{Namespace: ns, Name: "web"}}
	isEndpoints := func(addrs ...string) func(call) bool {
		return func(c call) bool {
			if c.rebuild || !slices.Equal(c.services, web) {
				return false
			}
			var got []string
			for _, es := range c.view.EndpointSlices {
				got = append(got, sliceAddrs(es)...)
			}
			return slices.Equal(got, addrs)
		}
	}
	step("Endpoints after an EndpointSlice put", func() {
		if err := c.PutEndpointSlice(ctx, endpointSlice(ns, "web", "127.0.0.1")); err != nil {
			t.Fatal(err)
		}
	}, isEndpoints("127.0.0.1"))
	step("Endpoints after an EndpointSlice update", func() {
		if err := c.PutEndpointSlice(ctx, endpointSlice(ns, "web", "127.0.0.1", "127.0.0.2")); err != nil {
			t.Fatal(err)
		}
	}, isEndpoints("127.0.0.1", "127.0.0.2"))
	step("Endpoints after an EndpointSlice delete", func() {
		if err := c.DeleteEndpointSlice(ctx, ns, "web-1"); err != nil {
			t.Fatal(err)
		}
	}, isEndpoints())

	step("Rebuild after a Service update", func() {
		svc := must[*corev1.Service](t)(cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{}))
		svc.Spec.Ports[0].TargetPort.IntVal = 9090
		must[*corev1.Service](t)(cs.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}))
	}, func(c call) bool { return c.rebuild && c.view.Services[0].Spec.Ports[0].TargetPort.IntVal == 9090 })

	// The Opaque Secret is created first: had the source seen it, it would
	// have caused this call or an earlier one.
	c2, _ := step("Rebuild with a new TLS Secret", func() {
		must[*corev1.Secret](t)(cs.CoreV1().Secrets(ns).Create(ctx, secret(ns, "opaque", corev1.SecretTypeOpaque), metav1.CreateOptions{}))
		must[*corev1.Secret](t)(cs.CoreV1().Secrets(ns).Create(ctx, secret(ns, "tls", corev1.SecretTypeTLS), metav1.CreateOptions{}))
	}, func(c call) bool { return c.rebuild && slices.Equal(names(c.view.Secrets), []string{ns + "/tls"}) })
	checkStripped(t, c2.view)

	step("Rebuild after an Ingress delete", func() {
		if err := cs.NetworkingV1().Ingresses(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}, func(c call) bool { return c.rebuild && len(c.view.Ingresses) == 0 })

	st := s.Stats()
	t.Logf("stats: %+v", st)
	if st.Events["Secret"] != 1 {
		t.Errorf("Secret events = %d, want 1: the Opaque Secret must never reach the source", st.Events["Secret"])
	}
	if st.Events["EndpointSlice"] != 3 || st.Rebuilds != 5 || st.EndpointsCalls != 3 {
		t.Errorf("stats %+v, want 3 EndpointSlice events, 5 Rebuilds, 3 Endpoints calls", st)
	}
}

// TestAPIServerNamespaces: objects outside the watched namespaces never
// reach the source.
func TestAPIServerNamespaces(t *testing.T) {
	c := sharedCluster(t)
	cs := c.Client()
	ctx := t.Context()
	a, b, other := createNamespace(t, cs, "ns-a"), createNamespace(t, cs, "ns-b"), createNamespace(t, cs, "ns-c")
	for _, ns := range []string{a, b, other} {
		must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Create(ctx, ingress(ns, "web", "web."+ns+".example", "web"), metav1.CreateOptions{}))
		must[*corev1.Service](t)(cs.CoreV1().Services(ns).Create(ctx, service(ns, "web"), metav1.CreateOptions{}))
	}

	s, rec := apiSource(t, c, Config{Namespaces: []string{b, a}}, nil)
	first := waitNext(t, rec, 0, "the initial Rebuild", func(c call) bool { return c.rebuild })
	want := []string{a + "/web", b + "/web"}
	if got := names(first.view.Ingresses); !slices.Equal(got, want) {
		t.Errorf("initial Ingresses %v, want %v", got, want)
	}
	if got := names(first.view.Services); !slices.Equal(got, want) {
		t.Errorf("initial Services %v, want %v", got, want)
	}
	if got := names(s.Ingresses()); !slices.Equal(got, want) {
		t.Errorf("Ingresses() = %v, want %v", got, want)
	}

	// Changes in the unwatched namespace first, then in a watched one:
	// the next calls are for the watched ones only.
	must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(other).Create(ctx, ingress(other, "late", "late.other.example", "web"), metav1.CreateOptions{}))
	must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(a).Create(ctx, ingress(a, "late", "late.a.example", "web"), metav1.CreateOptions{}))
	v := waitNext(t, rec, 1, "a Rebuild with the new Ingress", isRebuildWith(a, "late")).view
	if got := names(v.Ingresses); !slices.Equal(got, []string{a + "/late", a + "/web", b + "/web"}) {
		t.Errorf("Ingresses %v", got)
	}
	if err := c.PutEndpointSlice(ctx, endpointSlice(other, "web", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.PutEndpointSlice(ctx, endpointSlice(b, "web", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	e := waitNext(t, rec, 2, "Endpoints for the watched Service", func(c call) bool { return !c.rebuild })
	if want := []types.NamespacedName{{Namespace: b, Name: "web"}}; !slices.Equal(e.services, want) {
		t.Errorf("Endpoints for %v, want %v", e.services, want)
	}
	if got := names(e.view.EndpointSlices); !slices.Equal(got, []string{b + "/web-1"}) {
		t.Errorf("EndpointSlices %v", got)
	}
	if st := s.Stats(); st.Events["Ingress"] != 3 || st.Events["Service"] != 2 || st.Events["EndpointSlice"] != 1 {
		t.Errorf("events %v: something from the unwatched namespace reached the source", st.Events)
	}
}

// TestAPIServerBurst: a burst of 50 changes costs a few Rebuilds, and the
// last one holds all of them.
func TestAPIServerBurst(t *testing.T) {
	c := sharedCluster(t)
	cs := c.Client()
	ctx := t.Context()
	const n = 50
	ns := createNamespace(t, cs, "burst")
	s, rec := apiSource(t, c, Config{Namespaces: []string{ns}}, nil)
	// Other tests' IngressClasses count too: the class informer is
	// cluster-wide.
	seq0 := waitNext(t, rec, 0, "the initial Rebuild", func(c call) bool { return c.rebuild }).seq

	t0 := time.Now()
	for i := range n {
		name := fmt.Sprintf("ing-%02d", i)
		must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Create(ctx, ingress(ns, name, name+".example", "web"), metav1.CreateOptions{}))
	}
	created := time.Since(t0)
	i, last := rec.wait(t, 1, apiWait, "a Rebuild with all 50 Ingresses", func(c call) bool { return c.rebuild && len(c.view.Ingresses) == n })
	t.Logf("timing: %d Ingress creates over %v; %d Rebuilds; the last %v after the last create",
		n, created.Round(time.Millisecond), i, last.at.Sub(t0.Add(created)).Round(time.Millisecond))
	if st := s.Stats(); st.Seq != seq0+n || last.seq != seq0+n {
		t.Errorf("seq: stats %d, last Rebuild %d; want %d", st.Seq, last.seq, seq0+n)
	}
	// Under a 100ms debounce and a 1s cap, 50 back-to-back creates give one
	// or two Rebuilds plus one per second they take; 10 leaves room for a
	// slow machine while still catching a Rebuild per change.
	if max := 10 + int(created/time.Second); i > max {
		t.Errorf("%d Rebuilds for %d changes over %v, want at most %d", i, n, created, max)
	}
}

// TestAPIServerRestart: while the API server is down the source keeps its
// view and calls nothing; after it is back, changes arrive again, and the
// relists cause no call of their own.
func TestAPIServerRestart(t *testing.T) {
	c := harness.Start(t) // its own: this test stops the API server
	cs := c.Client()
	ctx := t.Context()
	ns := createNamespace(t, cs, "restart")
	must[*corev1.Service](t)(cs.CoreV1().Services(ns).Create(ctx, service(ns, "web"), metav1.CreateOptions{}))
	must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Create(ctx, ingress(ns, "before", "before.example", "web"), metav1.CreateOptions{}))
	if err := c.PutEndpointSlice(ctx, endpointSlice(ns, "web", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}

	// Limited to the test's namespace (IngressClasses are still watched
	// cluster-wide): cluster-wide, the API server's own bootstrap objects,
	// such as the default/kubernetes Service, may appear at any moment of a
	// fresh cluster and cause calls of their own.
	reqs := newRequestLog()
	s, rec := apiSource(t, c, Config{Namespaces: []string{ns}}, reqs)
	waitNext(t, rec, 0, "the initial Rebuild", isRebuildWith(ns, "before"))
	before := s.Stats()

	reqs.reset()
	t0 := time.Now()
	if err := c.StopAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	// Every informer has tried to reconnect and failed.
	reqs.waitFailed(t, apiWait, allResources...)
	t.Logf("timing: every informer failed to reach the API server within %v of the stop", time.Since(t0).Round(time.Millisecond))
	if !s.HasSynced() {
		t.Error("HasSynced false while the API server is down")
	}
	if v := s.View(); !hasIngress(v, ns, "before") || len(v.EndpointSlices) == 0 {
		t.Errorf("view during the outage lost objects: %v, %v", names(v.Ingresses), names(v.EndpointSlices))
	}
	if n := rec.count(); n != 1 {
		t.Fatalf("calls during the outage: %v", rec.snapshot()[1:])
	}

	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	if !s.HasSynced() {
		t.Error("HasSynced false after the restart")
	}

	// One change per kind, each awaited in turn: a kind's change arrives
	// through its new watch, so after it that kind's relist is complete.
	// The informers back off while the API server is down (up to 30s).
	const reconnectWait = 90 * time.Second
	next := 1
	expect := func(what string, change func(), match func(call) bool) {
		t.Helper()
		t0 := time.Now()
		change()
		_, got := rec.wait(t, next, reconnectWait, what, func(call) bool { return true })
		if !match(got) {
			t.Fatalf("call %d is %v, want %s; calls: %v", next, got, what, rec.snapshot())
		}
		if !hasIngress(got.view, ns, "before") {
			t.Errorf("%v lacks the Ingress from before: a view emptied by the outage", got)
		}
		t.Logf("timing: %s %v after the change, %v after the API server was ready", what,
			got.at.Sub(t0).Round(time.Millisecond), got.at.Sub(up).Round(time.Millisecond))
		next++
	}
	expect("Rebuild with an Ingress created after the restart", func() {
		must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Create(ctx, ingress(ns, "after", "after.example", "web"), metav1.CreateOptions{}))
	}, isRebuildWith(ns, "after"))
	expect("Rebuild with a new IngressClass", func() {
		must[*networkingv1.IngressClass](t)(cs.NetworkingV1().IngressClasses().Create(ctx, ingressClass("torii-after"), metav1.CreateOptions{}))
	}, func(c call) bool { return c.rebuild && slices.Contains(names(c.view.IngressClasses), "/torii-after") })
	expect("Rebuild with a new Service", func() {
		must[*corev1.Service](t)(cs.CoreV1().Services(ns).Create(ctx, service(ns, "after"), metav1.CreateOptions{}))
	}, func(c call) bool { return c.rebuild && slices.Contains(names(c.view.Services), ns+"/after") })
	expect("Rebuild with a new TLS Secret", func() {
		must[*corev1.Secret](t)(cs.CoreV1().Secrets(ns).Create(ctx, secret(ns, "after", corev1.SecretTypeTLS), metav1.CreateOptions{}))
	}, func(c call) bool { return c.rebuild && slices.Contains(names(c.view.Secrets), ns+"/after") })
	expect("Endpoints after an EndpointSlice put", func() {
		if err := c.PutEndpointSlice(ctx, endpointSlice(ns, "web", "127.0.0.2")); err != nil {
			t.Fatal(err)
		}
	}, func(c call) bool {
		return !c.rebuild && slices.Equal(c.services, []types.NamespacedName{{Namespace: ns, Name: "web"}})
	})

	// Exactly the five changes above, nothing from the relists.
	after := s.Stats()
	t.Logf("stats before the stop %+v, after the restart %+v", before, after)
	for k, n := range after.Events {
		if want := before.Events[k] + 1; n != want {
			t.Errorf("%s events: %d before the stop, %d after, want one more (the change made)", k, before.Events[k], n)
		}
	}
}

func sliceAddrs(es *discoveryv1.EndpointSlice) []string {
	var out []string
	for _, ep := range es.Endpoints {
		out = append(out, ep.Addresses...)
	}
	return out
}
