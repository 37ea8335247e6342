package feature

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/torii-dev/torii/internal/server"
)

func TestDefaultBackendsAndMissingServices(t *testing.T) {
	app, hostDefault, catchAll := newBackend(t, "app"), newBackend(t, "host-default"), newBackend(t, "catch-all")
	tr := start(t, map[string]string{
		"class.yaml": classYAML,
		"services.yaml": serviceYAML("sem", "app", app) + "---\n" + serviceYAML("sem", "host-default", hostDefault) +
			"---\n" + serviceYAML("sem", "catch-all", catchAll) + `---
apiVersion: v1
kind: Service
metadata:
  name: empty
  namespace: sem
spec:
  ports:
    - name: http
      port: 8080
`,
		"ingress.yaml": `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: with-rules
  namespace: sem
spec:
  ingressClassName: torii
  defaultBackend: {service: {name: host-default, port: {number: 8080}}}
  rules:
    - host: a.example
      http:
        paths:
          - {path: /app, pathType: Prefix, backend: {service: {name: app, port: {number: 8080}}}}
          - {path: /ghost, pathType: Prefix, backend: {service: {name: does-not-exist, port: {number: 8080}}}}
          - {path: /empty, pathType: Prefix, backend: {service: {name: empty, port: {number: 8080}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: no-rules
  namespace: sem
spec:
  ingressClassName: torii
  defaultBackend: {service: {name: catch-all, port: {name: http}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: strict-host
  namespace: sem
spec:
  ingressClassName: torii
  rules:
    - host: b.example
      http:
        paths:
          - {path: /only, pathType: Exact, backend: {service: {name: app, port: {number: 8080}}}}
`,
	})
	for _, tc := range []struct {
		host, path, want string
		status           int
	}{
		{"a.example", "/app/x", "app", 200},
		{"a.example", "/other", "host-default", 200}, // the Ingress's own defaultBackend for its hosts
		{"a.example", "/ghost", "", 503},             // Service missing
		{"a.example", "/empty", "", 503},             // no ready endpoints
		{"b.example", "/only", "app", 200},
		{"b.example", "/other", "catch-all", 200}, // unmatched path of a host without its own default
		{"unknown.example", "/", "catch-all", 200},
	} {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			r := tr.get(tc.host, tc.path)
			if r.status != tc.status || r.servedBy() != tc.want {
				t.Fatalf("got %d from %q, want %d from %q", r.status, r.servedBy(), tc.status, tc.want)
			}
		})
	}
	problems := tr.routes().Problems
	if len(problems) != 1 || problems[0].Reason != "ServiceNotFound" || problems[0].Object != "Ingress sem/with-rules" {
		t.Fatalf("problems = %+v, want one ServiceNotFound on Ingress sem/with-rules", problems)
	}
}

func TestExternalNameService(t *testing.T) {
	target := newBackend(t, "external")
	tr := start(t, map[string]string{
		"class.yaml": classYAML,
		"service.yaml": fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: ext
  namespace: sem
spec:
  type: ExternalName
  externalName: localhost
  ports:
    - name: http
      port: %d
`, target.port),
		"ingress.yaml": fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ext
  namespace: sem
spec:
  ingressClassName: torii
  rules:
    - host: ext.example
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: ext, port: {number: %d}}}}
`, target.port),
	})
	if r := tr.get("ext.example", "/x"); r.status != 200 || r.servedBy() != "external" || r.echo.Host != "ext.example" {
		t.Fatalf("got %d from %q with Host %q, want 200 from the ExternalName target with the client's Host", r.status, r.servedBy(), r.echo.Host)
	}
}

func TestConflictLoserIsReportedAndOldestWins(t *testing.T) {
	older, newer := newBackend(t, "older"), newBackend(t, "newer")
	ing := func(name, created, svc string) string {
		return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: sem
  creationTimestamp: "%s"
spec:
  ingressClassName: torii
  rules:
    - host: dup.example
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: %s, port: {number: 8080}}}}
`, name, created, svc)
	}
	tr := start(t, map[string]string{
		"class.yaml":    classYAML,
		"services.yaml": serviceYAML("sem", "older", older) + "---\n" + serviceYAML("sem", "newer", newer),
		// The newer Ingress sorts first by name and file; age must decide.
		"a.yaml": ing("a-newer", "2025-06-01T00:00:00Z", "newer"),
		"b.yaml": ing("b-older", "2024-01-01T00:00:00Z", "older"),
	})
	if r := tr.get("dup.example", "/"); r.servedBy() != "older" {
		t.Fatalf("served by %q, want the oldest Ingress's backend", r.servedBy())
	}
	problems := tr.routes().Problems
	if len(problems) != 1 || problems[0].Reason != "RuleConflict" || problems[0].Object != "Ingress sem/a-newer" ||
		!strings.Contains(problems[0].Message, "sem/b-older") {
		t.Fatalf("problems = %+v, want one RuleConflict on sem/a-newer naming sem/b-older", problems)
	}
}

func TestH2CPriorKnowledge(t *testing.T) {
	b := newBackend(t, "h2c")
	tr := start(t, map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": serviceYAML("live", "h2c", b),
		"ingress.yaml": hostIngressYAML("h2c", "h2c.example", "h2c"),
	})
	c := &http.Client{Timeout: waitTimeout, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	req, _ := http.NewRequest("GET", "http://"+tr.http+"/h2", nil)
	req.Host = "h2c.example"
	r := tr.send(c, req)
	if r.status != 200 || r.servedBy() != "h2c" || r.proto != "HTTP/2.0" || r.echo.Proto != "HTTP/1.1" {
		t.Fatalf("got %d from %q over %s (upstream %s), want 200 from h2c over HTTP/2.0 with HTTP/1.1 upstream", r.status, r.servedBy(), r.proto, r.echo.Proto)
	}
}

func TestBadTLSSecretFallsBackToDefaultCertificate(t *testing.T) {
	b := newBackend(t, "secure")
	goodCert, goodKey, roots := selfSignedPEM(t, "*.wild.example")
	tr := start(t, map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": serviceYAML("sem", "secure", b),
		"secrets.yaml": tlsSecretYAML("sem", "wild", goodCert, goodKey) + "---\n" +
			tlsSecretYAML("sem", "broken", []byte("-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----"), goodKey),
		"ingress.yaml": `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: secure
  namespace: sem
