package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/torii-dev/torii/internal/store"
)

// call is one Handler call as a test saw it.
type call struct {
	rebuild  bool
	view     *store.Objects
	services []types.NamespacedName // Endpoints only
	seq      uint64
	at       time.Time
}

func (c call) String() string {
	if c.rebuild {
		return fmt.Sprintf("Rebuild(seq %d, %d ingresses)", c.seq, len(c.view.Ingresses))
	}
	return fmt.Sprintf("Endpoints(seq %d, %v)", c.seq, c.services)
}

// recorder is a Handler that records its calls and checks the contract
// that calls are never concurrent and seq never goes backwards.
type recorder struct {
	t      testing.TB
	inCall atomic.Bool

	mu      sync.Mutex
	calls   []call
	changed chan struct{} // closed and replaced on every call
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, changed: make(chan struct{})}
}

func (r *recorder) Rebuild(view *store.Objects, seq uint64) {
	r.record(call{rebuild: true, view: view, seq: seq, at: time.Now()})
}

func (r *recorder) Endpoints(view *store.Objects, services []types.NamespacedName, seq uint64) {
	r.record(call{view: view, services: services, seq: seq, at: time.Now()})
}

func (r *recorder) record(c call) {
	if !r.inCall.CompareAndSwap(false, true) {
		r.t.Errorf("concurrent Handler calls")
	}
	defer r.inCall.Store(false)
	if c.view == nil {
		r.t.Errorf("%v with a nil view", c)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.calls); n > 0 && c.seq < r.calls[n-1].seq {
		r.t.Errorf("seq went backwards: %v after %v", c, r.calls[n-1])
	}
	r.calls = append(r.calls, c)
	close(r.changed)
	r.changed = make(chan struct{})
}

// snapshot returns the calls so far.
func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// count returns how many calls were made so far.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

// wait returns the index and value of the first call at or after index
// from that satisfies match, failing the test after timeout.
func (r *recorder) wait(t testing.TB, from int, timeout time.Duration, what string, match func(call) bool) (int, call) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for i := from; i < len(r.calls); i++ {
			if match(r.calls[i]) {
				c := r.calls[i]
				r.mu.Unlock()
				return i, c
			}
		}
		changed, calls := r.changed, r.calls
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no %s within %v; calls: %v", what, timeout, calls)
		}
	}
}

// runSource runs src with h until the test ends and fails the test if Run
// returns an error or does not return after cancellation.
func runSource(t testing.TB, src *Source, h Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return within 30s of cancellation")
		}
	})
}

// testLogger sends the source's log, debug messages included, to the test
// log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// infoLogger is testLogger without the debug messages, for tests whose
// own log lines are the point.
func infoLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Object constructors shared by the fake-clientset and API server tests.

func ingressClass(name string) *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       networkingv1.IngressClassSpec{Controller: "torii.dev/ingress-controller"},
	}
}

func ingress(ns, name, host, service string) *networkingv1.Ingress {
	class := "torii"
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: service, Port: networkingv1.ServiceBackendPort{Name: "http"},
						}},
					}},
				}},
			}},
		},
	}
}

// service is a selector-less Service: its EndpointSlices come from the test.
func service(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080),
		}}},
	}
}

// endpointSlice is slice <service>-1 of service with one ready endpoint
// per address on port 8080.
func endpointSlice(ns, service string, addrs ...string) *discoveryv1.EndpointSlice {
	name, port, ready := "http", int32(8080), true
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      service + "-1",
			Labels:    map[string]string{discoveryv1.LabelServiceName: service},
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

// secret returns a Secret of type typ. The data need not be a valid
// certificate: the source never parses it.
func secret(ns, name string, typ corev1.SecretType) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Type:       typ,
		Data: map[string][]byte{
			corev1.TLSCertKey:       []byte("cert"),
			corev1.TLSPrivateKeyKey: []byte("key"),
			"ca.crt":                []byte("ca"),
		},
	}
}

// names returns "namespace/name" of each object.
func names[T metav1.Object](objs []T) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.GetNamespace()+"/"+o.GetName())
	}
	return out
}

func hasIngress(v *store.Objects, ns, name string) bool {
	return slices.ContainsFunc(v.Ingresses, func(i *networkingv1.Ingress) bool { return i.Namespace == ns && i.Name == name })
}

// allResources are the API resources the source lists and watches.
var allResources = []string{"ingressclasses", "ingresses", "services", "endpointslices", "secrets"}

// requestLog wraps a client's transport and records, per API resource, the
// requests that failed to reach the API server. Tests use it to know that
// every informer has noticed an unreachable API server: client-go retries
// such failures internally in watch-list mode, without telling anyone.
type requestLog struct {
	mu      sync.Mutex
	failed  map[string]int // resource -> failed requests since the last reset
	changed chan struct{}  // closed and replaced on every failure
}

func newRequestLog() *requestLog {
	return &requestLog{failed: make(map[string]int), changed: make(chan struct{})}
}

// wrap is a rest.Config WrapTransport.
func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			l.mu.Lock()
			l.failed[path.Base(req.URL.Path)]++
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
		return resp, err
	})
}

// reset forgets the failures recorded so far.
func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.failed)
}

// waitFailed waits until a request for each of resources has failed since
// the last reset.
func (l *requestLog) waitFailed(t testing.TB, timeout time.Duration, resources ...string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		var missing []string
		for _, r := range resources {
			if l.failed[r] == 0 {
				missing = append(missing, r)
			}
		}
		changed := l.changed
		l.mu.Unlock()
		if len(missing) == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no failed request for %v within %v", missing, timeout)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
