package feature

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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/controller"
	"github.com/torii-dev/torii/internal/demo"
	"github.com/torii-dev/torii/internal/server"
	"github.com/torii-dev/torii/internal/testcert"
	"github.com/torii-dev/torii/internal/translate"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

// torii is a running server under test.
type torii struct {
	t     *testing.T
	dir   string
	srv   *server.Server
	http  string // host:port
	https string
	admin string
}

// start writes manifests (file name → YAML) into a fresh directory and runs
// a server on it with loopback listeners on free ports.
func start(t *testing.T, manifests map[string]string, tweak ...func(*server.Config)) *torii {
	t.Helper()
	dir := t.TempDir()
	for name, body := range manifests {
		writeFile(t, dir, name, body)
	}
	cfg := server.Config{
		ManifestDir: dir,
		HTTPAddr:    "127.0.0.1:0",
		HTTPSAddr:   "127.0.0.1:0",
		AdminAddr:   "127.0.0.1:0",
		Translate: translate.Config{
			ControllerName: "torii.dev/ingress-controller",
			IngressClass:   "torii",
		},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       75 * time.Second,
		MaxHeaderBytes:    60 << 10,
		DrainTimeout:      5 * time.Second,
	}
	cfg.Proxy.ConnectTimeout = 2 * time.Second
	cfg.Proxy.ResponseHeaderTimeout = 10 * time.Second
	// TestExternalNameService points an ExternalName at localhost.
	cfg.Proxy.AllowExternalNameLoopback = true
	cfg = fromTestEnv(cfg)
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := server.New(cfg)
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
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("server did not stop within %v", waitTimeout)
		}
	})
	tr := &torii{t: t, dir: dir, srv: srv, http: srv.HTTPAddr().String(), https: srv.HTTPSAddr().String(), admin: srv.AdminAddr().String()}
	tr.waitReady()
	return tr
}

// fromTestEnv applies settings the environment asks the suite to run with:
// TORII_TEST_HTTP1_FAST_PATH=0 serves HTTP/1 with net/http instead of the
// default fast path, so the whole suite also covers that path (hack/test.sh
// runs it both ways).
func fromTestEnv(cfg server.Config) server.Config {
	if os.Getenv("TORII_TEST_HTTP1_FAST_PATH") == "0" {
		cfg.DisableHTTP1FastPath = true
	}
	return cfg
}

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	// Write then rename, as editors and ConfigMap updates do, so the watcher
	// never sees a half-written file.
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func (tr *torii) waitReady() {
	tr.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + tr.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr.t.Fatalf("server not ready within %v", waitTimeout)
}

// routes fetches /debug/routes.
func (tr *torii) routes() controller.RouteTable {
	tr.t.Helper()
	resp, err := http.Get("http://" + tr.admin + "/debug/routes")
	if err != nil {
		tr.t.Fatalf("GET /debug/routes: %v", err)
	}
	defer resp.Body.Close()
	var table controller.RouteTable
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil {
		tr.t.Fatalf("decode /debug/routes: %v", err)
	}
	return table
}

// apply writes a manifest file and waits until a newer snapshot is live.
func (tr *torii) apply(name, body string) {
	tr.t.Helper()
	before := tr.routes().Generation
	writeFile(tr.t, tr.dir, name, body)
	tr.waitGeneration(before)
}

// remove deletes a manifest file and waits until a newer snapshot is live.
func (tr *torii) remove(name string) {
	tr.t.Helper()
	before := tr.routes().Generation
	if err := os.Remove(filepath.Join(tr.dir, name)); err != nil {
		tr.t.Fatal(err)
	}
	tr.waitGeneration(before)
}

