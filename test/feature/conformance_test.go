package feature

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/torii-dev/torii/test/conformance"
)

// These tests replay the scenarios of the kubernetes-sigs
// ingress-controller-conformance features (default backend, host rules, path
// rules, ingress class, load balancing) with the objects given to
// `torii serve --manifests` and backends as selector-less Services plus
// EndpointSlices.

func TestConformanceDefaultBackend(t *testing.T) {
	echo := newBackend(t, "echo-service")
	tr := start(t, map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": serviceYAML("conformance", "echo-service", echo),
		"ingress.yaml": ingressYAML("default-backend", conformance.DefaultBackendSpec),
	})
	c := tr.client()
	for _, tc := range conformance.DefaultBackendCases {
		t.Run(tc.Method+" "+tc.Host+tc.Path, func(t *testing.T) {
			r := tr.do(c, tc.Method, tc.Host, tc.Path, nil)
			if r.status != http.StatusOK || r.servedBy() != "echo-service" {
				t.Fatalf("got %d served by %q, want 200 from echo-service", r.status, r.servedBy())
			}
			if r.proto != "HTTP/1.1" || r.echo.Proto != "HTTP/1.1" {
				t.Errorf("response proto %q, request proto at backend %q; want HTTP/1.1 both", r.proto, r.echo.Proto)
			}
			for _, h := range []string{"Content-Length", "Content-Type", "Date", "Server"} {
				if r.header.Get(h) == "" {
					t.Errorf("response header %s missing", h)
				}
			}
			if r.echo.Method != tc.Method || r.echo.Path != tc.Path {
				t.Errorf("backend saw %s %s, want %s %s", r.echo.Method, r.echo.Path, tc.Method, tc.Path)
			}
			if ua := r.echo.Headers["User-Agent"]; len(ua) != 1 || ua[0] != "Go-http-client/1.1" {
				t.Errorf("backend saw User-Agent %q, want the client's Go-http-client/1.1", ua)
			}
		})
	}
}

