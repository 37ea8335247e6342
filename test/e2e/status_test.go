package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/torii-dev/torii/internal/server"
	"github.com/torii-dev/torii/internal/status"
	"github.com/torii-dev/torii/test/e2e/harness"
)

// stHold is how long a "nothing happens" assertion watches for something
// to happen. Torii's status loop reacts within milliseconds, so a wrong
// write would show well within it.
const stHold = 1500 * time.Millisecond

// TestPublishServiceStatus runs Torii with --publish-service: the Ingress
// status is a copy of the publish Service's load-balancer status (ports
// included; the Service's ipMode has no Ingress counterpart), nothing is
// written before the Service exists or while it has no address, and a
// Service that disappears leaves the last status in place.
func TestPublishServiceStatus(t *testing.T) {
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := c.Client()
	stCreateIngressClass(t, ctx, cs)
	createNamespaceAndService(t, ctx, c, "app", "web", echoBackend(t, "web"))
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses("app").Create(ctx, hostIngress("app", "web", "torii", "web.example", "web"), metav1.CreateOptions{})
		return err
	})

	// Torii starts before the publish Service exists.
	srv := startTorii(t, c, server.KubeConfig{PublishService: "torii-system/torii"})
	addr, admin := srv.HTTPAddr().String(), srv.AdminAddr().String()
	eventually(t, "Torii serving the Ingress and leading", func() bool {
		code, body := get(addr, "web.example", "/")
		return code == 200 && body == "web" && stMetricOr(admin, "torii_leader", -1) == 1
	})
	rv := stIngressRV(t, ctx, cs, "app", "web")
	stNoChange(t, ctx, cs, "app", "web", rv, stHold, "while the publish Service does not exist")

	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "torii-system"}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Services("torii-system").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "torii"},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: map[string]string{"app.kubernetes.io/name": "torii"},
				Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
					{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP},
				},
			},
		}, metav1.CreateOptions{})
		return err
	})
	stNoChange(t, ctx, cs, "app", "web", rv, stHold, "while the publish Service has no load-balancer address")
	if n := stMetric(t, admin, "torii_status_updates_total"); n != 0 {
		t.Fatalf("torii_status_updates_total = %v before the Service had an address, want 0", n)
	}

	vip, proxy := corev1.LoadBalancerIPModeVIP, corev1.LoadBalancerIPModeProxy
	portErr := "PortUnreachable"
	steps := []struct {
		name string
		lb   []corev1.LoadBalancerIngress
		want []string // stEntry of each expected Ingress status entry
	}{
		{
			name: "one IP",
			lb:   []corev1.LoadBalancerIngress{{IP: "198.51.100.10", IPMode: &vip}},
			want: []string{"198.51.100.10"},
		},
		{
			name: "a hostname instead",
			lb:   []corev1.LoadBalancerIngress{{Hostname: "lb.example.net"}},
			want: []string{"lb.example.net"},
		},
		{
			name: "two entries with ports",
			lb: []corev1.LoadBalancerIngress{
				{IP: "198.51.100.10", IPMode: &proxy, Ports: []corev1.PortStatus{
					{Port: 80, Protocol: corev1.ProtocolTCP},
					{Port: 443, Protocol: corev1.ProtocolTCP, Error: &portErr},
				}},
				{Hostname: "lb.example.net"},
			},
			want: []string{"198.51.100.10[80/TCP 443/TCP:PortUnreachable]", "lb.example.net"},
		},
	}
	for _, step := range steps {
		stSetServiceLB(t, ctx, cs, "torii-system", "torii", step.lb...)
		took := stWaitStatus(t, ctx, cs, "app", "web", step.want)
		t.Logf("timing: Service status (%s) -> Ingress status: %v", step.name, took.Round(time.Millisecond))
	}
	stWaitMetric(t, admin, "torii_status_updates_total", fmt.Sprintf("= %d after %d address changes", len(steps), len(steps)),
		func(n float64) bool { return n == float64(len(steps)) })

	// Reordering the Service's entries says nothing new: no write.
	rv = stIngressRV(t, ctx, cs, "app", "web")
	reordered := slices.Clone(steps[2].lb)
	slices.Reverse(reordered)
	stSetServiceLB(t, ctx, cs, "torii-system", "torii", reordered...)
	stNoChange(t, ctx, cs, "app", "web", rv, stHold, "after the Service's entries were only reordered")

	// A deleted publish Service is more often a redeploy than an address
	// change: the last status stays (see status.AddressSource.Run).
	if err := cs.CoreV1().Services("torii-system").Delete(ctx, "torii", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	stNoChange(t, ctx, cs, "app", "web", rv, stHold, "after the publish Service was deleted")
	if got := stStatus(t, ctx, cs, "app", "web"); !slices.Equal(got, steps[2].want) {
		t.Fatalf("status after the Service was deleted = %q, want it kept as %q", got, steps[2].want)
	}
}

