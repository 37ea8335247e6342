package status

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestNewAddressSourceValidates(t *testing.T) {
	c := fake.NewClientset()
	tests := []struct {
		name    string
		cfg     AddressConfig
		mode    addressMode
		wantErr string
	}{
		{name: "fixed wins", cfg: AddressConfig{PublishStatusAddress: []string{"192.0.2.1"}, PublishService: "a/b", PodName: "p", PodNamespace: "n"}, mode: modeFixed},
		{name: "fixed needs no client", cfg: AddressConfig{PublishStatusAddress: []string{"lb.example.com"}}, mode: modeFixed},
		{name: "service over nodes", cfg: AddressConfig{Client: c, PublishService: "torii-system/torii", PodName: "p", PodNamespace: "n"}, mode: modeService},
		{name: "nodes", cfg: AddressConfig{Client: c, PodName: "p", PodNamespace: "n"}, mode: modeNodes},
		{name: "bad fixed", cfg: AddressConfig{PublishStatusAddress: []string{"192.0.2.1,not an address"}}, wantErr: "--publish-status-address"},
		{name: "service without slash", cfg: AddressConfig{Client: c, PublishService: "torii"}, wantErr: "not namespace/name"},
		{name: "service with two slashes", cfg: AddressConfig{Client: c, PublishService: "a/b/c"}, wantErr: "not namespace/name"},
		{name: "service bad namespace", cfg: AddressConfig{Client: c, PublishService: "Torii/torii"}, wantErr: "namespace"},
		{name: "service empty name", cfg: AddressConfig{Client: c, PublishService: "torii/"}, wantErr: "name"},
		{name: "service needs client", cfg: AddressConfig{PublishService: "a/b"}, wantErr: "client is required"},
		{name: "nothing", cfg: AddressConfig{Client: c, PodName: "p"}, wantErr: ErrNoPublishSource.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAddressSource(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.mode != tt.mode {
				t.Errorf("mode = %v, want %v", a.mode, tt.mode)
			}
		})
	}
	if _, err := NewAddressSource(AddressConfig{}); !errors.Is(err, ErrNoPublishSource) {
		t.Errorf("empty config: err = %v, want ErrNoPublishSource", err)
	}
}

func TestFixedAddressesReportedOnce(t *testing.T) {
	src, err := NewAddressSource(AddressConfig{PublishStatusAddress: []string{"192.0.2.1, lb.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	r := runSource(t, src)
	r.expect(t, "192.0.2.1", "lb.example.com")
	r.quiet(t, 50*time.Millisecond)
}

func TestServiceAddressesFake(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientset(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "torii-system", Name: "torii"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	})
	src, err := NewAddressSource(AddressConfig{Client: c, PublishService: "torii-system/torii"})
	if err != nil {
		t.Fatal(err)
	}
	r := runSource(t, src)
	r.expect(t) // exists, no address yet

	svc, _ := c.CoreV1().Services("torii-system").Get(ctx, "torii", metav1.GetOptions{})
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7", Ports: []corev1.PortStatus{{Port: 443, Protocol: corev1.ProtocolTCP}}}}
	if _, err := c.CoreV1().Services("torii-system").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "203.0.113.7:443/TCP")

	// A change elsewhere in the Service is not an address change.
	svc.Labels = map[string]string{"touched": "yes"}
	if _, err := c.CoreV1().Services("torii-system").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Deleting the Service keeps the last addresses (no report).
	if err := c.CoreV1().Services("torii-system").Delete(ctx, "torii", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.quiet(t, 200*time.Millisecond)
}

func TestNodeAddressesFake(t *testing.T) {
	ctx := context.Background()
	labels := map[string]string{"app": "torii", "pod-template-hash": "abc"}
	self := readyPod("torii-system", "torii-a", "n1", labels)
	self.Status.Conditions = nil // own pod counts before it is Ready
	other := readyPod("torii-system", "torii-b", "n2", map[string]string{"app": "torii", "pod-template-hash": "def"})
	unready := readyPod("torii-system", "torii-c", "n3", labels)
	unready.Status.Conditions[0].Status = corev1.ConditionFalse
	stranger := readyPod("torii-system", "web", "n4", map[string]string{"app": "web"})
	c := fake.NewClientset(self, other, unready, stranger,
		node("n1", "InternalIP=10.0.0.1", "ExternalIP=198.51.100.1"),
		node("n2", "InternalIP=10.0.0.2", "InternalIP=fd00::2"),
		node("n3", "ExternalIP=198.51.100.3"),
		node("n4", "ExternalIP=198.51.100.4"),
	)
	src, err := NewAddressSource(AddressConfig{Client: c, PodName: "torii-a", PodNamespace: "torii-system"})
	if err != nil {
		t.Fatal(err)
	}
	r := runSource(t, src)
	// n1 external only; n2 has no external, so both internal families;
	// n3's pod is not ready; n4's pod is not Torii.
	r.expect(t, "10.0.0.2", "198.51.100.1", "fd00::2")

	unready.Status.Conditions[0].Status = corev1.ConditionTrue
	if _, err := c.CoreV1().Pods("torii-system").UpdateStatus(ctx, unready, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "10.0.0.2", "198.51.100.1", "198.51.100.3", "fd00::2")

	if err := c.CoreV1().Pods("torii-system").Delete(ctx, "torii-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "198.51.100.1", "198.51.100.3")

	n3, _ := c.CoreV1().Nodes().Get(ctx, "n3", metav1.GetOptions{})
	n3.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeExternalIP, Address: "198.51.100.33"}}
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, n3, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "198.51.100.1", "198.51.100.33")
}

func TestNodeAddressesOwnPodMissing(t *testing.T) {
	c := fake.NewClientset()
	src, err := NewAddressSource(AddressConfig{Client: c, PodName: "torii-a", PodNamespace: "torii-system"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err = src.Run(ctx, func([]networkingv1.IngressLoadBalancerIngress) {})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Run = %v, want a not-found error", err)
	}
}