func (tr *torii) waitGeneration(after uint64) {
	tr.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if tr.routes().Generation > after {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tr.t.Fatalf("no snapshot newer than generation %d within %v", after, waitTimeout)
}

// backend is a recording echo backend on loopback.
type backend struct {
	name string
	srv  *httptest.Server
	port int
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	srv := httptest.NewServer(demo.Echo{Name: name})
	t.Cleanup(srv.Close)
	return &backend{name: name, srv: srv, port: srv.Listener.Addr().(*net.TCPAddr).Port}
}

// serviceYAML renders a selector-less Service named name whose port 8080
// (named "http") is served by the given backends through one EndpointSlice.
func serviceYAML(namespace, name string, backends ...*backend) string {
	var eps strings.Builder
	for _, b := range backends {
		// One slice per backend port is how Kubernetes groups endpoints by
		// port; every test backend listens on its own port.
		fmt.Fprintf(&eps, `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %s-%d
  namespace: %s
  labels:
    kubernetes.io/service-name: %s
addressType: IPv4
ports:
  - name: http
    port: %d
endpoints:
  - addresses: ["127.0.0.1"]
    conditions:
      ready: true
`, name, b.port, namespace, name, b.port)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: %s
spec:
  ports:
    - name: http
      port: 8080
      targetPort: 8080
%s`, name, namespace, eps.String())
}

// response is a proxied answer, decoded when the echo backend produced it.
type response struct {
	status int
	header http.Header
	body   string
	echo   demo.Reply
	proto  string
}

// servedBy returns the echo backend's name, or "" if Torii answered itself.
func (r response) servedBy() string { return r.echo.Backend }

// client makes requests without connection reuse surprises: a fresh
// transport per torii, keep-alive enabled.
func (tr *torii) client() *http.Client {
	return &http.Client{Timeout: waitTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}

// get sends method to http://<torii>/path with the given Host header.
func (tr *torii) do(c *http.Client, method, host, path string, body io.Reader) response {
	tr.t.Helper()
	req, err := http.NewRequest(method, "http://"+tr.http+path, body)
	if err != nil {
		tr.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	return tr.send(c, req)
}

func (tr *torii) send(c *http.Client, req *http.Request) response {
	tr.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		tr.t.Fatalf("%s %s (Host %s): %v", req.Method, req.URL, req.Host, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		tr.t.Fatalf("read body: %v", err)
	}
	out := response{status: resp.StatusCode, header: resp.Header, body: string(data), proto: resp.Proto}
	if resp.Header.Get("X-Backend") != "" {
		if err := json.Unmarshal(data, &out.echo); err != nil {
			tr.t.Fatalf("decode echo reply %q: %v", data, err)
		}
	}
	return out
}

func (tr *torii) get(host, path string) response {
	tr.t.Helper()
	return tr.do(tr.client(), http.MethodGet, host, path, nil)
}

// selfSignedPEM returns a certificate and key for hosts, and a pool that
// trusts it.
func selfSignedPEM(t *testing.T, hosts ...string) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	c := testcert.SelfSigned(t, hosts[0], hosts...)
	return c.CertPEM, c.KeyPEM, c.Pool
}

// tlsSecretYAML renders a kubernetes.io/tls Secret.
func tlsSecretYAML(namespace, name string, certPEM, keyPEM []byte) string {
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Secret
metadata:
  name: %s
  namespace: %s
type: kubernetes.io/tls
stringData:
  tls.crt: |
%s
  tls.key: |
%s
`, name, namespace, indent(certPEM), indent(keyPEM))
}

// torii class used by most tests.
const classYAML = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: torii
spec:
  controller: torii.dev/ingress-controller
`

// tlsClient dials Torii's HTTPS listener whatever the URL's host, verifying
// the certificate against roots for serverName.
func (tr *torii) tlsClient(roots *x509.CertPool, protos ...string) *http.Client {
	dialer := &net.Dialer{Timeout: waitTimeout}
	tr2 := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, tr.https)
		},
		ForceAttemptHTTP2: len(protos) > 0 && protos[0] == "h2",
	}
	return &http.Client{Timeout: waitTimeout, Transport: tr2}
}