// TestNodeAddressStatus runs Torii with neither publish flag, as a pod: the
// status lists the nodes running Torii replicas, which are its own pod
// (ready or not) and the Running, Ready, not terminating pods carrying its
// labels less the per-revision ones; each node contributes its
// ExternalIPs, else its InternalIPs; the list is sorted and unique.
func TestNodeAddressStatus(t *testing.T) {
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := c.Client()
	const ns = "torii-system"
	stCreateIngressClass(t, ctx, cs)
	createNamespaceAndService(t, ctx, c, "app", "web", echoBackend(t, "web"))
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		// Pod admission needs the namespace's default ServiceAccount,
		// which no controller-manager creates here.
		_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		return err
	})

	stCreateNode(t, ctx, cs, "node-1", "InternalIP=10.0.0.1", "ExternalIP=192.0.2.1", "Hostname=node-1")
	stCreateNode(t, ctx, cs, "node-2", "InternalIP=10.0.0.2")
	stCreateNode(t, ctx, cs, "node-3", "InternalIP=10.0.0.3", "ExternalIP=192.0.2.3", "ExternalIP=2001:db8::3")
	stCreateNode(t, ctx, cs, "node-4", "ExternalIP=192.0.2.4")

	// torii-a is this Torii (POD_NAME); it never becomes Ready here, and
	// counts anyway. torii-b is a replica of another revision, torii-c a
	// replica that is not Ready yet, other a Ready pod of something else.
	toriiLabels := func(rev string) map[string]string {
		return map[string]string{"app.kubernetes.io/name": "torii", "pod-template-hash": rev}
	}
	stCreatePod(t, ctx, cs, ns, "torii-a", "node-1", toriiLabels("aaaa"), false)
	stCreatePod(t, ctx, cs, ns, "torii-b", "node-2", toriiLabels("bbbb"), true)
	stCreatePod(t, ctx, cs, ns, "torii-c", "node-3", toriiLabels("aaaa"), false)
	stCreatePod(t, ctx, cs, ns, "other", "node-4", map[string]string{"app.kubernetes.io/name": "other"}, true)

	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses("app").Create(ctx, hostIngress("app", "web", "torii", "web.example", "web"), metav1.CreateOptions{})
		return err
	})
	history := stWatchStatus(t, ctx, cs, "app", "web")

	srv := startTorii(t, c, server.KubeConfig{PodName: "torii-a", PodNamespace: ns})
	want := []string{"10.0.0.2", "192.0.2.1"}
	took := stWaitStatus(t, ctx, cs, "app", "web", want)
	t.Logf("timing: Torii start -> node addresses in the Ingress status: %v", took.Round(time.Millisecond))
	if code, body := get(srv.HTTPAddr().String(), "web.example", "/"); code != 200 || body != "web" {
		t.Fatalf("GET web.example through Torii = %d %q", code, body)
	}
	// Start-up publishes the complete set at once, never a partial one
	// while some node is not known yet.
	if got := history.wait(t, 1); !slices.Equal(got[0], want) {
		t.Fatalf("first status written = %q, want %q (statuses seen: %q)", got[0], want, got)
	}

	steps := []struct {
		name   string
		change func()
		want   []string
	}{
		{
			name:   "node-2 gains an ExternalIP, which wins over its InternalIP",
			change: func() { stSetNodeAddresses(t, ctx, cs, "node-2", "InternalIP=10.0.0.2", "ExternalIP=192.0.2.2") },
			want:   []string{"192.0.2.1", "192.0.2.2"},
		},
		{
			name:   "node-1's ExternalIP changes",
			change: func() { stSetNodeAddresses(t, ctx, cs, "node-1", "InternalIP=10.0.0.1", "ExternalIP=192.0.2.11") },
			// Sorted as strings, as status.sortAddresses does.
			want: []string{"192.0.2.11", "192.0.2.2"},
		},
		{
			name:   "torii-c becomes Ready: both of node-3's ExternalIPs join",
			change: func() { stSetPodReady(t, ctx, cs, ns, "torii-c", true) },
			want:   []string{"192.0.2.11", "192.0.2.2", "192.0.2.3", "2001:db8::3"},
		},
		{
			name: "torii-b is terminating",
			change: func() {
				// No kubelet confirms the deletion: the pod stays, with a
				// deletionTimestamp, which is what Torii must act on.
				if err := cs.CoreV1().Pods(ns).Delete(ctx, "torii-b", metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"192.0.2.11", "192.0.2.3", "2001:db8::3"},
		},
		{
			name:   "torii-c is no longer Ready",
			change: func() { stSetPodReady(t, ctx, cs, ns, "torii-c", false) },
			want:   []string{"192.0.2.11"},
		},
		{
			name:   "node-1 loses its ExternalIP: its InternalIP is published",
			change: func() { stSetNodeAddresses(t, ctx, cs, "node-1", "InternalIP=10.0.0.1") },
			want:   []string{"10.0.0.1"},
		},
	}
	for i, step := range steps {
		step.change()
		took := stWaitStatus(t, ctx, cs, "app", "web", step.want)
		t.Logf("timing: %s -> Ingress status %q: %v", step.name, step.want, took.Round(time.Millisecond))
		// Each change is one write: no intermediate or repeated status.
		if got := history.wait(t, i+2); len(got) != i+2 {
			t.Fatalf("after %q: statuses seen %q, want one new status per change", step.name, got)
		}
	}
	// Nothing further happens once the addresses are stable.
	stNoChange(t, ctx, cs, "app", "web", stIngressRV(t, ctx, cs, "app", "web"), stHold, "once the node addresses are stable")
	if got := history.snapshot(); len(got) != len(steps)+1 {
		t.Fatalf("statuses seen %q, want exactly %d", got, len(steps)+1)
	}
	if n := stMetric(t, srv.AdminAddr().String(), "torii_status_updates_total"); n != float64(len(steps)+1) {
		t.Errorf("torii_status_updates_total = %v, want %d (one per change)", n, len(steps)+1)
	}
}

