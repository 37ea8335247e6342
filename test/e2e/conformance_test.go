package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/torii-dev/torii/internal/controller"
	"github.com/torii-dev/torii/internal/demo"
	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/server"
	"github.com/torii-dev/torii/internal/status"
	"github.com/torii-dev/torii/internal/testcert"
	"github.com/torii-dev/torii/test/conformance"
	"github.com/torii-dev/torii/test/e2e/harness"
)

// The kubernetes-sigs ingress-controller-conformance scenarios (default
// backend, host rules, path rules, ingress class, load balancing) in
// Kubernetes mode: the objects go through the API server, the backends are
// internal/demo echo servers behind selector-less Services with loopback
// EndpointSlices, and Torii publishes a status address that every owned
// Ingress must carry before traffic is checked, as the conformance suite's
// "Given the ingress status shows the IP address" step requires.
// test/feature/conformance_test.go replays the same scenarios in manifest
// mode.

// cfConformanceStatusIP is the address Torii publishes in TestConformance.
const cfConformanceStatusIP = "203.0.113.9"

// cfTimeout bounds every wait in this file's conformance scenarios.
const cfTimeout = 30 * time.Second

// cfEnv is one cluster with one Torii serving it.
type cfEnv struct {
	ctx                context.Context
	c                  *harness.Cluster
	cs                 kubernetes.Interface
	http, https, admin string
	client             *http.Client // plain HTTP, keep-alive
}

// TestConformance runs the conformance scenarios one after another against
// one cluster and one Torii. Every scenario works in a namespace of its own
// and deletes its Ingresses when it ends (waiting until Torii dropped their
// routes), because the default-backend scenarios claim every host.
func TestConformance(t *testing.T) {
	t0 := time.Now()
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
	srv := startTorii(t, c, server.KubeConfig{PublishStatusAddress: []string{cfConformanceStatusIP}})
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	env := &cfEnv{
		ctx: ctx, c: c, cs: cs,
		http: srv.HTTPAddr().String(), https: srv.HTTPSAddr().String(), admin: srv.AdminAddr().String(),
		client: &http.Client{Timeout: 10 * time.Second, Transport: tr},
	}
	t.Run("default backend", env.defaultBackend)
	t.Run("host rules", env.hostRules)
	t.Run("path rules", env.pathRules)
	t.Run("ingress class", env.ingressClass)
	t.Run("load balancing", env.loadBalancing)
	t.Logf("timing: TestConformance took %v", time.Since(t0).Round(time.Millisecond))
}

func (e *cfEnv) defaultBackend(t *testing.T) {
	const ns = "cf-default-backend"
	e.namespace(t, ns)
	e.service(t, ns, "echo-service", cfEcho(t, "echo-service"))
	e.ingress(t, ns, `
metadata: {name: default-backend}
`+conformance.DefaultBackendSpec)
	e.waitStatus(t, ns, "default-backend")
	e.waitRoutes(t, ns, "the catch-all served by echo-service", func(tbl controller.RouteTable, routes []controller.RouteInfo) bool {
		return tbl.CatchAll != nil && len(tbl.CatchAll.Backend.Endpoints) == 1
	})
	for _, tc := range conformance.DefaultBackendCases {
		t.Run(tc.Method+" "+tc.Host+tc.Path, func(t *testing.T) {
			r := e.do(t, tc.Method, tc.Host, tc.Path)
			if r.status != http.StatusOK || r.echo.Backend != "echo-service" {
				t.Fatalf("got %d served by %q, want 200 from echo-service", r.status, r.echo.Backend)
			}
			if r.proto != "HTTP/1.1" || r.echo.Proto != "HTTP/1.1" {
				t.Errorf("response proto %q, request proto at the backend %q; want HTTP/1.1 both", r.proto, r.echo.Proto)
			}
			for _, h := range []string{"Content-Length", "Content-Type", "Date", "Server"} {
				if r.header.Get(h) == "" {
					t.Errorf("response header %s missing", h)
				}
			}
			wantHost := tc.Host
			if wantHost == "" {
				wantHost = e.http // the client sends the URL's authority
			}
			if r.echo.Method != tc.Method || r.echo.Path != tc.Path || r.echo.Host != wantHost {
				t.Errorf("backend saw %s %s Host %q, want %s %s Host %q", r.echo.Method, r.echo.Path, r.echo.Host, tc.Method, tc.Path, wantHost)
			}
			if ua := r.echo.Headers["User-Agent"]; len(ua) != 1 || ua[0] != "Go-http-client/1.1" {
				t.Errorf("backend saw User-Agent %q, want the client's Go-http-client/1.1", ua)
			}
		})
	}
}