func TestConformanceHostRules(t *testing.T) {
	wildcard := newBackend(t, "wildcard-foo-com")
	foobar := newBackend(t, "foo-bar-com")
	certPEM, keyPEM, roots := selfSignedPEM(t, "foo.bar.com")
	tr := start(t, map[string]string{
		"class.yaml":    classYAML,
		"services.yaml": serviceYAML("conformance", "wildcard-foo-com", wildcard) + "---\n" + serviceYAML("conformance", "foo-bar-com", foobar),
		"secret.yaml":   tlsSecretYAML("conformance", "conformance-tls", certPEM, keyPEM),
		"ingress.yaml":  ingressYAML("host-rules", conformance.HostRulesSpec),
	})

	t.Run("TLS to matching host verifies the certificate", func(t *testing.T) {
		for _, proto := range []string{"http/1.1", "h2"} {
			c := tr.tlsClient(roots, proto)
			req, _ := http.NewRequest("GET", "https://foo.bar.com/", nil)
			r := tr.send(c, req)
			if r.status != 200 || r.servedBy() != "foo-bar-com" || r.echo.Host != "foo.bar.com" {
				t.Fatalf("%s: got %d from %q host %q, want 200 from foo-bar-com with host foo.bar.com", proto, r.status, r.servedBy(), r.echo.Host)
			}
			if want := map[string]string{"http/1.1": "HTTP/1.1", "h2": "HTTP/2.0"}[proto]; r.proto != want {
				t.Errorf("negotiated %s, want %s", r.proto, want)
			}
			if got := r.echo.Headers["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "https" {
				t.Errorf("X-Forwarded-Proto = %q, want https", got)
			}
		}
	})
	t.Run("unknown SNI gets the default certificate", func(t *testing.T) {
		conn, err := tls.Dial("tcp", tr.https, &tls.Config{ServerName: "unknown.example", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		leaf := conn.ConnectionState().PeerCertificates[0]
		if leaf.VerifyHostname("foo.bar.com") == nil {
			t.Fatalf("unknown SNI was served the foo.bar.com certificate (subject %q)", leaf.Subject)
		}
	})
	for _, tc := range []struct {
		host, want string
		status     int
	}{
		{"foo.bar.com", "foo-bar-com", 200},
		{"subdomain.bar.com", "", 404},
		{"bar.foo.com", "wildcard-foo-com", 200},
		{"baz.bar.foo.com", "", 404},
		{"foo.com", "", 404},
		{"FOO.BAR.COM:8080", "foo-bar-com", 200},
	} {
		t.Run("http "+tc.host, func(t *testing.T) {
			r := tr.get(tc.host, "/")
			if r.status != tc.status || r.servedBy() != tc.want {
				t.Fatalf("got %d from %q, want %d from %q", r.status, r.servedBy(), tc.status, tc.want)
			}
			if tc.want != "" && r.echo.Host != tc.host {
				t.Errorf("backend saw Host %q, want %q unchanged", r.echo.Host, tc.host)
			}
			if tc.status == 404 && (strings.Contains(r.body, "backend") || len(r.body) > 64) {
				t.Errorf("404 body %q is not Torii's small body", r.body)
			}
		})
	}
}

func TestConformancePathRules(t *testing.T) {
	names := conformance.PathRulesBackends
	var services strings.Builder
	for _, n := range names {
		fmt.Fprintf(&services, "%s---\n", serviceYAML("conformance", n, newBackend(t, n)))
	}
	tr := start(t, map[string]string{
		"class.yaml":    classYAML,
		"services.yaml": services.String(),
		"ingress.yaml":  ingressYAML("path-rules", conformance.PathRulesSpec),
	})
	for _, tc := range conformance.PathRulesCases {
		t.Run(tc.Host+tc.Path, func(t *testing.T) {
			r := tr.get(tc.Host, tc.Path)
			if tc.Want == "" {
				if r.status != http.StatusNotFound || r.servedBy() != "" {
					t.Fatalf("got %d from %q, want Torii's 404", r.status, r.servedBy())
				}
				return
			}
			if r.status != 200 || r.servedBy() != tc.Want {
				t.Fatalf("got %d from %q, want 200 from %q", r.status, r.servedBy(), tc.Want)
			}
			if r.echo.Path != tc.Path {
				t.Errorf("backend saw path %q, want %q", r.echo.Path, tc.Path)
			}
		})
	}
}

func TestConformanceIngressClass(t *testing.T) {
	b := newBackend(t, "ingress-class-prefix")
	tr := start(t, map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": serviceYAML("conformance", "ingress-class-prefix", b),
		"ingress.yaml": ingressYAML("test-ingress-class", conformance.IngressClassSpec),
	})
	if r := tr.get("ingress-class", "/"); r.status != http.StatusNotFound || r.servedBy() != "" {
		t.Fatalf("foreign-class Ingress served: got %d from %q", r.status, r.servedBy())
	}
	table := tr.routes()
	if len(table.Hosts) != 0 || len(table.Problems) != 0 {
		t.Fatalf("foreign-class Ingress left traces in the routing table: %+v", table)
	}
}

func TestConformanceLoadBalancing(t *testing.T) {
	var pods []*backend
	for i := range 10 {
		pods = append(pods, newBackend(t, fmt.Sprintf("echo-service-pod-%d", i)))
	}
	tr := start(t, map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": serviceYAML("conformance", "echo-service", pods...),
		"ingress.yaml": ingressYAML("load-balancing", conformance.DefaultBackendSpec),
	})
	c := tr.client()
	seen := map[string]int{}
	for range 100 {
		r := tr.do(c, "GET", "load-balancing", "/", nil)
		if r.status != 200 {
			t.Fatalf("status %d, want 200", r.status)
		}
		seen[r.servedBy()]++
	}
	if len(seen) != 10 {
		t.Fatalf("100 requests reached %d distinct endpoints, want all 10: %v", len(seen), seen)
	}
	for name, n := range seen {
		if n != 10 {
			t.Errorf("round-robin uneven: %s got %d of 100", name, n)
		}
	}
}

// ingressYAML is the manifest of the Ingress name in namespace conformance
// with spec (YAML, from "spec:").
func ingressYAML(name, spec string) string {
	return "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " + name + "\n  namespace: conformance\n" + spec
}