// TestLeaderFailover runs two real Torii processes against one cluster:
// exactly one leads (the Lease holder) and writes status, both serve
// traffic, and when the leader is stopped with SIGTERM it releases the
// Lease so that the other takes over within about the retry period and
// writes the status of new Ingresses.
func TestLeaderFailover(t *testing.T) {
	bin := stToriiBinary(t)
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := c.Client()
	stCreateIngressClass(t, ctx, cs)
	createNamespaceAndService(t, ctx, c, "app", "web", echoBackend(t, "web"))

	procs := map[string]*stProc{}
	for _, id := range []string{"torii-a", "torii-b"} {
		procs[id] = stStartProc(t, bin, id,
			"serve", "--kubeconfig", c.Kubeconfig(),
			"--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
			"--publish-status-address", "203.0.113.9",
			"--election-id", "torii-e2e", "--election-namespace", "default",
			// The default (true) makes a stopping leader ask whether it is
			// the last replica by reading its own Pod and its replicas
			// (status.LastReplica). These processes have no Pod objects,
			// so the check could only fail and log a warning; what this
			// test is about is the hand-over, with the status kept.
			"--update-status-on-shutdown=false",
			// Short, so the failover below is quick; the Lease is held
			// throughout the grace period either way.
			"--shutdown-grace-period", "1s", "--drain-timeout", "5s",
		)
	}
	for _, p := range procs {
		p.waitServing(t)
	}

	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses("app").Create(ctx, hostIngress("app", "web", "torii", "web.example", "web"), metav1.CreateOptions{})
		return err
	})
	var holder string
	took := eventually(t, "a Lease holder and the status 203.0.113.9", func() bool {
		holder = stLeaseHolder(ctx, cs, "default", "torii-e2e")
		return procs[holder] != nil && slices.Equal(stStatus(t, ctx, cs, "app", "web"), []string{"203.0.113.9"})
	})
	t.Logf("timing: Ingress created -> Lease held by %s and status written: %v", holder, took.Round(time.Millisecond))
	leader := procs[holder]
	var follower *stProc
	for id, p := range procs {
		if id != holder {
			follower = p
		}
	}

	// The metrics say the same as the Lease.
	eventually(t, "torii_leader 1 on the Lease holder only", func() bool {
		return stMetricOr(leader.admin, "torii_leader", -1) == 1 && stMetricOr(follower.admin, "torii_leader", -1) == 0
	})
	stWaitMetric(t, leader.admin, "torii_status_updates_total", ">= 1 on the leader "+leader.id+" (it wrote the status)",
		func(n float64) bool { return n >= 1 })
	if n := stMetric(t, follower.admin, "torii_status_updates_total"); n != 0 {
		t.Errorf("follower %s: torii_status_updates_total = %v, want 0", follower.id, n)
	}
	// Both serve the route.
	for _, p := range []*stProc{leader, follower} {
		eventually(t, p.id+" serving web.example", func() bool {
			code, body := get(p.http, "web.example", "/")
			return code == 200 && body == "web"
		})
	}
	// Two replicas running side by side do not fight over the status.
	stNoChange(t, ctx, cs, "app", "web", stIngressRV(t, ctx, cs, "app", "web"), 2*time.Second, "with two replicas running")
	stExactlyOneLeader(t, []*stProc{leader, follower}, leader)
	if n := stMetric(t, follower.admin, "torii_status_updates_total"); n != 0 {
		t.Errorf("follower %s: torii_status_updates_total = %v after the hold, want 0", follower.id, n)
	}

	// SIGTERM the leader: it drains, stops leading and releases the Lease.
	stopped := time.Now()
	if err := leader.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	failover := eventually(t, "the Lease moving to "+follower.id, func() bool {
		return stLeaseHolder(ctx, cs, "default", "torii-e2e") == follower.id
	})
	t.Logf("timing: SIGTERM to %s -> Lease held by %s: %v", leader.id, follower.id, failover.Round(time.Millisecond))
	// A released Lease is taken within about RetryPeriod (2 s) of its
	// release; an abandoned one only once LeaseDuration (15 s) has passed
	// since its last renewal.
	if limit := status.DefaultLeaseDuration - 5*time.Second; failover > limit {
		t.Errorf("failover took %v (> %v): the old leader did not release the Lease", failover, limit)
	}
	eventually(t, follower.id+" reporting torii_leader 1", func() bool {
		return stMetricOr(follower.admin, "torii_leader", -1) == 1
	})
	t.Logf("timing: SIGTERM -> torii_leader 1 on %s: %v", follower.id, time.Since(stopped).Round(time.Millisecond))
	if err := leader.wait(waitTimeout); err != nil {
		t.Fatalf("%s after SIGTERM: %v", leader.id, err)
	}
	t.Logf("timing: SIGTERM -> %s exited: %v", leader.id, leader.endedAt.Sub(stopped).Round(time.Millisecond))
	// The status stays: the new leader has nothing to change, and the old
	// one did not clear it.
	if got := stStatus(t, ctx, cs, "app", "web"); !slices.Equal(got, []string{"203.0.113.9"}) {
		t.Errorf("status of app/web after the failover = %q, want [203.0.113.9]", got)
	}

	// The new leader writes the status of a new Ingress.
	before := stMetric(t, follower.admin, "torii_status_updates_total")
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses("app").Create(ctx, hostIngress("app", "web2", "torii", "web2.example", "web"), metav1.CreateOptions{})
		return err
	})
	took = stWaitStatus(t, ctx, cs, "app", "web2", []string{"203.0.113.9"})
	t.Logf("timing: second Ingress created -> status written by %s: %v", follower.id, took.Round(time.Millisecond))
	stWaitMetric(t, follower.admin, "torii_status_updates_total", fmt.Sprintf("> %v on %s (it wrote app/web2)", before, follower.id),
		func(n float64) bool { return n > before })
	if code, body := get(follower.http, "web2.example", "/"); code != 200 || body != "web" {
		t.Errorf("GET web2.example through %s = %d %q", follower.id, code, body)
	}
	stExactlyOneLeader(t, []*stProc{follower}, follower)
	if h := stLeaseHolder(ctx, cs, "default", "torii-e2e"); h != follower.id {
		t.Errorf("Lease holder %q, want %q", h, follower.id)
	}
}

