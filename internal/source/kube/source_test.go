package kube

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/torii-dev/torii/internal/store"
)

// fakeWait bounds waits on the fake clientset, which delivers in
// microseconds; the slack is for a loaded machine under -race.
const fakeWait = 10 * time.Second

func TestNewValidatesConfig(t *testing.T) {
	client := fake.NewClientset()
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"no client", Config{}, "no client"},
		{"empty namespace", Config{Client: client, Namespaces: []string{"a", ""}}, "empty namespace"},
		{"invalid namespace", Config{Client: client, Namespaces: []string{"Not_A_Name"}}, `invalid namespace name "Not_A_Name"`},
		{"negative debounce", Config{Client: client, Debounce: -time.Second}, "negative"},
		{"max delay below debounce", Config{Client: client, Debounce: time.Second, MaxDelay: time.Millisecond}, "shorter than the debounce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("New: got %v, want an error containing %q", err, tc.err)
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		s, err := New(Config{Client: client})
		if err != nil {
			t.Fatal(err)
		}
		if s.debounce != defaultDebounce || s.maxDelay != defaultMaxDelay || s.log == nil {
			t.Errorf("debounce %v, max delay %v, logger %v", s.debounce, s.maxDelay, s.log)
		}
		// Cluster-wide: one factory, one scope, five informers.
		if len(s.factories) != 1 || len(s.scopes) != 1 || s.scopes[0].namespace != "" || len(s.syncs) != 5 {
			t.Errorf("cluster-wide: %d factories, %d scopes, %d informers", len(s.factories), len(s.scopes), len(s.syncs))
		}
		// A long debounce raises the default cap with it.
		s, err = New(Config{Client: client, Debounce: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if s.maxDelay != 3*time.Second {
			t.Errorf("max delay with a 3s debounce = %v", s.maxDelay)
		}
	})

	t.Run("namespaces", func(t *testing.T) {
		s, err := New(Config{Client: client, Namespaces: []string{"b", "a", "b"}})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.namespaces, []string{"a", "b"}) {
			t.Errorf("namespaces = %v", s.namespaces)
		}
		// A cluster-wide factory for IngressClasses plus one per namespace.
		if len(s.factories) != 3 || len(s.scopes) != 2 || s.scopes[0].namespace != "a" || len(s.syncs) != 1+2*4 {
			t.Errorf("%d factories, %d scopes, %d informers", len(s.factories), len(s.scopes), len(s.syncs))
		}
	})
}

func TestStrip(t *testing.T) {
	meta := metav1.ObjectMeta{
		Namespace: "ns", Name: "x",
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
		Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation:           `{"huge":"manifest"}`,
			"nginx.ingress.kubernetes.io/rewrite-target": "/",
		},
	}
	ing := &networkingv1.Ingress{ObjectMeta: *meta.DeepCopy()}
	sec := secret("ns", "tls", corev1.SecretTypeTLS)
	sec.ObjectMeta = *meta.DeepCopy()
	sec.StringData = map[string]string{"x": "y"}

	for _, obj := range []runtime.Object{ing, sec} {
		for range 2 { // idempotent
			out, err := strip(obj)
			if err != nil || out != obj {
				t.Fatalf("strip(%T) = %v, %v; want the same object, in place", obj, out, err)
			}
		}
	}
	for _, m := range []metav1.Object{ing, sec} {
		if m.GetManagedFields() != nil {
			t.Errorf("%T keeps managedFields", m)
		}
		want := map[string]string{"nginx.ingress.kubernetes.io/rewrite-target": "/"}
		if !maps.Equal(m.GetAnnotations(), want) {
			t.Errorf("%T annotations = %v, want %v", m, m.GetAnnotations(), want)
		}
	}
	if got := slices.Sorted(maps.Keys(sec.Data)); !slices.Equal(got, []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey}) {
		t.Errorf("Secret data keys = %v", got)
	}
	if sec.StringData != nil {
		t.Errorf("Secret keeps stringData")
	}

	// Objects without annotations, and anything without metadata, pass.
	plain := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s"}}
	if out, err := strip(plain); err != nil || out != plain || plain.Annotations != nil {
		t.Errorf("strip(plain Service) = %v, %v", out, err)
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/x", Obj: ing}
	if out, err := strip(tomb); err != nil || out != any(tomb) {
		t.Errorf("strip(tombstone) = %v, %v", out, err)
	}
}

