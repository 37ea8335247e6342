package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/torii-dev/torii/internal/server"
	"github.com/torii-dev/torii/internal/translate"
	"github.com/torii-dev/torii/test/e2e/harness"
)

// echoBackend answers every request with its name.
func echoBackend(t *testing.T, name string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// startTorii runs Torii in Kubernetes mode against the cluster.
func startTorii(t *testing.T, c *harness.Cluster, kube server.KubeConfig) *server.Server {
	t.Helper()
	kube.Kubeconfig = c.Kubeconfig()
	kube.ElectionNamespace = "default"
	kube.LeaseDuration, kube.RenewDeadline, kube.RetryPeriod = 2*time.Second, time.Second, 100*time.Millisecond
	srv, err := server.New(server.Config{
		HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Kube:              kube,
		Translate:         translate.Config{ControllerName: "torii.dev/ingress-controller", IngressClass: "torii"},
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 75 * time.Second, MaxHeaderBytes: 60 << 10,
		DrainTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Torii did not stop")
		}
	})
	return srv
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < waitTimeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	return 0
}

// get sends GET http://<addr>/path with a Host and returns status and body.
func get(addr, host, path string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func createNamespaceAndService(t *testing.T, ctx context.Context, c *harness.Cluster, ns, svc string, ports ...int) {
	t.Helper()
	cs := c.Client()
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		mustCreate(t, func() error {
			_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			return err
		})
	}
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: svc},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}, metav1.CreateOptions{})
		return err
	})
	putSlice(t, ctx, c, ns, svc, ports...)
}

// putSlice sets the Service's one EndpointSlice to loopback endpoints on
// the given ports (one slice per port, as Kubernetes groups by port).
func putSlice(t *testing.T, ctx context.Context, c *harness.Cluster, ns, svc string, ports ...int) {
	t.Helper()
	for i, port := range ports {
		name, p, proto, ready := "http", int32(port), corev1.ProtocolTCP, true
		if err := c.PutEndpointSlice(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: svc + "-" + strconv.Itoa(i), Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &p, Protocol: &proto}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		}); err != nil {
			t.Fatalf("PutEndpointSlice: %v", err)
		}
	}
}

func hostIngress(ns, name, class, host, svc string) *networkingv1.Ingress {
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &prefix, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}},
				}}},
			}}}},
		},
	}
}

func statusIPs(t *testing.T, ctx context.Context, cs kubernetes.Interface, ns, name string) []string {
	t.Helper()
	ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, lb := range ing.Status.LoadBalancer.Ingress {
		ips = append(ips, lb.IP+lb.Hostname)
	}
	return ips
}

// TestKubernetesMode drives Torii through the real API server: routing in
// two namespaces, the published status, the endpoint lane under a steady
// request loop, a class change moving the status, and a delete.
func TestKubernetesMode(t *testing.T) {
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := c.Client()
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: "torii"},
			Spec:       networkingv1.IngressClassSpec{Controller: "torii.dev/ingress-controller"},
		}, metav1.CreateOptions{})
		return err
	})
	blue, green, green2 := echoBackend(t, "blue"), echoBackend(t, "green"), echoBackend(t, "green-2")
	createNamespaceAndService(t, ctx, c, "team-a", "blue", blue)
	createNamespaceAndService(t, ctx, c, "team-b", "green", green)

	srv := startTorii(t, c, server.KubeConfig{PublishStatusAddress: []string{"203.0.113.7"}, UpdateStatusOnShutdown: true})
	addr := srv.HTTPAddr().String()

	created := time.Now()
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses("team-a").Create(ctx, hostIngress("team-a", "blue", "torii", "blue.example", "blue"), metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses("team-b").Create(ctx, hostIngress("team-b", "green", "torii", "green.example", "green"), metav1.CreateOptions{})
		return err
	})
	eventually(t, "routes in both namespaces", func() bool {
		s1, b1 := get(addr, "blue.example", "/")
		s2, b2 := get(addr, "green.example", "/")
		return s1 == 200 && b1 == "blue" && s2 == 200 && b2 == "green"
	})
	t.Logf("Ingress created -> first successful request: %v", time.Since(created).Round(time.Millisecond))
	eventually(t, "status address on both Ingresses", func() bool {
		a, b := statusIPs(t, ctx, cs, "team-a", "blue"), statusIPs(t, ctx, cs, "team-b", "green")
		return len(a) == 1 && a[0] == "203.0.113.7" && len(b) == 1 && b[0] == "203.0.113.7"
	})

	t.Run("endpoint changes shift traffic with zero failed requests", func(t *testing.T) {
		var ok, failed, sawGreen2 atomic.Int64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			deadline := time.Now().Add(waitTimeout)
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				code, body := get(addr, "green.example", "/")
				switch {
				case code != 200 || (body != "green" && body != "green-2"):
					failed.Add(1)
				case body == "green-2":
					sawGreen2.Add(1)
					ok.Add(1)
				default:
					ok.Add(1)
				}
			}
		}()
		changed := time.Now()
		putSlice(t, ctx, c, "team-b", "green", green, green2) // add an endpoint
		eventually(t, "traffic reaching the new endpoint", func() bool { return sawGreen2.Load() > 0 })
		t.Logf("EndpointSlice change -> traffic shifted: %v", time.Since(changed).Round(time.Millisecond))
		putSlice(t, ctx, c, "team-b", "green", green2) // and drop the old one
		if err := c.DeleteEndpointSlice(ctx, "team-b", "green-1"); err != nil {
			t.Fatal(err)
		}
		before := ok.Load()
		eventually(t, "more requests after the change", func() bool { return ok.Load() > before+50 })
		close(stop)
		<-done
		if failed.Load() != 0 {
			t.Fatalf("%d of %d requests failed while endpoints changed", failed.Load(), failed.Load()+ok.Load())
		}
		// The dropped endpoint no longer gets traffic.
		eventually(t, "traffic only on the new endpoint", func() bool {
			for range 20 {
				if code, body := get(addr, "green.example", "/"); code != 200 || body != "green-2" {
					return false
				}
			}
			return true
		})
	})

	t.Run("class change removes the route and Torii's status", func(t *testing.T) {
		ing, err := cs.NetworkingV1().Ingresses("team-a").Get(ctx, "blue", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		other := "someone-else"
		ing.Spec.IngressClassName = &other
		if _, err := cs.NetworkingV1().Ingresses("team-a").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "route gone", func() bool { code, _ := get(addr, "blue.example", "/"); return code == 404 })
		eventually(t, "status removed", func() bool { return len(statusIPs(t, ctx, cs, "team-a", "blue")) == 0 })
	})

	t.Run("deleting an Ingress removes its route", func(t *testing.T) {
		if err := cs.NetworkingV1().Ingresses("team-b").Delete(ctx, "green", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "route gone", func() bool { code, _ := get(addr, "green.example", "/"); return code == 404 })
	})
}