// stCreateIngressClass creates the IngressClass "torii" Torii owns.
func stCreateIngressClass(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	t.Helper()
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: "torii"},
			Spec:       networkingv1.IngressClassSpec{Controller: "torii.dev/ingress-controller"},
		}, metav1.CreateOptions{})
		return err
	})
}

// stEntry renders one status entry: its IP or hostname, then its ports.
func stEntry(e networkingv1.IngressLoadBalancerIngress) string {
	s := e.IP + e.Hostname
	if len(e.Ports) == 0 {
		return s
	}
	ports := make([]string, len(e.Ports))
	for i, p := range e.Ports {
		ports[i] = strconv.Itoa(int(p.Port)) + "/" + string(p.Protocol)
		if p.Error != nil {
			ports[i] += ":" + *p.Error
		}
	}
	return s + "[" + strings.Join(ports, " ") + "]"
}

func stEntries(list []networkingv1.IngressLoadBalancerIngress) []string {
	out := make([]string, 0, len(list))
	for _, e := range list {
		out = append(out, stEntry(e))
	}
	return out
}

// stStatus returns the Ingress status entries, in order.
func stStatus(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string) []string {
	t.Helper()
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return stEntries(ing.Status.LoadBalancer.Ingress)
}

func stIngressRV(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ing.ResourceVersion
}