func TestPendingDue(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const debounce, maxDelay = 100 * time.Millisecond, time.Second
	for _, tc := range []struct {
		name        string
		first, last time.Duration // after t0
		want        time.Duration
	}{
		{"single change waits for the debounce", 0, 0, debounce},
		{"a later change restarts the debounce", 0, 300 * time.Millisecond, 400 * time.Millisecond},
		{"a steady stream is capped", 0, 950 * time.Millisecond, maxDelay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pending{rebuild: true, first: t0.Add(tc.first), last: t0.Add(tc.last)}
			if got := p.due(debounce, maxDelay).Sub(t0); got != tc.want {
				t.Errorf("due = t0+%v, want t0+%v", got, tc.want)
			}
		})
	}
}

// TestObserve checks which informer events count and what they mark
// pending, without running informers.
func TestObserve(t *testing.T) {
	s, err := New(Config{Client: fake.NewClientset()})
	if err != nil {
		t.Fatal(err)
	}
	withRV := func(obj metav1.Object, rv string) metav1.Object { obj.SetResourceVersion(rv); return obj }
	take := func() pending {
		s.mu.Lock()
		defer s.mu.Unlock()
		p := s.pend
		s.pend = pending{}
		return p
	}
	svcs := func(p pending) []types.NamespacedName {
		return slices.SortedFunc(maps.Keys(p.services), func(a, b types.NamespacedName) int {
			return strings.Compare(a.String(), b.String())
		})
	}

	// A resync or relist replays the same resourceVersion: nothing.
	s.observe(kindIngress, withRV(ingress("a", "x", "h", "s"), "5"), withRV(ingress("a", "x", "h", "s"), "5"))
	if p := take(); p.any() || s.Stats().Unchanged != 1 || s.Stats().Seq != 0 {
		t.Errorf("same resourceVersion: pending %+v, stats %+v", p, s.Stats())
	}
	// A new resourceVersion with a new spec is a change.
	s.observe(kindIngress, withRV(ingress("a", "x", "h", "s"), "5"), withRV(ingress("a", "x", "h", "s2"), "6"))
	if p := take(); !p.rebuild || len(p.services) != 0 || p.first.IsZero() || s.Stats().Seq != 1 {
		t.Errorf("new resourceVersion: pending %+v, seq %d", p, s.Stats().Seq)
	}

	// A status-only update (usually the echo of Torii's own write) starts
	// no rebuild; it only tells the status writer. An annotation change
	// in the same update is a change: annotations carry routing config.
	statusCalls := 0
	s.onStatus = func() { statusCalls++ }
	withStatus := func(ing *networkingv1.Ingress, rv, ip string) *networkingv1.Ingress {
		ing.ResourceVersion = rv
		ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: ip}}
		ing.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "torii", Subresource: "status"}}
		return ing
	}
	s.observe(kindIngress, withRV(ingress("a", "x", "h", "s2"), "6"), withStatus(ingress("a", "x", "h", "s2"), "7", "192.0.2.1"))
	if p := take(); p.any() || statusCalls != 1 || s.Stats().Unchanged != 2 || s.Stats().Seq != 1 {
		t.Errorf("status-only update: pending %+v, status calls %d, stats %+v", p, statusCalls, s.Stats())
	}
	annotated := withStatus(ingress("a", "x", "h", "s2"), "8", "192.0.2.1")
	annotated.Annotations = map[string]string{"nginx.ingress.kubernetes.io/rewrite-target": "/"}
	s.observe(kindIngress, withStatus(ingress("a", "x", "h", "s2"), "7", "192.0.2.1"), annotated)
	if p := take(); !p.rebuild || statusCalls != 1 {
		t.Errorf("annotation change with status: pending %+v, status calls %d", p, statusCalls)
	}
	specChanged := withStatus(ingress("a", "x", "other-host", "s"), "9", "192.0.2.1")
	s.observe(kindIngress, annotated, specChanged)
	if p := take(); !p.rebuild || statusCalls != 1 {
		t.Errorf("spec change: pending %+v, status calls %d", p, statusCalls)
	}

	// Secrets other than TLS never count (for clients that ignore the
	// field selector).
	s.observe(kindSecret, nil, secret("a", "opaque", corev1.SecretTypeOpaque))
	if p := take(); p.any() || s.Stats().Events["Secret"] != 0 {
		t.Errorf("Opaque Secret: pending %+v, stats %+v", p, s.Stats())
	}
	s.observe(kindSecret, cache.DeletedFinalStateUnknown{Key: "a/tls", Obj: secret("a", "tls", corev1.SecretTypeTLS)}, nil)
	if p := take(); !p.rebuild || s.Stats().Events["Secret"] != 1 {
		t.Errorf("TLS Secret tombstone: pending %+v, stats %+v", p, s.Stats())
	}

	// EndpointSlices mark their Services, both of them when the label
	// moves; an unlabelled slice counts but marks nothing.
	old := endpointSlice("a", "web", "10.0.0.1")
	moved := endpointSlice("a", "api", "10.0.0.1")
	moved.Name = old.Name
	s.observe(kindEndpointSlice, withRV(old, "7"), withRV(moved, "8"))
	s.observe(kindEndpointSlice, nil, endpointSlice("b", "web", "10.0.0.2"))
	p := take()
	want := []types.NamespacedName{{Namespace: "a", Name: "api"}, {Namespace: "a", Name: "web"}, {Namespace: "b", Name: "web"}}
	if p.rebuild || !slices.Equal(svcs(p), want) {
		t.Errorf("slices: pending rebuild %v services %v, want services %v", p.rebuild, svcs(p), want)
	}
	orphan := endpointSlice("a", "web", "10.0.0.3")
	delete(orphan.Labels, discoveryv1.LabelServiceName)
	seq := s.Stats().Seq
	s.observe(kindEndpointSlice, nil, orphan)
	if p := take(); p.any() || s.Stats().Seq != seq+1 {
		t.Errorf("unlabelled slice: pending %+v, seq %d (was %d)", p, s.Stats().Seq, seq)
	}
}