spec:
  ingressClassName: torii
  tls:
    - {hosts: ["*.wild.example"], secretName: wild}
    - {hosts: [broken.example], secretName: broken}
  rules:
    - host: "*.wild.example"
      http:
        paths: [{path: /, pathType: Prefix, backend: {service: {name: secure, port: {number: 8080}}}}]
    - host: broken.example
      http:
        paths: [{path: /, pathType: Prefix, backend: {service: {name: secure, port: {number: 8080}}}}]
`,
	})
	// The wildcard certificate verifies for one label below it.
	req, _ := http.NewRequest("GET", "https://a.wild.example/", nil)
	if r := tr.send(tr.tlsClient(roots), req); r.status != 200 || r.servedBy() != "secure" {
		t.Fatalf("wildcard TLS: got %d from %q", r.status, r.servedBy())
	}
	// The host with a broken Secret still routes, on the default certificate.
	conn, err := tls.Dial("tcp", tr.https, &tls.Config{ServerName: "broken.example", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: broken.example\r\nConnection: close\r\n\r\n")
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if leaf.Subject.CommonName != "Torii Default Certificate" || !strings.Contains(string(reply), `"backend": "secure"`) {
		t.Fatalf("broken secret: certificate %q, reply %q; want the default certificate and a routed request", leaf.Subject.CommonName, reply)
	}
	var reasons []string
	for _, p := range tr.routes().Problems {
		reasons = append(reasons, p.Reason)
	}
	if strings.Join(reasons, ",") != "InvalidSecret" {
		t.Fatalf("problems %v, want exactly InvalidSecret", reasons)
	}
}

func TestRejectEncodedSlashFlag(t *testing.T) {
	b := newBackend(t, "app")
	tr := start(t, map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": serviceYAML("live", "app", b),
		"ingress.yaml": hostIngressYAML("app", "app.example", "app"),
	}, func(c *server.Config) { c.Proxy.RejectEncodedSlash = true })
	if r := tr.get("app.example", "/a%2Fb"); r.status != http.StatusBadRequest || r.servedBy() != "" {
		t.Fatalf("%%2F with --reject-encoded-slash: got %d from %q, want 400 from Torii", r.status, r.servedBy())
	}
	if r := tr.get("app.example", "/a/b"); r.status != 200 {
		t.Fatalf("plain path: got %d", r.status)
	}
}

func TestMetricsCountRequestsAndReloads(t *testing.T) {
	b := newBackend(t, "app")
	tr := start(t, map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": serviceYAML("live", "app", b),
		"ingress.yaml": hostIngressYAML("app", "app.example", "app"),
	})
	for range 3 {
		tr.get("app.example", "/")
	}
	tr.get("nowhere.example", "/")
	want := []string{
		`torii_http_requests_total{class="2xx"} 3`,
		`torii_http_requests_total{class="4xx"} 1`,
		`torii_config_last_reload_successful 1`,
		`torii_config_generation 1`,
		`torii_routes 1`,
	}
	// A request is counted once its answer is written, so the client can
	// read the last answer a moment before it is counted: poll.
	var missing []string
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(5 * time.Millisecond) {
		resp, err := http.Get("http://" + tr.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, line := range want {
			if !strings.Contains(string(body), "\n"+line+"\n") {
				missing = append(missing, line)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, line := range missing {
		t.Errorf("metrics lack %q", line)
	}
}

func TestDefaultSSLCertificateFromSecret(t *testing.T) {
	certPEM, keyPEM, roots := selfSignedPEM(t, "fallback.example")
	tr := start(t, map[string]string{
		"class.yaml":  classYAML,
		"secret.yaml": tlsSecretYAML("torii", "default-cert", certPEM, keyPEM),
	}, func(c *server.Config) { c.DefaultSSLCertificate = "torii/default-cert" })
	conn, err := tls.Dial("tcp", tr.https, &tls.Config{ServerName: "fallback.example", RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake with an unknown SNI did not verify against the --default-ssl-certificate Secret: %v", err)
	}
	conn.Close()
}