// stWaitStatus waits until the Ingress status is exactly want, in order,
// and returns how long that took.
func stWaitStatus(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, want []string) time.Duration {
	t.Helper()
	var last []string
	defer func() {
		if t.Failed() {
			t.Logf("status of %s/%s last seen: %q", ns, name, last)
		}
	}()
	return eventually(t, fmt.Sprintf("status of %s/%s to be %q", ns, name, want), func() bool {
		last = stStatus(t, ctx, cs, ns, name)
		return slices.Equal(last, want)
	})
}

// stNoChange asserts that the Ingress keeps resourceVersion rv for d.
func stNoChange(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name, rv string, d time.Duration, when string) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ing.ResourceVersion != rv {
			t.Fatalf("%s/%s changed %s: resourceVersion %s -> %s, status %q", ns, name, when, rv, ing.ResourceVersion, stEntries(ing.Status.LoadBalancer.Ingress))
		}
	}
}

// stSetServiceLB sets a Service's status.loadBalancer.ingress, as a cloud
// controller would.
func stSetServiceLB(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, lb ...corev1.LoadBalancerIngress) {
	t.Helper()
	svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = lb
	if _, err := cs.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set the load-balancer status of Service %s/%s: %v", ns, name, err)
	}
}

// stNodeAddresses parses "Type=address" pairs.
func stNodeAddresses(addrs []string) []corev1.NodeAddress {
	out := make([]corev1.NodeAddress, 0, len(addrs))
	for _, a := range addrs {
		typ, addr, _ := strings.Cut(a, "=")
		out = append(out, corev1.NodeAddress{Type: corev1.NodeAddressType(typ), Address: addr})
	}
	return out
}

// stCreateNode creates a Node and then sets its addresses, as a kubelet
// would (create ignores a Node's status).
func stCreateNode(t *testing.T, ctx context.Context, cs kubernetes.Interface, name string, addrs ...string) {
	t.Helper()
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		return err
	})
	stSetNodeAddresses(t, ctx, cs, name, addrs...)
}

