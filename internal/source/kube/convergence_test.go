package kube

import (
	"cmp"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/torii-dev/torii/internal/store"
)

// convergenceBound is the only assertion TestConvergence1k makes about
// speed: generous, since the figures it logs are what matter, and CI runs
// it under -race on two shared cores.
const convergenceBound = 10 * time.Second

// TestConvergence1k measures, against the real API server with 1000
// Ingresses, Services and EndpointSlices in the watched namespace, how long
// a change takes to reach the handler: an Ingress created (the 1000th) or
// updated to its Rebuild, and an EndpointSlice updated to its Endpoints
// call. It logs the figures and asserts only a generous upper bound. The
// handler here only records, so the figures are the source's share of
// convergence (watch delivery, debounce, view); translation and the data
// plane come on top.
func TestConvergence1k(t *testing.T) {
	c := sharedCluster(t)
	cs := c.Client()
	ctx := t.Context()
	const n = 1000
	ns := createNamespace(t, cs, "conv1k")

	svcName := func(i int) string { return fmt.Sprintf("svc-%04d", i) }
	ingName := func(i int) string { return fmt.Sprintf("ing-%04d", i) }
	// The API refuses only loopback endpoint addresses; these need no
	// etcd detour, and nothing connects to them.
	sliceFor := func(i, gen int) *discoveryv1.EndpointSlice {
		return endpointSlice(ns, svcName(i), fmt.Sprintf("10.%d.%d.%d", 1+gen, i/256, i%256))
	}
	t0 := time.Now()
	parallel(t, n, func(i int) error {
		if _, err := cs.CoreV1().Services(ns).Create(ctx, service(ns, svcName(i)), metav1.CreateOptions{}); err != nil {
			return err
		}
		if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, sliceFor(i, 0), metav1.CreateOptions{}); err != nil {
			return err
		}
		if i == n-1 {
			return nil // the 1000th Ingress is the measured one
		}
		_, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, ingress(ns, ingName(i), ingName(i)+".example", svcName(i)), metav1.CreateOptions{})
		return err
	})
	t.Logf("setup: %d Services, %d EndpointSlices, %d Ingresses created in %v", n, n, n-1, time.Since(t0).Round(time.Millisecond))

	heapBefore := heapInUse()
	t0 = time.Now()
	s, rec := apiSource(t, c, Config{Namespaces: []string{ns}, Logger: infoLogger(t)}, nil)
	first := waitNext(t, rec, 0, "the initial Rebuild", func(c call) bool { return c.rebuild && len(c.view.Ingresses) == n-1 })
	t.Logf("convergence: initial sync of %d objects: %v", len(first.view.Ingresses)+len(first.view.Services)+len(first.view.EndpointSlices),
		first.at.Sub(t0).Round(time.Millisecond))
	t.Logf("memory: heap in use grew by about %.1f MiB with the source's caches (%d Ingresses, Services, EndpointSlices; rough: whole-process figure)",
		float64(heapInUse()-heapBefore)/(1<<20), n)
	logStripSavings(t, cs, ns, ingName(0), first.view)

	var viewTimes []time.Duration
	for range 20 {
		t0 := time.Now()
		s.View()
		viewTimes = append(viewTimes, time.Since(t0))
	}
	t.Logf("convergence: building a view of %d objects: %s", 3*n-1+len(first.view.IngressClasses), summary(viewTimes))

	next := 1
	measure := func(what string, change func(), match func(call) bool) time.Duration {
		t.Helper()
		t0 := time.Now()
		change()
		c := waitNext(t, rec, next, what, match)
		next++
		d := c.at.Sub(t0)
		if d > convergenceBound {
			t.Errorf("%s took %v, bound %v", what, d, convergenceBound)
		}
		return d
	}

	// Ingress lane: the 1000th Ingress created, then four updates.
	var ingTimes []time.Duration
	ingTimes = append(ingTimes, measure("Rebuild with the 1000th Ingress", func() {
		must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Create(ctx, ingress(ns, ingName(n-1), ingName(n-1)+".example", svcName(n-1)), metav1.CreateOptions{}))
	}, isRebuildWith(ns, ingName(n-1))))
	t.Logf("convergence: Ingress created (1000th) -> Rebuild: %v", ingTimes[0].Round(time.Millisecond))
	for k := range 4 {
		i := 100 * (k + 1)
		host := fmt.Sprintf("changed-%d.example", k)
		ingTimes = append(ingTimes, measure("Rebuild with an updated Ingress", func() {
			ing := must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Get(ctx, ingName(i), metav1.GetOptions{}))
			ing.Spec.Rules[0].Host = host
			must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Update(ctx, ing, metav1.UpdateOptions{}))
		}, func(c call) bool {
			j, ok := slices.BinarySearchFunc(c.view.Ingresses, ingName(i), func(ing *networkingv1.Ingress, name string) int {
				return strings.Compare(ing.Name, name)
			})
			return c.rebuild && ok && c.view.Ingresses[j].Spec.Rules[0].Host == host
		}))
	}
	t.Logf("convergence: Ingress create/update -> Rebuild at 1k: %s", summary(ingTimes))

	// Endpoint lane: five slice updates, each must come as Endpoints for
	// its Service alone.
	var epTimes []time.Duration
	for k := range 5 {
		i := 150 * (k + 1)
		want := []types.NamespacedName{{Namespace: ns, Name: svcName(i)}}
		epTimes = append(epTimes, measure("Endpoints for "+svcName(i), func() {
			es := must[*discoveryv1.EndpointSlice](t)(cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, svcName(i)+"-1", metav1.GetOptions{}))
			es.Endpoints = sliceFor(i, k+1).Endpoints
			must[*discoveryv1.EndpointSlice](t)(cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, es, metav1.UpdateOptions{}))
		}, func(c call) bool { return !c.rebuild && slices.Equal(c.services, want) }))
	}
	t.Logf("convergence: EndpointSlice update -> Endpoints at 1k: %s", summary(epTimes))
	t.Logf("stats: %+v", s.Stats())
}

