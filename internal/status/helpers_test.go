package status

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// waitTimeout bounds every wait for an asynchronous effect. Generous: the
// suite runs under the race detector on two shared cores; a healthy run
// takes milliseconds to a few seconds.
const waitTimeout = 30 * time.Second

// recorder collects AddressSource reports.
type recorder struct {
	ch chan []networkingv1.IngressLoadBalancerIngress
}

func newRecorder() *recorder {
	return &recorder{ch: make(chan []networkingv1.IngressLoadBalancerIngress, 100)}
}

func (r *recorder) onChange(a []networkingv1.IngressLoadBalancerIngress) { r.ch <- a }

// next returns the next report, failing after waitTimeout.
func (r *recorder) next(t *testing.T) []networkingv1.IngressLoadBalancerIngress {
	t.Helper()
	select {
	case a := <-r.ch:
		return a
	case <-time.After(waitTimeout):
		t.Fatalf("no address report within %v", waitTimeout)
		return nil
	}
}

// expect fails unless the next report is want, rendered as in render.
func (r *recorder) expect(t *testing.T, want ...string) {
	t.Helper()
	if got := render(r.next(t)); !slices.Equal(got, want) {
		t.Fatalf("addresses = %q, want %q", got, want)
	}
}

// quiet fails if a report arrives within d. Only used after a change whose
// absence is the point, with d short: it cannot prove more.
func (r *recorder) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case a := <-r.ch:
		t.Fatalf("unexpected address report %q", render(a))
	case <-time.After(d):
	}
}

// render prints entries as "ip", "hostname" or "ip:port/proto".
func render(list []networkingv1.IngressLoadBalancerIngress) []string {
	out := []string{}
	for _, a := range list {
		s := a.IP + a.Hostname
		for _, p := range a.Ports {
			s += ":" + strconv.Itoa(int(p.Port)) + "/" + string(p.Protocol)
		}
		out = append(out, s)
	}
	return out
}

// runSource runs src until the test ends and reports into a new recorder.
func runSource(t *testing.T, src *AddressSource) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := newRecorder()
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, r.onChange) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return within %v of cancellation", waitTimeout)
		}
	})
	return r
}

// readyPod is a Torii pod bound to node, Running and Ready.
func readyPod(ns, name, node string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "torii", Image: "torii.invalid/torii"}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

// node is a Node with the given addresses as type=address pairs.
func node(name string, addrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		typ, addr, _ := strings.Cut(a, "=")
		n.Status.Addresses = append(n.Status.Addresses, corev1.NodeAddress{Type: corev1.NodeAddressType(typ), Address: addr})
	}
	return n
}

func ingress(ns, name string, addrs ...networkingv1.IngressLoadBalancerIngress) *networkingv1.Ingress {
	cls := "torii"
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &cls,
			DefaultBackend: &networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
				Name: "backend", Port: networkingv1.ServiceBackendPort{Number: 80},
			}},
		},
		Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{Ingress: addrs}},
	}
}