func stSetNodeAddresses(t *testing.T, ctx context.Context, cs kubernetes.Interface, name string, addrs ...string) {
	t.Helper()
	node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = stNodeAddresses(addrs)
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set the addresses of node %s: %v", name, err)
	}
}

// stCreatePod creates a pod bound to node (no scheduler runs) and sets its
// status as a kubelet would: Running and Ready, or Pending.
func stCreatePod(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name, node string, labels map[string]string, ready bool) {
	t.Helper()
	no := false
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{
				NodeName:                     node,
				AutomountServiceAccountToken: &no,
				Containers:                   []corev1.Container{{Name: "torii", Image: "registry.example/torii:e2e"}},
			},
		}, metav1.CreateOptions{})
		return err
	})
	stSetPodReady(t, ctx, cs, ns, name, ready)
}

func stSetPodReady(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string, ready bool) {
	t.Helper()
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodPending
	cond := corev1.ConditionFalse
	if ready {
		pod.Status.Phase, cond = corev1.PodRunning, corev1.ConditionTrue
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: cond}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set the status of pod %s/%s: %v", ns, name, err)
	}
}

// stStatusHistory records every distinct status an Ingress shows, in the
// order the API server's watch delivers them.
type stStatusHistory struct {
	mu       sync.Mutex
	statuses [][]string
	changed  chan struct{} // closed and replaced on every new status
}

func (h *stStatusHistory) snapshot() [][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.statuses)
}

// wait returns the history once it holds at least n statuses, and a
// little longer, so that an unexpected extra one shows as well.
func (h *stStatusHistory) wait(t *testing.T, n int) [][]string {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		got, changed := len(h.statuses), h.changed
		h.mu.Unlock()
		if got >= n {
			time.Sleep(200 * time.Millisecond)
			return h.snapshot()
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%d statuses seen within %v, want %d: %q", got, waitTimeout, n, h.snapshot())
		}
	}
}

// stWatchStatus watches one Ingress until the test ends.
func stWatchStatus(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string) *stStatusHistory {
	t.Helper()
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.NetworkingV1().Ingresses(ns).Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
		ResourceVersion: ing.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := &stStatusHistory{changed: make(chan struct{})}
	last := stEntries(ing.Status.LoadBalancer.Ingress)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(*networkingv1.Ingress)
			if !ok || (ev.Type != watch.Added && ev.Type != watch.Modified) {
				continue
			}
			s := stEntries(obj.Status.LoadBalancer.Ingress)
			if slices.Equal(s, last) {
				continue
			}
			last = s
			h.mu.Lock()
			h.statuses = append(h.statuses, s)
			close(h.changed)
			h.changed = make(chan struct{})
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		w.Stop()
		<-done
	})
	return h
}