// TestLoop drives the delivery loop with synthetic events in a synctest
// bubble, where time is virtual: the debounce and cap are checked exactly,
// with no real waiting.
func TestLoop(t *testing.T) {
	const debounce, maxDelay = 100 * time.Millisecond, time.Second
	// start returns a source whose loop runs (without informers: views are
	// empty) until the bubble ends.
	start := func(t *testing.T) (*Source, *recorder) {
		s, err := New(Config{Client: fake.NewClientset(), Debounce: debounce, MaxDelay: maxDelay, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.loop(ctx, rec) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("loop: %v", err)
			}
		})
		return s, rec
	}
	ing := func(i int) *networkingv1.Ingress { return ingress("a", fmt.Sprint("x", i), "h", "s") }

	t.Run("burst coalesces into one Rebuild after the debounce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, rec := start(t)
			t0 := time.Now()
			for i := range 50 {
				s.observe(kindIngress, nil, ing(i))
				time.Sleep(10 * time.Millisecond) // virtual time
			}
			lastAt := time.Now().Add(-10 * time.Millisecond)
			time.Sleep(time.Second)
			synctest.Wait()
			calls := rec.snapshot()
			if len(calls) != 1 || !calls[0].rebuild || calls[0].seq != 50 {
				t.Fatalf("calls = %v, want one Rebuild with seq 50", calls)
			}
			if got := calls[0].at.Sub(lastAt); got != debounce {
				t.Errorf("Rebuild came %v after the last change, want %v", got, debounce)
			}
			t.Logf("50 changes over %v: 1 Rebuild", lastAt.Sub(t0))
		})
	})

	t.Run("steady stream is delivered at least every MaxDelay", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, rec := start(t)
			// One change every 30ms for 5.1s: never quiet for a debounce.
			// (30ms, not a divisor of MaxDelay, so that no change happens
			// at the very instant of a delivery.)
			const interval, n = 30 * time.Millisecond, 170
			t0 := time.Now()
			for i := range n {
				s.observe(kindIngress, nil, ing(i))
				time.Sleep(interval)
			}
			end := time.Now()
			synctest.Wait()
			var during []call
			for _, c := range rec.snapshot() {
				if c.at.Before(end) {
					during = append(during, c)
				}
			}
			if len(during) < 4 {
				t.Fatalf("%d calls during a %v stream, want at least 4: %v", len(during), end.Sub(t0), during)
			}
			// Each call comes exactly MaxDelay after the first change it
			// covers: the first change after the previous call.
			first := t0
			for i, c := range during {
				if got := c.at.Sub(first); got != maxDelay {
					t.Errorf("call %d came %v after the first change it covers, want %v", i, got, maxDelay)
				}
				next := t0.Add(c.at.Sub(t0).Truncate(interval) + interval)
				first = next
			}
		})
	})

	t.Run("EndpointSlice changes give Endpoints with the touched Services", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, rec := start(t)
			s.observe(kindEndpointSlice, nil, endpointSlice("b", "web", "10.0.0.1"))
			s.observe(kindEndpointSlice, nil, endpointSlice("a", "web", "10.0.0.1"))
			s.observe(kindEndpointSlice, endpointSlice("a", "web", "10.0.0.1"), nil)
			time.Sleep(time.Second)
			synctest.Wait()
			calls := rec.snapshot()
			want := []types.NamespacedName{{Namespace: "a", Name: "web"}, {Namespace: "b", Name: "web"}}
			if len(calls) != 1 || calls[0].rebuild || !slices.Equal(calls[0].services, want) || calls[0].seq != 3 {
				t.Fatalf("calls = %v, want Endpoints(seq 3, %v)", calls, want)
			}
		})
	})

	t.Run("a pending Rebuild absorbs pending Endpoints", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, rec := start(t)
			s.observe(kindEndpointSlice, nil, endpointSlice("a", "web", "10.0.0.1"))
			s.observe(kindService, nil, service("a", "web"))
			s.observe(kindEndpointSlice, nil, endpointSlice("a", "api", "10.0.0.1"))
			time.Sleep(time.Second)
			synctest.Wait()
			if calls := rec.snapshot(); len(calls) != 1 || !calls[0].rebuild || calls[0].seq != 3 {
				t.Fatalf("calls = %v, want one Rebuild with seq 3", calls)
			}
			if st := s.Stats(); st.Superseded != 1 || st.Rebuilds != 1 || st.EndpointsCalls != 0 {
				t.Errorf("stats = %+v", st)
			}
			// Afterwards the lanes are independent again.
			s.observe(kindEndpointSlice, nil, endpointSlice("a", "web", "10.0.0.2"))
			time.Sleep(time.Second)
			synctest.Wait()
			if calls := rec.snapshot(); len(calls) != 2 || calls[1].rebuild || calls[1].seq != 4 {
				t.Fatalf("calls = %v, want a second call Endpoints(seq 4)", calls)
			}
		})
	})

	t.Run("changes during a slow handler are delivered after it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s, err := New(Config{Client: fake.NewClientset(), Debounce: debounce, MaxDelay: maxDelay})
			if err != nil {
				t.Fatal(err)
			}
			slow := &slowHandler{recorder: newRecorder(t), delay: 2 * time.Second}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go s.loop(ctx, slow)
			s.observe(kindIngress, nil, ing(0))
			time.Sleep(debounce + time.Millisecond) // first Rebuild starts, takes 2s
			s.observe(kindIngress, nil, ing(1))
			s.observe(kindEndpointSlice, nil, endpointSlice("a", "web"))
			time.Sleep(5 * time.Second)
			synctest.Wait()
			calls := slow.snapshot()
			if len(calls) != 2 || !calls[1].rebuild || calls[1].seq != 3 {
				t.Fatalf("calls = %v, want a second Rebuild with seq 3", calls)
			}
			// Both changes were older than MaxDelay when the first call
			// returned: delivered right away.
			if got := calls[1].at.Sub(calls[0].at); got != 2*time.Second {
				t.Errorf("second Rebuild %v after the first, want 2s (right after the slow call)", got)
			}
		})
	})
}