func (e *cfEnv) hostRules(t *testing.T) {
	const ns = "cf-host-rules"
	e.namespace(t, ns)
	e.service(t, ns, "wildcard-foo-com", cfEcho(t, "wildcard-foo-com"))
	e.service(t, ns, "foo-bar-com", cfEcho(t, "foo-bar-com"))
	certPEM, keyPEM, roots := cfSelfSigned(t, "foo.bar.com")
	mustCreate(t, func() error {
		_, err := e.cs.CoreV1().Secrets(ns).Create(e.ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "conformance-tls"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
		}, metav1.CreateOptions{})
		return err
	})
	e.ingress(t, ns, `
metadata: {name: host-rules}
`+conformance.HostRulesSpec)
	e.waitStatus(t, ns, "host-rules")
	e.waitRoutes(t, ns, "both hosts with endpoints and the foo.bar.com certificate", func(tbl controller.RouteTable, routes []controller.RouteInfo) bool {
		hasCert := slices.ContainsFunc(tbl.Certificates, func(c model.Certificate) bool {
			return c.ID == ns+"/conformance-tls" && slices.Equal(c.Hosts, []string{"foo.bar.com"})
		})
		return hasCert && cfHasHosts(tbl, "*.foo.com", "foo.bar.com") && cfAllServed(routes, 2, 1)
	})

	t.Run("TLS with SNI foo.bar.com verifies the certificate", func(t *testing.T) {
		for _, proto := range []string{"http/1.1", "h2"} {
			t.Run(proto, func(t *testing.T) {
				c := cfTLSClient(e.https, roots, proto == "h2")
				req, err := http.NewRequest("GET", "https://foo.bar.com/", nil)
				if err != nil {
					t.Fatal(err)
				}
				r, err := cfSend(c, req)
				if err != nil {
					t.Fatalf("GET https://foo.bar.com/ (%s): %v", proto, err)
				}
				if r.tls == nil || r.tls.PeerCertificates[0].VerifyHostname("foo.bar.com") != nil {
					t.Fatalf("connection state %+v does not carry a certificate for foo.bar.com", r.tls)
				}
				if want := map[string]string{"http/1.1": "HTTP/1.1", "h2": "HTTP/2.0"}[proto]; r.proto != want || r.tls.NegotiatedProtocol != proto {
					t.Errorf("negotiated %q (ALPN %q), want %s", r.proto, r.tls.NegotiatedProtocol, want)
				}
				if r.status != 200 || r.echo.Backend != "foo-bar-com" {
					t.Fatalf("got %d from %q, want 200 from foo-bar-com", r.status, r.echo.Backend)
				}
				if r.echo.Host != "foo.bar.com" || r.echo.Method != "GET" || r.echo.Path != "/" {
					t.Errorf("backend saw %s %s Host %q, want GET / Host foo.bar.com", r.echo.Method, r.echo.Path, r.echo.Host)
				}
				if got := r.echo.Headers["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "https" {
					t.Errorf("X-Forwarded-Proto = %q, want https", got)
				}
			})
		}
	})
	t.Run("unknown SNI gets the default certificate", func(t *testing.T) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", e.https,
			&tls.Config{ServerName: "unknown.example", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if leaf := conn.ConnectionState().PeerCertificates[0]; leaf.VerifyHostname("foo.bar.com") == nil {
			t.Fatalf("unknown SNI was served the foo.bar.com certificate (subject %q)", leaf.Subject)
		}
	})
	for _, tc := range []struct {
		host, want string
	}{
		{"foo.bar.com", "foo-bar-com"},
		{"subdomain.bar.com", ""},
		{"bar.foo.com", "wildcard-foo-com"},
		{"baz.bar.foo.com", ""}, // the wildcard covers exactly one label
		{"foo.com", ""},
		{"FOO.BAR.COM:8080", "foo-bar-com"},
	} {
		t.Run("http "+tc.host, func(t *testing.T) {
			r := e.do(t, "GET", tc.host, "/")
			if tc.want == "" {
				cfWantToriiNotFound(t, r)
				return
			}
			if r.status != 200 || r.echo.Backend != tc.want {
				t.Fatalf("got %d from %q, want 200 from %q", r.status, r.echo.Backend, tc.want)
			}
			if r.echo.Host != tc.host || r.echo.Method != "GET" || r.echo.Path != "/" {
				t.Errorf("backend saw %s %s Host %q, want GET / Host %q unchanged", r.echo.Method, r.echo.Path, r.echo.Host, tc.host)
			}
		})
	}
}