// stLeaseHolder returns the holder of a coordination.k8s.io Lease, "" when
// it has none or cannot be read.
func stLeaseHolder(ctx context.Context, cs kubernetes.Interface, ns, name string) string {
	lease, err := cs.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// stScrape fetches http://<admin>/metrics.
func stScrape(admin string) (string, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + admin + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(body), err
}

// stParseMetric finds an unlabelled sample in Prometheus text format.
func stParseMetric(body, name string) (float64, bool) {
	for line := range strings.Lines(body) {
		rest, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		return v, err == nil
	}
	return 0, false
}

// stMetric scrapes one metric, failing the test if it is not exported.
func stMetric(t *testing.T, admin, name string) float64 {
	t.Helper()
	body, err := stScrape(admin)
	if err != nil {
		t.Fatalf("scrape %s: %v", admin, err)
	}
	v, ok := stParseMetric(body, name)
	if !ok {
		t.Fatalf("%s does not export %s", admin, name)
	}
	return v
}

// stWaitMetric waits until the metric name scraped from admin satisfies ok.
// Status writes are polled through the API, and a write is visible there
// before the writer's goroutine counts it, so a counter read once right
// after the status appears can still show the old value (seen in CI).
func stWaitMetric(t *testing.T, admin, name, want string, ok func(float64) bool) {
	t.Helper()
	last := math.NaN()
	defer func() {
		if t.Failed() {
			t.Logf("%s: last %s = %v", admin, name, last)
		}
	}()
	eventually(t, name+" "+want, func() bool {
		last = stMetricOr(admin, name, math.NaN())
		return ok(last)
	})
}

// stMetricOr scrapes one metric, returning def when that fails, for
// polling.
func stMetricOr(admin, name string, def float64) float64 {
	body, err := stScrape(admin)
	if err != nil {
		return def
	}
	if v, ok := stParseMetric(body, name); ok {
		return v
	}
	return def
}

// stExactlyOneLeader asserts that of procs only want reports torii_leader 1.
func stExactlyOneLeader(t *testing.T, procs []*stProc, want *stProc) {
	t.Helper()
	var leaders []string
	for _, p := range procs {
		if stMetric(t, p.admin, "torii_leader") == 1 {
			leaders = append(leaders, p.id)
		}
	}
	if !slices.Equal(leaders, []string{want.id}) {
		t.Fatalf("replicas reporting torii_leader 1: %q, want exactly [%s]", leaders, want.id)
	}
}

var (
	stBuildOnce sync.Once
	stBuildPath string
	stBuildErr  error
)

// stToriiBinary builds cmd/torii once per test binary, from the module
// under test, into a directory that is the same for every run from this
// checkout (so repeated runs replace one binary rather than pile up
// copies). The build is atomic: a concurrent run never sees half a file.
func stToriiBinary(t *testing.T) string {
	t.Helper()
	stBuildOnce.Do(func() {
		start := time.Now()
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			stBuildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("torii-e2e-%x", stHash(root)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			stBuildErr = err
			return
		}
		tmp := filepath.Join(dir, fmt.Sprintf("torii.%d.tmp", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", tmp, "./cmd/torii")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			stBuildErr = fmt.Errorf("go build ./cmd/torii: %v\n%s", err, out)
			return
		}
		stBuildPath = filepath.Join(dir, "torii")
		if err := os.Rename(tmp, stBuildPath); err != nil {
			stBuildErr = err
			return
		}
		t.Logf("timing: go build ./cmd/torii took %v", time.Since(start).Round(time.Millisecond))
	})
	if stBuildErr != nil {
		t.Fatal(stBuildErr)
	}
	return stBuildPath
}

// stHash is FNV-1a, enough to name a directory after a path.
func stHash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// stProc is one Torii process.
type stProc struct {
	id      string // POD_NAME, the identity in the Lease
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once Wait returned
	err     error         // valid after done is closed
	endedAt time.Time     // valid after done is closed

	http, admin string // listener addresses, once serving
}

// stStartProc starts the Torii binary with args as pod id in namespace
// default. Its output goes to a file whose tail is logged if the test
// fails; the process is killed when the test ends.
func stStartProc(t *testing.T, bin, id string, args ...string) *stProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), id+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "POD_NAME="+id, "POD_NAMESPACE=default")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = harness.ChildProcAttr()
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start %s: %v", id, err)
	}
	p := &stProc{id: id, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.endedAt = time.Now()
		log.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		// Torii starts no children, and is alone in its process group:
		// killing the process is killing the group.
		_ = cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) not reaped 10s after SIGKILL", id, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("=== last lines of %s (%s):\n%s", id, logPath, stTail(logPath, 40))
		}
	})
	return p
}

// stServingLine is the start-up log line naming the listener addresses.
var stServingLine = regexp.MustCompile(`msg="torii serving".* http=(\S+) .*admin=(\S+)`)

// waitServing waits for the start-up line and reads the addresses from it.
func (p *stProc) waitServing(t *testing.T) {
	t.Helper()
	eventually(t, p.id+" to start serving", func() bool {
		select {
		case <-p.done:
			t.Fatalf("%s exited at start-up: %v\n%s", p.id, p.err, stTail(p.logPath, 40))
		default:
		}
		data, _ := os.ReadFile(p.logPath)
		m := stServingLine.FindSubmatch(data)
		if m == nil {
			return false
		}
		p.http, p.admin = string(m[1]), string(m[2])
		return true
	})
}

// wait waits up to d for the process to exit and returns its exit error.
func (p *stProc) wait(d time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		return fmt.Errorf("still running %v later", d)
	}
}

// stTail returns the last n lines of a file.
func stTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