// parallel runs fn(0..n-1) on a few workers, as a controller applying many
// objects would, and fails the test on the first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var (
		wg     sync.WaitGroup
		next   atomic.Int64
		mu     sync.Mutex
		errOne error
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					errOne = cmp.Or(errOne, fmt.Errorf("object %d: %w", i, err))
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if errOne != nil {
		t.Fatal(errOne)
	}
}

// summary renders durations as min/median/max.
func summary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration {
		if d < time.Millisecond {
			return d.Round(time.Microsecond)
		}
		return d.Round(time.Millisecond)
	}
	return fmt.Sprintf("min %v, median %v, max %v (%d samples)", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]), len(s))
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// logStripSavings logs how much smaller the transform makes one Ingress:
// its JSON as the API serves it against the cached object's.
func logStripSavings(t *testing.T, cs kubernetes.Interface, ns, name string, v *store.Objects) {
	t.Helper()
	served := must[*networkingv1.Ingress](t)(cs.NetworkingV1().Ingresses(ns).Get(t.Context(), name, metav1.GetOptions{}))
	j, ok := slices.BinarySearchFunc(v.Ingresses, name, func(ing *networkingv1.Ingress, name string) int {
		return strings.Compare(ing.Name, name)
	})
	if !ok {
		t.Fatalf("Ingress %s/%s not in the view", ns, name)
	}
	a := must[[]byte](t)(json.Marshal(served))
	b := must[[]byte](t)(json.Marshal(v.Ingresses[j]))
	t.Logf("memory: one Ingress is %d bytes of JSON as served, %d cached without managedFields (%.0f%% less; an object applied with kubectl also loses its last-applied copy)",
		len(a), len(b), 100*(1-float64(len(b))/float64(len(a))))
}
