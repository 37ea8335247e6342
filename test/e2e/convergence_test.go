package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/torii-dev/torii/internal/controller"
	"github.com/torii-dev/torii/internal/server"
	"github.com/torii-dev/torii/test/e2e/harness"
)

// The shape of TestConvergenceAt1kIngresses.
const (
	cfConvIngresses  = 1000
	cfConvNamespaces = 10
	cfConvServices   = 50 // cfConvServices/cfConvNamespaces per namespace
	cfConvBackends   = 4  // echo servers behind the 50 Services
	cfConvWorkers    = 8  // concurrent creates
	cfConvHostSample = 20 // hosts checked with real requests
	cfConvRepeats    = 5  // runs of each measurement
	cfConvStatusIP   = "203.0.113.21"
	// cfConvTimeout bounds each wait for convergence. It is a correctness
	// bound (did it converge at all), not a performance target: the
	// figures are logged, never asserted.
	cfConvTimeout = 60 * time.Second
)

// TestConvergenceAt1kIngresses measures Torii in Kubernetes mode with 1000
// Ingresses in 10 namespaces over 50 selector-less Services (loopback
// EndpointSlices to 4 echo backends). It asserts correctness only: every
// Ingress is routed to the right backend and carries Torii's status, new
// hosts and endpoint changes take effect, and a request loop sees no failed
// request while endpoints change. Timings are logged on lines starting with
// "convergence:":
//
//	(c) initial: 1000 Ingresses created → all routed, and → all with status;
//	(a) an Ingress created → its first successful request (5 runs);
//	(b) an EndpointSlice changed → traffic on the new endpoint (5 runs).
func TestConvergenceAt1kIngresses(t *testing.T) {
	tStart := time.Now()
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cs := c.Client()
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: "torii"},
			Spec:       networkingv1.IngressClassSpec{Controller: "torii.dev/ingress-controller"},
		}, metav1.CreateOptions{})
		return err
	})

	var backends []*cfBackend
	for i := range cfConvBackends {
		backends = append(backends, cfEcho(t, fmt.Sprintf("echo-%d", i)))
	}
	shiftA, shiftB := cfEcho(t, "shift-a"), cfEcho(t, "shift-b")

	// Namespaces, then Services each with a loopback slice to one backend.
	t0 := time.Now()
	if err := cfParallel(ctx, cfConvWorkers, cfConvNamespaces, func(i int) error {
		return cfCreateNamespace(ctx, cs, cfConvNamespace(i*cfConvServices/cfConvNamespaces))
	}); err != nil {
		t.Fatal(err)
	}
	if err := cfParallel(ctx, cfConvWorkers, cfConvServices, func(s int) error {
		ns, svc := cfConvNamespace(s), cfConvService(s)
		if err := cfCreateService(ctx, cs, ns, svc); err != nil {
			return err
		}
		return cfSetEndpoints(ctx, c, ns, svc, backends[s%cfConvBackends].port)
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("convergence: setup: %d namespaces, %d Services with loopback EndpointSlices in %v",
		cfConvNamespaces, cfConvServices, time.Since(t0).Round(time.Millisecond))

	srv := startTorii(t, c, server.KubeConfig{PublishStatusAddress: []string{cfConvStatusIP}})
	addr, admin := srv.HTTPAddr().String(), srv.AdminAddr().String()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Timeout: 5 * time.Second, Transport: tr}

	// (c) 1000 Ingresses, created by a small worker pool.
	created := time.Now()
	if err := cfParallel(ctx, cfConvWorkers, cfConvIngresses, func(i int) error {
		_, err := cs.NetworkingV1().Ingresses(cfConvNamespace(i)).Create(ctx, cfConvIngress(i), metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	createTook := time.Since(created)
	t.Logf("convergence: created %d Ingresses with %d workers in %v (%.0f/s)",
		cfConvIngresses, cfConvWorkers, createTook.Round(time.Millisecond), cfConvIngresses/createTook.Seconds())

	var sample []int
	for k := range cfConvHostSample {
		sample = append(sample, k*(cfConvIngresses-1)/(cfConvHostSample-1))
	}
	var lastRoutes string
	if !cfPoll(cfConvTimeout, 100*time.Millisecond, func() bool {
		tbl, err := cfRouteTable(admin)
		if err != nil {
			lastRoutes = err.Error()
			return false
		}
		if n := cfConvRoutedHosts(tbl); n != cfConvIngresses {
			lastRoutes = fmt.Sprintf("%d of %d hosts routed with endpoints (generation %d)", n, cfConvIngresses, tbl.Generation)
			return false
		}
		for _, i := range sample {
			if err := cfConvCheck(client, addr, i); err != nil {
				lastRoutes = "all hosts in the routing table, but " + err.Error()
				return false
			}
		}
		return true
	}) {
		t.Fatalf("not all %d Ingresses routed %v after they were created: %s", cfConvIngresses, cfConvTimeout, lastRoutes)
	}
	routedAt := time.Since(created)
	tbl, err := cfRouteTable(admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.Problems) != 0 {
		t.Errorf("%d problems reported for valid Ingresses, first: %+v", len(tbl.Problems), tbl.Problems[0])
	}
	t.Logf("convergence: (c) first create -> all %d routed (routing table + %d sampled hosts answering from the right backend): %v (%v after the last create; generation %d)",
		cfConvIngresses, len(sample), routedAt.Round(time.Millisecond), (routedAt - createTook).Round(time.Millisecond), tbl.Generation)

	var withStatus int
	var statusErr error
	if cfPoll(cfConvTimeout, 250*time.Millisecond, func() bool {
		withStatus, statusErr = cfConvCountStatus(ctx, c)
		return statusErr == nil && withStatus == cfConvIngresses
	}) {
		statusAt := time.Since(created)
		t.Logf("convergence: (c) first create -> status [%s] on all %d: %v (%v after the last create)",
			cfConvStatusIP, cfConvIngresses, statusAt.Round(time.Millisecond), (statusAt - createTook).Round(time.Millisecond))
	} else {
		// Not fatal: the routing measurements below do not depend on the
		// status and are worth having; the test fails all the same.
		after := time.Since(created)
		t.Errorf("only %d of %d Ingresses carry status [%s] %v after the first create (%.1f per second; last list error: %v; %s)",
			withStatus, cfConvIngresses, cfConvStatusIP, after.Round(time.Millisecond), float64(withStatus)/after.Seconds(), statusErr, cfConvLease(ctx, c))
		defer func() {
			n, err := cfConvCountStatus(ctx, c)
			t.Logf("convergence: (c) status on %d of %d Ingresses %v after the first create (list error %v; %s)",
				n, cfConvIngresses, time.Since(created).Round(time.Millisecond), err, cfConvLease(ctx, c))
		}()
	}

	t.Run("(a) Ingress created -> first successful request", func(t *testing.T) {
		var took []time.Duration
		for k := range cfConvRepeats {
			ns, svc := cfConvNamespace(0), cfConvService(0)
			host := fmt.Sprintf("new-%d.conv.example", k)
			ing := cfConvHostIngress(ns, fmt.Sprintf("new-%d", k), host, svc)
			want := backends[0].name
			start := time.Now()
			if _, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			var last string
			if !cfPoll(cfTimeout, 5*time.Millisecond, func() bool {
				r, err := cfConvGet(client, addr, host)
				last = fmt.Sprintf("%d from %q (%v)", r.status, r.echo.Backend, err)
				return err == nil && r.status == 200 && r.echo.Backend == want && r.echo.Host == host
			}) {
				t.Fatalf("run %d: %s not served by %s within %v; last: %s", k, host, want, cfTimeout, last)
			}
			took = append(took, time.Since(start))
		}
		lo, med, hi := cfStats(took)
		t.Logf("convergence: (a) Ingress created -> first successful request, %d runs at %d Ingresses: min %v median %v max %v (all %v)",
			len(took), cfConvIngresses, lo, med, hi, cfRound(took))
	})

	t.Run("(b) EndpointSlice change -> traffic shifted, no failed request", func(t *testing.T) {
		ns, host := cfConvNamespace(0), "shift.conv.example"
		if err := cfCreateService(ctx, cs, ns, "shift"); err != nil {
			t.Fatal(err)
		}
		if err := cfSetEndpoints(ctx, c, ns, "shift", shiftA.port); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, cfConvHostIngress(ns, "shift", host, "shift"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var last string
		if !cfPoll(cfTimeout, 10*time.Millisecond, func() bool {
			r, err := cfConvGet(client, addr, host)
			last = fmt.Sprintf("%d from %q (%v)", r.status, r.echo.Backend, err)
			return err == nil && r.status == 200 && r.echo.Backend == shiftA.name
		}) {
			t.Fatalf("%s not served by %s within %v; last: %s", host, shiftA.name, cfTimeout, last)
		}

		// The request loop: every answer must be a 200 from one of the
		// two shift backends, with the Host and path sent.
		loop := &cfRequestLoop{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		loopClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		defer loopClient.CloseIdleConnections()
		wg.Go(func() { loop.run(loopClient, addr, host, []string{shiftA.name, shiftB.name}, stop) })
		stopLoop := sync.OnceFunc(func() { close(stop); wg.Wait() })
		defer stopLoop() // also when a run below fails

		var took, putTook []time.Duration
		for k := range cfConvRepeats {
			to := []*cfBackend{shiftB, shiftA}[k%2]
			seen := make(chan time.Time, 1)
			pollDone := make(chan struct{})
			var pollLast string
			start := time.Now()
			go func() {
				defer close(pollDone)
				deadline := start.Add(cfTimeout)
				for time.Now().Before(deadline) {
					r, err := cfConvGet(client, addr, host)
					if err == nil && r.status == 200 && r.echo.Backend == to.name {
						seen <- time.Now()
						return
					}
					pollLast = fmt.Sprintf("%d from %q (%v)", r.status, r.echo.Backend, err)
					time.Sleep(2 * time.Millisecond)
				}
			}()
			err := cfSetEndpoints(ctx, c, ns, "shift", to.port)
			putTook = append(putTook, time.Since(start))
			<-pollDone
			if err != nil {
				t.Fatal(err)
			}
			select {
			case at := <-seen:
				took = append(took, at.Sub(start))
			default:
				t.Fatalf("run %d: traffic not on %s within %v; last: %s", k, to.name, cfTimeout, pollLast)
			}
			// The old endpoint is gone, not merely joined by the new one.
			for j := range 10 {
				r, err := cfConvGet(client, addr, host)
				if err != nil || r.status != 200 || r.echo.Backend != to.name {
					t.Fatalf("run %d: request %d after the shift got %d from %q (%v), want only %s", k, j, r.status, r.echo.Backend, err, to.name)
				}
			}
		}
		stopLoop()
		lo, med, hi := cfStats(took)
		t.Logf("convergence: (b) EndpointSlice change -> traffic on the new endpoint, %d runs at %d Ingresses: min %v median %v max %v (all %v; the etcd write with its dry-run validation and wait for the watch event took %v)",
			len(took), cfConvIngresses, lo, med, hi, cfRound(took), cfRound(putTook))
		ok, failed, examples := loop.result()
		t.Logf("convergence: (b) request loop during the endpoint changes: %d requests, %d failed", ok+failed, failed)
		if failed != 0 {
			t.Errorf("%d of %d requests failed while endpoints changed, e.g. %s", failed, ok+failed, strings.Join(examples, "; "))
		}
		if ok < 20 {
			t.Errorf("the request loop ran only %d requests", ok)
		}
	})

	t.Run("all Ingresses still routed", func(t *testing.T) {
		for _, i := range sample {
			if err := cfConvCheck(client, addr, i); err != nil {
				t.Error(err)
			}
		}
	})
	t.Logf("convergence: wall time %v", time.Since(tStart).Round(time.Millisecond))
}

// cfConvNamespace is the namespace of Ingress/Service index i.
func cfConvNamespace(i int) string {
	return fmt.Sprintf("conv-%02d", i%cfConvServices/(cfConvServices/cfConvNamespaces))
}

// cfConvService is the Service Ingress (or Service) index i routes to.
func cfConvService(i int) string {
	return fmt.Sprintf("svc-%d", i%cfConvServices%(cfConvServices/cfConvNamespaces))
}

// cfConvHost is the host of Ingress i.
func cfConvHost(i int) string { return fmt.Sprintf("h%04d.conv.example", i) }

// cfConvBackend is the name of the echo backend serving Ingress i.
func cfConvBackend(i int) string { return fmt.Sprintf("echo-%d", i%cfConvServices%cfConvBackends) }

func cfConvIngress(i int) *networkingv1.Ingress {
	return cfConvHostIngress(cfConvNamespace(i), fmt.Sprintf("ing-%04d", i), cfConvHost(i), cfConvService(i))
}

// cfConvHostIngress routes host / (Prefix) to port 8080 of Service svc.
func cfConvHostIngress(ns, name, host, svc string) *networkingv1.Ingress {
	ing := hostIngress(ns, name, "torii", host, svc)
	ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Port.Number = 8080
	return ing
}

// cfConvGet sends GET / with Host host through Torii.
func cfConvGet(c *http.Client, addr, host string) (cfReply, error) {
	req, err := http.NewRequest("GET", "http://"+addr+"/", nil)
	if err != nil {
		return cfReply{}, err
	}
	req.Host = host
	return cfSend(c, req)
}

// cfConvCheck checks that Ingress i's host is served by its backend.
func cfConvCheck(c *http.Client, addr string, i int) error {
	host, want := cfConvHost(i), cfConvBackend(i)
	r, err := cfConvGet(c, addr, host)
	if err != nil {
		return fmt.Errorf("%s: %v", host, err)
	}
	if r.status != 200 || r.echo.Backend != want || r.echo.Host != host || r.echo.Path != "/" || r.echo.Method != "GET" {
		return fmt.Errorf("%s: got %d from %q (backend saw %s %s Host %q), want 200 from %s", host, r.status, r.echo.Backend, r.echo.Method, r.echo.Path, r.echo.Host, want)
	}
	return nil
}

// cfConvRoutedHosts counts the hosts of the 1000 Ingresses that the table
// routes, each to exactly one endpoint.
func cfConvRoutedHosts(tbl controller.RouteTable) int {
	n := 0
	for _, h := range tbl.Hosts {
		if !strings.HasPrefix(h.Host, "h") || !strings.HasSuffix(h.Host, ".conv.example") {
			continue
		}
		if len(h.Routes) == 1 && len(h.Routes[0].Backend.Endpoints) == 1 {
			n++
		}
	}
	return n
}

// cfConvCountStatus counts the 1000 Ingresses carrying exactly Torii's
// status address, listing namespace by namespace.
func cfConvCountStatus(ctx context.Context, c *harness.Cluster) (int, error) {
	n := 0
	for s := 0; s < cfConvServices; s += cfConvServices / cfConvNamespaces {
		list, err := c.Client().NetworkingV1().Ingresses(cfConvNamespace(s)).List(ctx, metav1.ListOptions{})
		if err != nil {
			return n, err
		}
		for _, ing := range list.Items {
			if !strings.HasPrefix(ing.Name, "ing-") {
				continue
			}
			lb := ing.Status.LoadBalancer.Ingress
			if len(lb) == 1 && lb[0].IP == cfConvStatusIP && lb[0].Hostname == "" {
				n++
			}
		}
	}
	return n, nil
}

// cfConvLease describes startTorii's leader-election Lease.
func cfConvLease(ctx context.Context, c *harness.Cluster) string {
	l, err := c.Client().CoordinationV1().Leases("default").Get(ctx, "torii-leader", metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("Lease default/torii-leader: %v", err)
	}
	var holder string
	var transitions int32
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseTransitions != nil {
		transitions = *l.Spec.LeaseTransitions
	}
	return fmt.Sprintf("Lease default/torii-leader held by %q, %d transitions", holder, transitions)
}

// cfRequestLoop sends requests one after another until stopped (or for
// at most cfConvTimeout), counting answers not from the expected backends.
type cfRequestLoop struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	examples   []string
}

func (l *cfRequestLoop) run(c *http.Client, addr, host string, backends []string, stop <-chan struct{}) {
	deadline := time.Now().Add(cfConvTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-stop:
			return
		default:
		}
		r, err := cfConvGet(c, addr, host)
		if err == nil && r.status == 200 && slices.Contains(backends, r.echo.Backend) && r.echo.Host == host && r.echo.Path == "/" {
			l.ok.Add(1)
			continue
		}
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.examples) < 5 {
			l.examples = append(l.examples, fmt.Sprintf("%d from %q (%v)", r.status, r.echo.Backend, err))
		}
		l.mu.Unlock()
	}
}

func (l *cfRequestLoop) result() (ok, failed int64, examples []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed.Load(), slices.Clone(l.examples)
}

// cfParallel runs fn(0..n-1) on workers goroutines and returns the errors
// joined (at most 5 of them are kept); it stops early when ctx ends.
func cfParallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var errs []error
	var failed atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil || failed.Load() > 0 {
					return
				}
				if err := fn(i); err != nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, fmt.Errorf("item %d: %w", i, err))
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cfStats returns the minimum, median and maximum, rounded.
func cfStats(ds []time.Duration) (lo, med, hi time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return r(s[0]), r(s[len(s)/2]), r(s[len(s)-1])
}

// cfRound rounds every duration for logging.
func cfRound(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