// slowHandler is a recorder whose calls take delay.
type slowHandler struct {
	*recorder
	delay time.Duration
}

func (h *slowHandler) Rebuild(view *store.Objects, seq uint64) {
	h.recorder.Rebuild(view, seq)
	time.Sleep(h.delay)
}

// TestFakeClientset runs the whole source against client-go's fake
// clientset: initial view, both lanes, namespace restriction, accessors.
func TestFakeClientset(t *testing.T) {
	tlsSecret := secret("a", "tls", corev1.SecretTypeTLS)
	tlsSecret.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "test"}}
	client := fake.NewClientset(
		ingressClass("torii"),
		ingress("a", "web", "web.example", "web"),
		ingress("a", "api", "api.example", "api"),
		ingress("c", "other", "other.example", "other"), // not watched
		service("a", "web"),
		tlsSecret,
		secret("a", "opaque", corev1.SecretTypeOpaque),
	)
	s, err := New(Config{Client: client, Namespaces: []string{"a", "b"}, Debounce: 10 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if s.HasSynced() {
		t.Fatal("HasSynced before Run")
	}
	rec := newRecorder(t)
	runSource(t, s, rec)
	ctx := t.Context()

	_, first := rec.wait(t, 0, fakeWait, "initial Rebuild", func(call) bool { return true })
	if !first.rebuild {
		t.Fatalf("first call %v, want Rebuild", first)
	}
	if !s.HasSynced() {
		t.Error("HasSynced false after the initial Rebuild")
	}
	v := first.view
	if got, want := names(v.Ingresses), []string{"a/api", "a/web"}; !slices.Equal(got, want) {
		t.Errorf("initial Ingresses %v, want %v (sorted, namespace c left out)", got, want)
	}
	if got, want := names(v.IngressClasses), []string{"/torii"}; !slices.Equal(got, want) {
		t.Errorf("IngressClasses %v, want %v", got, want)
	}
	if got, want := names(v.Secrets), []string{"a/tls"}; !slices.Equal(got, want) {
		t.Errorf("Secrets %v, want %v (TLS only)", got, want)
	}
	if len(v.Secrets) == 1 && (v.Secrets[0].ManagedFields != nil || len(v.Secrets[0].Data) != 2) {
		t.Errorf("cached Secret not stripped: managedFields %v, data keys %v", v.Secrets[0].ManagedFields, slices.Collect(maps.Keys(v.Secrets[0].Data)))
	}
	if got := names(s.Ingresses()); !slices.Equal(got, []string{"a/api", "a/web"}) {
		t.Errorf("Ingresses() = %v", got)
	}

	// An Ingress in a watched namespace: Rebuild. One in an unwatched
	// namespace: nothing (it is created first, so it would show by then).
	if _, err := client.NetworkingV1().Ingresses("c").Create(ctx, ingress("c", "late", "x", "x"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.NetworkingV1().Ingresses("b").Create(ctx, ingress("b", "new", "new.example", "web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	i, c := rec.wait(t, 1, fakeWait, "Rebuild with b/new", func(c call) bool { return c.rebuild && hasIngress(c.view, "b", "new") })
	if hasIngress(c.view, "c", "late") {
		t.Error("an Ingress of an unwatched namespace is in the view")
	}

	// An EndpointSlice: Endpoints naming its Service, no Rebuild.
	if _, err := client.DiscoveryV1().EndpointSlices("a").Create(ctx, endpointSlice("a", "web", "10.0.0.1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, c = rec.wait(t, i+1, fakeWait, "Endpoints for a/web", func(c call) bool { return !c.rebuild })
	if want := []types.NamespacedName{{Namespace: "a", Name: "web"}}; !slices.Equal(c.services, want) || len(c.view.EndpointSlices) != 1 {
		t.Errorf("got %v with %d slices, want Endpoints for %v with the slice", c, len(c.view.EndpointSlices), want)
	}
	if n := rec.count(); n != i+2 {
		t.Errorf("calls = %v, want exactly one more after the Rebuild", rec.snapshot())
	}

	// An Opaque Secret never appears; its creation causes no call.
	if _, err := client.CoreV1().Secrets("a").Create(ctx, secret("a", "opaque2", corev1.SecretTypeOpaque), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services("a").Create(ctx, service("a", "marker"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, c = rec.wait(t, i+2, fakeWait, "Rebuild with Service a/marker", func(c call) bool {
		return c.rebuild && slices.Contains(names(c.view.Services), "a/marker")
	})
	if got := names(c.view.Secrets); !slices.Equal(got, []string{"a/tls"}) {
		t.Errorf("Secrets %v, want only a/tls", got)
	}
	if st := s.Stats(); st.Events["Secret"] != 1 {
		t.Errorf("Secret events = %d, want 1 (the initial TLS Secret)", st.Events["Secret"])
	}
}

// TestRunWaitsForSync points the source at an API server that is not
// there: Run must deliver nothing, report not synced, and return when its
// context ends.
func TestRunWaitsForSync(t *testing.T) {
	reqs := newRequestLog()
	// Port 1 on loopback refuses connections at once.
	cfg := &rest.Config{Host: "https://127.0.0.1:1", WrapTransport: reqs.wrap}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Client: client, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, rec) }()

	// Every informer has tried and failed to reach the API server.
	reqs.waitFailed(t, fakeWait, allResources...)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancellation", err)
		}
	case <-time.After(fakeWait):
		t.Fatal("Run did not return after cancellation")
	}
	if n := rec.count(); n != 0 || s.HasSynced() {
		t.Errorf("unsynced source made %d calls, HasSynced %v", n, s.HasSynced())
	}
	if err := s.Run(t.Context(), rec); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("second Run = %v, want an error", err)
	}
	if err := (&Source{}).Run(t.Context(), nil); err == nil {
		t.Error("Run with a nil Handler succeeded")
	}
}
