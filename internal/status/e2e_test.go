package status

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/torii-dev/torii/test/e2e/harness"
)

// The e2e tests share one kube-apiserver and etcd, started by the first
// test that needs them (unit-only runs start nothing) and stopped by
// TestMain. Each test works in a namespace of its own.
var shared harness.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e harness:", err)
	}
	os.Exit(code) // after Close: os.Exit skips deferred calls
}

func cluster(t *testing.T) *harness.Cluster {
	t.Helper()
	return shared.Get(t)
}

var nsSeq atomic.Int32

// namespace creates a fresh namespace, with the "default" ServiceAccount
// that pod admission requires and that no controller-manager creates here.
func namespace(t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("status-%d-%d", os.Getpid()%10000, nsSeq.Add(1))
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return name
}

func createIngress(t *testing.T, c kubernetes.Interface, ing *networkingv1.Ingress) *networkingv1.Ingress {
	t.Helper()
	ctx := context.Background()
	status := ing.Status
	out, err := c.NetworkingV1().Ingresses(ing.Namespace).Create(ctx, ing, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(status.LoadBalancer.Ingress) > 0 {
		// Create ignores status; set it as another writer would.
		out.Status = status
		if out, err = c.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, out, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func liveIngress(t *testing.T, c kubernetes.Interface, ns, name string) *networkingv1.Ingress {
	t.Helper()
	ing, err := c.NetworkingV1().Ingresses(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ing
}

func TestE2EPublishFixedAddresses(t *testing.T) {
	cs := cluster(t).Client()
	ns := namespace(t, cs)
	ing := createIngress(t, cs, ingress(ns, "web"))
	src, err := NewAddressSource(AddressConfig{PublishStatusAddress: []string{"192.0.2.10,lb.example.com", "2001:db8::10"}})
	if err != nil {
		t.Fatal(err)
	}
	addrs := runSource(t, src).next(t)
	// The API server accepts what is published: IPs as ip, a name as
	// hostname.
	w := NewWriter(WriterConfig{Client: cs})
	if err := w.Sync(context.Background(), []*networkingv1.Ingress{ing}, nil, addrs); err != nil {
		t.Fatal(err)
	}
	got := liveIngress(t, cs, ns, "web").Status.LoadBalancer.Ingress
	want := []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.10"), host("lb.example.com"), ip("2001:db8::10")}
	if !slices.EqualFunc(got, want, func(a, b networkingv1.IngressLoadBalancerIngress) bool { return entryKey(a) == entryKey(b) }) {
		t.Errorf("status %q, want %q", render(got), render(want))
	}
}

func TestE2EPublishService(t *testing.T) {
	ctx := context.Background()
	cs := cluster(t).Client()
	ns := namespace(t, cs)
	lbService := func(name string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: map[string]string{"app": "torii"},
				Ports:    []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443)}},
			},
		}
	}
	for _, name := range []string{"torii", "torii-other"} {
		if _, err := cs.CoreV1().Services(ns).Create(ctx, lbService(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	src, err := NewAddressSource(AddressConfig{Client: cs, PublishService: ns + "/torii"})
	if err != nil {
		t.Fatal(err)
	}
	r := runSource(t, src)
	r.expect(t) // the load balancer has no address yet

	setLB := func(name string, lb ...corev1.LoadBalancerIngress) {
		t.Helper()
		svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Status.LoadBalancer.Ingress = lb
		if _, err := cs.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Another Service's address is not ours (the informer sees only the
	// one Service); the next report is about torii's own.
	setLB("torii-other", corev1.LoadBalancerIngress{IP: "203.0.113.99"})
	ipMode := corev1.LoadBalancerIPModeVIP
	setLB("torii", corev1.LoadBalancerIngress{IP: "203.0.113.7", IPMode: &ipMode, Ports: []corev1.PortStatus{{Port: 443, Protocol: corev1.ProtocolTCP}}})
	addrs := r.next(t)
	if got := render(addrs); !slices.Equal(got, []string{"203.0.113.7:443/TCP"}) {
		t.Fatalf("addresses %q", got)
	}
	ing := createIngress(t, cs, ingress(ns, "web"))
	if err := NewWriter(WriterConfig{Client: cs}).Sync(ctx, []*networkingv1.Ingress{ing}, nil, addrs); err != nil {
		t.Fatal(err)
	}
	if got := render(liveIngress(t, cs, ns, "web").Status.LoadBalancer.Ingress); !slices.Equal(got, []string{"203.0.113.7:443/TCP"}) {
		t.Errorf("ingress status %q", got)
	}

	setLB("torii", corev1.LoadBalancerIngress{Hostname: "lb-123.elb.example.com"})
	r.expect(t, "lb-123.elb.example.com")
}

func TestE2EPublishNodeAddresses(t *testing.T) {
	ctx := context.Background()
	cs := cluster(t).Client()
	ns := namespace(t, cs)
	n1, n2, n3 := ns+"-n1", ns+"-n2", ns+"-n3"
	for _, n := range []*corev1.Node{
		node(n1, "InternalIP=10.0.0.1", "ExternalIP=198.51.100.1", "Hostname="+n1),
		node(n2, "InternalIP=10.0.0.2"),
		node(n3, "ExternalIP=198.51.100.3"),
	} {
		status := n.Status
		created, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status = status // create ignores status, as kubelet knows
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Pods bound to nodes directly (no scheduler, no kubelet); their
	// status set as a kubelet would.
	createPod := func(p *corev1.Pod) {
		t.Helper()
		status := p.Status
		created, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status = status
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	labels := map[string]string{"app": "torii", "pod-template-hash": "v1"}
	createPod(readyPod(ns, "torii-a", n1, labels))
	createPod(readyPod(ns, "torii-b", n2, map[string]string{"app": "torii", "pod-template-hash": "v2"}))
	createPod(readyPod(ns, "web", n3, map[string]string{"app": "web"}))

	src, err := NewAddressSource(AddressConfig{Client: cs, PodName: "torii-a", PodNamespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	r := runSource(t, src)
	r.expect(t, "10.0.0.2", "198.51.100.1")

	setReady := func(name string, ready corev1.ConditionStatus) {
		t.Helper()
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setReady("torii-b", corev1.ConditionFalse)
	r.expect(t, "198.51.100.1")

	// A third replica on n3 appears: a node not watched until now.
	createPod(readyPod(ns, "torii-c", n3, labels))
	r.expect(t, "198.51.100.1", "198.51.100.3")

	nd, err := cs.CoreV1().Nodes().Get(ctx, n1, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nd.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, nd, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "10.0.0.1", "198.51.100.3")
}

func TestE2EWriter(t *testing.T) {
	ctx := context.Background()
	cs := cluster(t).Client()
	ns := namespace(t, cs)
	addrs := []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1"), host("lb.example.com")}
	owned := createIngress(t, cs, ingress(ns, "owned"))
	left := createIngress(t, cs, ingress(ns, "left", host("lb.example.com"), ip("192.0.2.1")))
	foreign := createIngress(t, cs, ingress(ns, "foreign", ip("203.0.113.5")))
	w := NewWriter(WriterConfig{Client: cs})

	if err := w.Sync(ctx, []*networkingv1.Ingress{owned}, []*networkingv1.Ingress{left, foreign}, addrs); err != nil {
		t.Fatal(err)
	}
	if got := render(liveIngress(t, cs, ns, "owned").Status.LoadBalancer.Ingress); !slices.Equal(got, []string{"192.0.2.1", "lb.example.com"}) {
		t.Errorf("owned: %q", got)
	}
	if got := liveIngress(t, cs, ns, "left").Status.LoadBalancer.Ingress; len(got) != 0 {
		t.Errorf("left: %q, want cleared", render(got))
	}
	foreignLive := liveIngress(t, cs, ns, "foreign")
	if got := render(foreignLive.Status.LoadBalancer.Ingress); !slices.Equal(got, []string{"203.0.113.5"}) || foreignLive.ResourceVersion != foreign.ResourceVersion {
		t.Errorf("foreign: %q (rv %s→%s), want untouched", got, foreign.ResourceVersion, foreignLive.ResourceVersion)
	}

	// No-op: neither the current objects nor the stale cached ones (the
	// versions Torii's own writes replaced) cause a write.
	before := map[string]string{}
	var current []*networkingv1.Ingress
	for _, name := range []string{"owned", "left", "foreign"} {
		ing := liveIngress(t, cs, ns, name)
		before[name] = ing.ResourceVersion
		current = append(current, ing)
	}
	// The same addresses in another order are the same status.
	reordered := []networkingv1.IngressLoadBalancerIngress{addrs[1], addrs[0]}
	for _, objs := range [][]*networkingv1.Ingress{current, {owned, left, foreign}} {
		if err := w.Sync(ctx, objs[:1], objs[1:], reordered); err != nil {
			t.Fatal(err)
		}
	}
	for name, rv := range before {
		if got := liveIngress(t, cs, ns, name).ResourceVersion; got != rv {
			t.Errorf("%s: resourceVersion %s→%s, a write that changed nothing", name, rv, got)
		}
	}
	if s := w.Stats(); s.Writes != 2 || s.Conflicts != 0 {
		t.Errorf("stats %+v, want 2 writes, no conflicts", s)
	}
}

func TestE2EWriterConflicts(t *testing.T) {
	ctx := context.Background()
	cs := cluster(t).Client()
	ns := namespace(t, cs)
	ours := []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}
	cached := createIngress(t, cs, ingress(ns, "busy"))
	cachedLeft := createIngress(t, cs, ingress(ns, "taken", ours...))

	// Between Torii's read (its cache) and its write, someone else
	// updates each object: a label on one, another controller's status on
	// the other (which it now owns).
	live := liveIngress(t, cs, ns, "busy")
	live.Labels = map[string]string{"touched": "yes"}
	if _, err := cs.NetworkingV1().Ingresses(ns).Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	taken := liveIngress(t, cs, ns, "taken")
	taken.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{ip("203.0.113.5")}
	if _, err := cs.NetworkingV1().Ingresses(ns).UpdateStatus(ctx, taken, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	w := NewWriter(WriterConfig{Client: cs})
	if err := w.Sync(ctx, []*networkingv1.Ingress{cached}, []*networkingv1.Ingress{cachedLeft}, ours); err != nil {
		t.Fatal(err)
	}
	busy := liveIngress(t, cs, ns, "busy")
	if got := render(busy.Status.LoadBalancer.Ingress); !slices.Equal(got, []string{"192.0.2.1"}) || busy.Labels["touched"] != "yes" {
		t.Errorf("busy: status %q labels %v", got, busy.Labels)
	}
	if got := render(liveIngress(t, cs, ns, "taken").Status.LoadBalancer.Ingress); !slices.Equal(got, []string{"203.0.113.5"}) {
		t.Errorf("taken: %q, want the other controller's status kept", got)
	}
	if s := w.Stats(); s.Writes != 1 || s.Conflicts != 2 {
		t.Errorf("stats %+v, want 1 write after 2 conflicts", s)
	}

	// Deleted meanwhile: ignored.
	if err := cs.NetworkingV1().Ingresses(ns).Delete(ctx, "busy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(ctx, []*networkingv1.Ingress{cached}, nil, []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.2")}); err != nil {
		t.Errorf("Sync on a deleted Ingress: %v", err)
	}
}

func TestE2EWriterClear(t *testing.T) {
	ctx := context.Background()
	cs := cluster(t).Client()
	ns := namespace(t, cs)
	ing := createIngress(t, cs, ingress(ns, "web", ip("192.0.2.1"), host("other.example.com")))
	if err := NewWriter(WriterConfig{Client: cs}).Clear(ctx, []*networkingv1.Ingress{ing}, []networkingv1.IngressLoadBalancerIngress{ip("192.0.2.1")}); err != nil {
		t.Fatal(err)
	}
	if got := render(liveIngress(t, cs, ns, "web").Status.LoadBalancer.Ingress); !slices.Equal(got, []string{"other.example.com"}) {
		t.Errorf("status %q", got)
	}
}

// leaderLog records the leadership periods of several candidates, to check
// that they never overlap.
type leaderLog struct {
	mu      sync.Mutex
	active  int
	overlap bool
	started chan string
	ended   map[string]time.Time
}

func newLeaderLog() *leaderLog {
	return &leaderLog{started: make(chan string, 10), ended: map[string]time.Time{}}
}

func (l *leaderLog) onStart(id string) func(context.Context) {
	return func(ctx context.Context) {
		l.mu.Lock()
		l.active++
		l.overlap = l.overlap || l.active > 1
		l.mu.Unlock()
		l.started <- id
		<-ctx.Done()
		l.mu.Lock()
		l.active--
		l.ended[id] = time.Now()
		l.mu.Unlock()
	}
}

func (l *leaderLog) next(t *testing.T) (string, time.Time) {
	t.Helper()
	select {
	case id := <-l.started:
		return id, time.Now()
	case <-time.After(waitTimeout):
		t.Fatalf("no leader within %v", waitTimeout)
		return "", time.Time{}
	}
}

// partition is a transport switch: while down, the client's requests fail
// as if the network to the API server were cut.
type partition struct {
	rt   http.RoundTripper
	down *atomic.Bool
}

func (p partition) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.down.Load() {
		return nil, errors.New("test partition: API server unreachable")
	}
	return p.rt.RoundTrip(r)
}

func partitionedClient(t *testing.T, cfg *rest.Config, down *atomic.Bool) kubernetes.Interface {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return partition{rt: rt, down: down} }
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestE2EElectorFailover(t *testing.T) {
	// Longer than the unit tests' timings: against a real kube-apiserver on
	// a busy machine one renewal can take over a second, and a leader that
	// steps down for that fails the "exactly one leader" check.
	const e2eLease, e2eRenew = 4 * time.Second, 3 * time.Second
	c := cluster(t)
	ns := namespace(t, c.Client())
	downs := map[string]*atomic.Bool{"a": {}, "b": {}}
	log := newLeaderLog()
	electors := map[string]*Elector{}
	stops := map[string]func(){}
	for _, id := range []string{"a", "b"} {
		e, err := NewElector(ElectorConfig{
			Client: partitionedClient(t, c.RESTConfig(), downs[id]), Namespace: ns, ElectionID: "torii-leader", Identity: id,
			LeaseDuration: e2eLease, RenewDeadline: e2eRenew, RetryPeriod: testRetry,
		})
		if err != nil {
			t.Fatal(err)
		}
		electors[id] = e
		stops[id] = runElector(t, e, log.onStart(id), nil)
	}
	first, _ := log.next(t)
	other := map[string]string{"a": "b", "b": "a"}[first]
	// Exactly one leader, for several renewal periods.
	for range 20 {
		if !electors[first].IsLeader() || electors[other].IsLeader() {
			t.Fatalf("leaders: %s=%v %s=%v", first, electors[first].IsLeader(), other, electors[other].IsLeader())
		}
		time.Sleep(testRetry / 2)
	}

	// Shutdown: the leader releases the Lease; the other takes over after
	// about one RetryPeriod, not a LeaseDuration.
	cancelled := time.Now()
	stops[first]()
	second, at := log.next(t)
	if second != other {
		t.Fatalf("new leader %s, want %s", second, other)
	}
	failover := at.Sub(cancelled)
	t.Logf("failover after the leader's shutdown: %v (retry period %v, lease %v)", failover.Round(time.Millisecond), testRetry, e2eLease)
	if failover >= e2eLease {
		t.Errorf("failover took %v: the Lease was not released", failover)
	}

	// Partition: the leader cannot renew. It stops leading within the
	// renew deadline; the restarted first candidate takes over once the
	// Lease expires, never while the old leader still leads.
	stops[first] = runElector(t, electors[first], log.onStart(first), nil)
	time.Sleep(3 * testRetry) // let it observe the Lease, as a follower
	cut := time.Now()
	downs[second].Store(true)
	third, at := log.next(t)
	if third != first {
		t.Fatalf("new leader %s, want %s", third, first)
	}
	log.mu.Lock()
	stepped := log.ended[second]
	overlap := log.overlap
	log.mu.Unlock()
	t.Logf("partitioned leader stepped down after %v; successor led after %v (renew deadline %v, lease %v)",
		stepped.Sub(cut).Round(time.Millisecond), at.Sub(cut).Round(time.Millisecond), e2eRenew, e2eLease)
	if stepped.IsZero() || !stepped.Before(at) {
		t.Errorf("partitioned leader stopped at %v, successor started at %v: they overlapped", stepped, at)
	}
	if overlap {
		t.Error("two leaders at once")
	}
	downs[second].Store(false)
	stops[second]()
	stops[first]()
}

func TestE2EEventSink(t *testing.T) {
	ctx := context.Background()
	cs := cluster(t).Client()
	ns := namespace(t, cs)
	ing := createIngress(t, cs, ingress(ns, "shop"))
	ref := corev1.ObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "Ingress", Namespace: ns, Name: ing.Name, UID: ing.UID}
	s := NewEventSink(cs, "torii-a")
	defer s.Shutdown()
	bad := Problem{Object: ref, Reason: "BackendNotFound", Message: `service "shop" not found`}
	marker := func(i int) Problem {
		return Problem{Object: ref, Reason: "Marker", Message: fmt.Sprint(i)}
	}

	s.Emit([]Problem{bad})
	waitNotes(t, cs, ns, `BackendNotFound: service "shop" not found`)
	// Still present: nothing new. The marker is written after anything
	// queued before it, so once it is there a repeat would be too.
	s.Emit([]Problem{bad})
	s.Emit([]Problem{bad, marker(1)})
	waitNotes(t, cs, ns, `BackendNotFound: service "shop" not found`, "Marker: 1")
	// Gone and back: a new Event.
	s.Emit(nil)
	s.Emit([]Problem{bad})
	waitNotes(t, cs, ns, `BackendNotFound: service "shop" not found`, "Marker: 1", `BackendNotFound: service "shop" not found`)

	// The Event is attached to the object: kubectl describe finds it
	// through the core API by the involved object's UID.
	list, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(ing.UID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 3 {
		t.Fatalf("%d core events for the Ingress, want 3", len(list.Items))
	}
	e := list.Items[0]
	if e.Type != corev1.EventTypeWarning || e.ReportingController != ReportingController || e.ReportingInstance != "torii-a" {
		t.Errorf("event %+v", e)
	}
}

func TestE2ELastReplica(t *testing.T) {
	ctx := context.Background()
	cs := cluster(t).Client()
	ns := namespace(t, cs)
	n1 := ns + "-n1"
	if _, err := cs.CoreV1().Nodes().Create(ctx, node(n1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	create := func(name, hash string, ready bool) {
		t.Helper()
		p := readyPod(ns, name, n1, map[string]string{"app": "torii", "pod-template-hash": hash})
		if !ready {
			p.Status.Conditions[0].Status = corev1.ConditionFalse
		}
		status := p.Status
		created, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status = status
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(want bool) {
		t.Helper()
		last, err := LastReplica(ctx, cs, ns, "torii-a")
		if err != nil {
			t.Fatal(err)
		}
		if last != want {
			t.Errorf("LastReplica = %v, want %v", last, want)
		}
	}
	create("torii-a", "v1", true)
	check(true)
	create("torii-b", "v1", false)
	check(true)
	create("torii-c", "v2", true) // a ready replica of the next revision
	check(false)
	// Being deleted: a bound pod stays, terminating, until its kubelet
	// confirms (none here), so it is seen with a deletionTimestamp.
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "torii-c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := cs.CoreV1().Pods(ns).Get(ctx, "torii-c", metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && p.DeletionTimestamp == nil) {
		t.Fatalf("pod was not left terminating: %v", err)
	}
	check(true)
}