func (e *cfEnv) pathRules(t *testing.T) {
	const ns = "cf-path-rules"
	e.namespace(t, ns)
	for _, n := range conformance.PathRulesBackends {
		e.service(t, ns, n, cfEcho(t, n))
	}
	e.ingress(t, ns, `
metadata: {name: path-rules}
`+conformance.PathRulesSpec)
	e.waitStatus(t, ns, "path-rules")
	e.waitRoutes(t, ns, "four hosts, nine routes, all with endpoints", func(tbl controller.RouteTable, routes []controller.RouteInfo) bool {
		return cfHasHosts(tbl, "exact-path-rules", "prefix-path-rules", "mixed-path-rules", "trailing-slash-path-rules") &&
			cfAllServed(routes, 8, 1)
	})
	for _, tc := range conformance.PathRulesCases {
		t.Run(tc.Host+tc.Path, func(t *testing.T) {
			r := e.do(t, "GET", tc.Host, tc.Path)
			if tc.Want == "" {
				cfWantToriiNotFound(t, r)
				return
			}
			if r.status != 200 || r.echo.Backend != tc.Want {
				t.Fatalf("got %d from %q, want 200 from %q", r.status, r.echo.Backend, tc.Want)
			}
			if r.echo.Path != tc.Path || r.echo.Host != tc.Host || r.echo.Method != "GET" {
				t.Errorf("backend saw %s %s Host %q, want GET %s Host %q", r.echo.Method, r.echo.Path, r.echo.Host, tc.Path, tc.Host)
			}
		})
	}
}

func (e *cfEnv) ingressClass(t *testing.T) {
	const ns = "cf-ingress-class"
	e.namespace(t, ns)
	e.service(t, ns, "ingress-class-prefix", cfEcho(t, "ingress-class-prefix"))
	e.ingress(t, ns, `
metadata: {name: test-ingress-class}
`+conformance.IngressClassSpec)
	// Another controller's Ingress, with the status that controller wrote.
	e.ingress(t, ns, `
metadata: {name: other-controller}
spec:
  ingressClassName: other-class
  rules:
    - host: "other-controller"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: ingress-class-prefix, port: {number: 8080}}}
`)
	other, err := e.cs.NetworkingV1().Ingresses(ns).Get(e.ctx, "other-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{IP: "198.51.100.7"}}
	if _, err := e.cs.NetworkingV1().Ingresses(ns).UpdateStatus(e.ctx, other, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A witness Ingress of Torii's own, created after the foreign ones:
	// once it is routed and carries Torii's status, Torii has seen the
	// foreign Ingresses and had every chance to touch them.
	e.ingress(t, ns, `
metadata: {name: witness}
spec:
  ingressClassName: torii
  rules:
    - host: "ingress-class-witness"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: ingress-class-prefix, port: {number: 8080}}}
`)
	e.waitStatus(t, ns, "witness")
	e.waitRoutes(t, ns, "the witness route", func(tbl controller.RouteTable, routes []controller.RouteInfo) bool {
		return cfHasHosts(tbl, "ingress-class-witness") && cfAllServed(routes, 1, 1)
	})
	if r := e.do(t, "GET", "ingress-class-witness", "/"); r.status != 200 || r.echo.Backend != "ingress-class-prefix" ||
		r.echo.Host != "ingress-class-witness" || r.echo.Method != "GET" || r.echo.Path != "/" {
		t.Fatalf("witness: got %d from %q (backend saw %s %s Host %q), want 200 from ingress-class-prefix for GET / Host ingress-class-witness",
			r.status, r.echo.Backend, r.echo.Method, r.echo.Path, r.echo.Host)
	}

	t.Run("foreign class is not routed", func(t *testing.T) {
		for _, host := range []string{"ingress-class", "other-controller"} {
			cfWantToriiNotFound(t, e.do(t, "GET", host, "/"))
		}
	})
	t.Run("foreign class gets no status from Torii", func(t *testing.T) {
		if got := statusIPs(t, e.ctx, e.cs, ns, "test-ingress-class"); len(got) != 0 {
			t.Errorf("test-ingress-class status = %v, want none", got)
		}
		if got := statusIPs(t, e.ctx, e.cs, ns, "other-controller"); !slices.Equal(got, []string{"198.51.100.7"}) {
			t.Errorf("other-controller status = %v, want the other controller's [198.51.100.7] untouched", got)
		}
	})
	t.Run("foreign class leaves no trace", func(t *testing.T) {
		tbl, err := cfRouteTable(e.admin)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range tbl.Hosts {
			if h.Host == "ingress-class" || h.Host == "other-controller" {
				t.Errorf("routing table has host %q", h.Host)
			}
		}
		for _, p := range tbl.Problems {
			if strings.Contains(p.Object, ns+"/") {
				t.Errorf("problem reported for a foreign Ingress: %+v", p)
			}
		}
		events, err := e.cs.CoreV1().Events(ns).List(e.ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events.Items {
			// The API server has Events of its own in the namespace
			// (the ClusterIP repair loop's about the Services, say):
			// what counts is any Event from Torii, or about an Ingress.
			fromTorii := ev.ReportingController == status.ReportingController
			if (fromTorii || ev.InvolvedObject.Kind == "Ingress") && ev.InvolvedObject.Name != "witness" {
				t.Errorf("event about a foreign Ingress: %s %s %s (%s): %s", ev.InvolvedObject.Kind, ev.InvolvedObject.Name, ev.Reason, ev.ReportingController, ev.Message)
			}
		}
	})
}

func (e *cfEnv) loadBalancing(t *testing.T) {
	const ns = "cf-load-balancing"
	const pods = 10
	e.namespace(t, ns)
	var backends []*cfBackend
	for i := range pods {
		backends = append(backends, cfEcho(t, fmt.Sprintf("echo-service-pod-%d", i)))
	}
	e.service(t, ns, "echo-service", backends...)
	e.ingress(t, ns, `
metadata: {name: load-balancing}
`+conformance.DefaultBackendSpec)
	e.waitStatus(t, ns, "load-balancing")
	e.waitRoutes(t, ns, fmt.Sprintf("the catch-all with %d endpoints", pods), func(tbl controller.RouteTable, routes []controller.RouteInfo) bool {
		return tbl.CatchAll != nil && len(tbl.CatchAll.Backend.Endpoints) == pods
	})
	seen := map[string]int{}
	for i := range 100 {
		r := e.do(t, "GET", "load-balancing", "/")
		if r.status != 200 || !strings.HasPrefix(r.echo.Backend, "echo-service-pod-") {
			t.Fatalf("request %d: got %d from %q, want 200 from an echo-service pod", i, r.status, r.echo.Backend)
		}
		if r.echo.Host != "load-balancing" || r.echo.Path != "/" || r.echo.Method != "GET" {
			t.Fatalf("request %d: backend saw %s %s Host %q, want GET / Host load-balancing", i, r.echo.Method, r.echo.Path, r.echo.Host)
		}
		seen[r.echo.Backend]++
	}
	if len(seen) != pods {
		t.Fatalf("100 requests reached %d distinct endpoints, want all %d: %v", len(seen), pods, seen)
	}
	for name, n := range seen {
		if n != 100/pods {
			t.Errorf("round-robin uneven: %s got %d of 100 (all: %v)", name, n, seen)
		}
	}
}

// namespace creates ns.
func (e *cfEnv) namespace(t *testing.T, ns string) {
	t.Helper()
	if err := cfCreateNamespace(e.ctx, e.cs, ns); err != nil {
		t.Fatal(err)
	}
}

// service creates the selector-less Service name in ns whose port 8080
// ("http") is served by backends, one loopback EndpointSlice per backend
// (Kubernetes groups endpoints by port, and every backend has its own).
func (e *cfEnv) service(t *testing.T, ns, name string, backends ...*cfBackend) {
	t.Helper()
	if err := cfCreateService(e.ctx, e.cs, ns, name); err != nil {
		t.Fatal(err)
	}
	ports := make([]int, len(backends))
	for i, b := range backends {
		ports[i] = b.port
	}
	if err := cfSetEndpoints(e.ctx, e.c, ns, name, ports...); err != nil {
		t.Fatal(err)
	}
}

// ingress creates the Ingress spelled in YAML (without apiVersion, kind and
// namespace) in ns. When the (sub)test ends, it is deleted and the cleanup
// waits until Torii no longer routes anything from ns.
func (e *cfEnv) ingress(t *testing.T, ns, manifest string) {
	t.Helper()
	var ing networkingv1.Ingress
	if err := yaml.UnmarshalStrict([]byte(manifest), &ing); err != nil {
		t.Fatalf("Ingress manifest: %v", err)
	}
	ing.Namespace = ns
	if _, err := e.cs.NetworkingV1().Ingresses(ns).Create(e.ctx, &ing, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Ingress %s/%s: %v", ns, ing.Name, err)
	}
	t.Cleanup(func() {
		if err := e.cs.NetworkingV1().Ingresses(ns).Delete(e.ctx, ing.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete Ingress %s/%s: %v", ns, ing.Name, err)
			return
		}
		var last string
		if !cfPoll(cfTimeout, 20*time.Millisecond, func() bool {
			tbl, err := cfRouteTable(e.admin)
			if err != nil {
				last = err.Error()
				return false
			}
			routes := cfRoutesFrom(tbl, ns)
			last = fmt.Sprint(routes)
			return len(routes) == 0
		}) {
			t.Errorf("Torii still routes Ingresses of %s %v after they were deleted: %s", ns, cfTimeout, last)
		}
	})
}

// waitStatus waits until Ingress ns/name carries exactly Torii's published
// address.
func (e *cfEnv) waitStatus(t *testing.T, ns, name string) {
	t.Helper()
	var got []string
	if !cfPoll(cfTimeout, 20*time.Millisecond, func() bool {
		got = statusIPs(t, e.ctx, e.cs, ns, name)
		return slices.Equal(got, []string{cfConformanceStatusIP})
	}) {
		t.Fatalf("Ingress %s/%s status %v after %v, want [%s]", ns, name, got, cfTimeout, cfConformanceStatusIP)
	}
}

// waitRoutes waits until ready holds for Torii's live routing table and
// the routes it has from Ingresses in ns.
func (e *cfEnv) waitRoutes(t *testing.T, ns, what string, ready func(controller.RouteTable, []controller.RouteInfo) bool) {
	t.Helper()
	var last string
	if !cfPoll(cfTimeout, 20*time.Millisecond, func() bool {
		tbl, err := cfRouteTable(e.admin)
		if err != nil {
			last = err.Error()
			return false
		}
		b, _ := json.Marshal(tbl)
		last = string(b)
		return ready(tbl, cfRoutesFrom(tbl, ns))
	}) {
		t.Fatalf("no %s within %v; /debug/routes: %s", what, cfTimeout, last)
	}
}

// do sends one plain HTTP request through Torii; host "" leaves the Host
// header to the client (the listener's address).
func (e *cfEnv) do(t *testing.T, method, host, path string) cfReply {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.http+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	r, err := cfSend(e.client, req)
	if err != nil {
		t.Fatalf("%s %s Host %q: %v", method, path, host, err)
	}
	return r
}

// cfRouteTable fetches Torii's /debug/routes.
func cfRouteTable(admin string) (controller.RouteTable, error) {
	var tbl controller.RouteTable
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + admin + "/debug/routes")
	if err != nil {
		return tbl, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return tbl, fmt.Errorf("GET /debug/routes: %s", resp.Status)
	}
	return tbl, json.NewDecoder(resp.Body).Decode(&tbl)
}

// cfRoutesFrom returns every route (host routes, host defaults, the
// catch-all) that comes from an Ingress in namespace ns.
func cfRoutesFrom(tbl controller.RouteTable, ns string) []controller.RouteInfo {
	var out []controller.RouteInfo
	add := func(r *controller.RouteInfo) {
		if r != nil && strings.HasPrefix(r.Source, "Ingress "+ns+"/") {
			out = append(out, *r)
		}
	}
	for _, h := range tbl.Hosts {
		for i := range h.Routes {
			add(&h.Routes[i])
		}
		add(h.Default)
	}
	add(tbl.CatchAll)
	return out
}

// cfHasHosts reports whether the table has every one of hosts.
func cfHasHosts(tbl controller.RouteTable, hosts ...string) bool {
	for _, want := range hosts {
		if !slices.ContainsFunc(tbl.Hosts, func(h controller.HostRoutes) bool { return h.Host == want }) {
			return false
		}
	}
	return true
}

// cfAllServed reports whether there are n routes and each has exactly
// endpoints endpoints.
func cfAllServed(routes []controller.RouteInfo, n, endpoints int) bool {
	if len(routes) != n {
		return false
	}
	for _, r := range routes {
		if len(r.Backend.Endpoints) != endpoints {
			return false
		}
	}
	return true
}

// cfWantToriiNotFound fails unless r is Torii's own small 404.
func cfWantToriiNotFound(t *testing.T, r cfReply) {
	t.Helper()
	if r.status != http.StatusNotFound || r.echo.Backend != "" || r.header.Get("X-Backend") != "" {
		t.Fatalf("got %d from %q, want Torii's 404", r.status, r.echo.Backend)
	}
	if len(r.body) > 64 || strings.Contains(r.body, "backend") {
		t.Errorf("404 body %q is not Torii's small body", r.body)
	}
}

// cfBackend is an internal/demo echo server on loopback.
type cfBackend struct {
	name string
	port int
}

// cfEcho starts an echo backend named name until the test ends.
func cfEcho(t *testing.T, name string) *cfBackend {
	t.Helper()
	srv := httptest.NewServer(demo.Echo{Name: name})
	t.Cleanup(srv.Close)
	return &cfBackend{name: name, port: srv.Listener.Addr().(*net.TCPAddr).Port}
}

// cfReply is a response through Torii, with the echo backend's report when
// an echo backend answered.
type cfReply struct {
	status int
	proto  string
	header http.Header
	body   string
	tls    *tls.ConnectionState
	echo   demo.Reply // zero when Torii answered itself
}

// cfSend sends req and reads the whole response. A response carrying the
// echo backend's X-Backend header must hold its JSON report.
func cfSend(c *http.Client, req *http.Request) (cfReply, error) {
	resp, err := c.Do(req)
	if err != nil {
		return cfReply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return cfReply{}, fmt.Errorf("read body: %w", err)
	}
	r := cfReply{status: resp.StatusCode, proto: resp.Proto, header: resp.Header, body: string(data), tls: resp.TLS}
	if resp.Header.Get("X-Backend") != "" {
		if err := json.Unmarshal(data, &r.echo); err != nil {
			return r, fmt.Errorf("decode echo reply %q: %w", data, err)
		}
		if r.echo.Backend != resp.Header.Get("X-Backend") {
			return r, fmt.Errorf("echo reply from %q under X-Backend %q", r.echo.Backend, resp.Header.Get("X-Backend"))
		}
	}
	return r, nil
}

// cfTLSClient dials Torii's HTTPS listener whatever the URL's host (so the
// URL's host is the SNI name and the Host header), verifying the
// certificate against roots, offering h2 and http/1.1 or http/1.1 only.
func cfTLSClient(httpsAddr string, roots *x509.CertPool, h2 bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	cfg := &tls.Config{RootCAs: roots}
	if !h2 {
		cfg.NextProtos = []string{"http/1.1"} // offered by ALPN, as browsers do
	}
	tr := &http.Transport{
		TLSClientConfig: cfg,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, httpsAddr)
		},
		ForceAttemptHTTP2: h2,
		DisableKeepAlives: true,
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

// cfSelfSigned returns a self-signed certificate and key for hosts, and a
// pool trusting it.
func cfSelfSigned(t *testing.T, hosts ...string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	c := testcert.SelfSigned(t, hosts[0], hosts...)
	return c.CertPEM, c.KeyPEM, c.Pool
}

// cfCreateNamespace creates namespace ns unless it exists.
func cfCreateNamespace(ctx context.Context, cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// cfCreateService creates a selector-less Service with port 8080 named
// "http", as the conformance suite's echo Services have.
func cfCreateService(ctx context.Context, cs kubernetes.Interface, ns, name string) error {
	_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080),
		}}},
	}, metav1.CreateOptions{})
	return err
}

// cfSetEndpoints makes the endpoints of Service ns/svc (port "http") exactly
// 127.0.0.1 on each of ports: one loopback EndpointSlice per port, named
// <svc>-<i>, written through etcd (the API refuses loopback addresses), and
// any other slice of the Service deleted. Unlike putSlice it returns errors,
// so worker goroutines can call it.
func cfSetEndpoints(ctx context.Context, c *harness.Cluster, ns, svc string, ports ...int) error {
	want := map[string]bool{}
	for i, port := range ports {
		name, p, proto, ready := "http", int32(port), corev1.ProtocolTCP, true
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{
				Name: svc + "-" + strconv.Itoa(i), Namespace: ns,
				Labels: map[string]string{discoveryv1.LabelServiceName: svc},
			},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &p, Protocol: &proto}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		}
		want[es.Name] = true
		if err := c.PutEndpointSlice(ctx, es); err != nil {
			return err
		}
	}
	list, err := c.Client().DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return err
	}
	for _, es := range list.Items {
		if !want[es.Name] {
			if err := c.DeleteEndpointSlice(ctx, ns, es.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// cfPoll calls cond every interval until it holds (true) or timeout passes
// (false).
func cfPoll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}
