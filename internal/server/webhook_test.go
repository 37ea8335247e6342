package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/torii-dev/torii/internal/apis/toriiv1alpha1"
	"github.com/torii-dev/torii/internal/dedicated"
	"github.com/torii-dev/torii/internal/source/dir"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
	"github.com/torii-dev/torii/internal/webhook"
	"github.com/torii-dev/torii/internal/webhook/certs"
)

const webhookManifests = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: torii}
spec: {controller: torii.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: old, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: torii
  rules:
    - host: shop.example
      http:
        paths:
          - {path: /api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`

func testServerConfig(dir string) Config {
	return Config{
		ManifestDir: dir,
		HTTPAddr:    "127.0.0.1:0",
		Translate:   translate.Config{ControllerName: "torii.dev/ingress-controller", IngressClass: "torii"},
	}
}

func TestWebhookConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name string
		cfg  WebhookConfig
		want string
	}{
		{"flags without address", WebhookConfig{CertSecret: "ns/name"}, "need --webhook-addr"},
		{"no certificate", WebhookConfig{Addr: "127.0.0.1:0"}, "needs a certificate"},
		{"both sources", WebhookConfig{Addr: "127.0.0.1:0", CertSecret: "ns/name", CertFile: "a", KeyFile: "b"}, "exclusive"},
		{"cert without key", WebhookConfig{Addr: "127.0.0.1:0", CertFile: "a"}, "go together"},
		{"secret without Kubernetes", WebhookConfig{Addr: "127.0.0.1:0", CertSecret: "ns/name", ConfigName: "torii"}, "needs Kubernetes mode"},
		{"missing files", WebhookConfig{Addr: "127.0.0.1:0", CertFile: filepath.Join(dir, "no.crt"), KeyFile: filepath.Join(dir, "no.key")}, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testServerConfig(dir)
			cfg.Webhook = tt.cfg
			wantNewError(t, cfg, tt.want)
		})
	}
}

func canceledContext() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// wantNewError checks that New(cfg) fails with an error mentioning want.
func wantNewError(t *testing.T, cfg Config, want string) {
	t.Helper()
	srv, err := New(cfg)
	if err == nil {
		_ = srv.listeners.Serve(canceledContext())
		t.Fatal("New succeeded")
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q, want it to mention %q", err, want)
	}
}

// newManifestWebhookServer builds a server over webhookManifests with the
// webhook serving a fresh certificate for 127.0.0.1 from files; it returns
// the server (not yet running) and the certificate bundle.
func newManifestWebhookServer(t *testing.T) (*Server, certs.Bundle) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "all.yaml"), []byte(webhookManifests), 0o644); err != nil {
		t.Fatal(err)
	}
	bundle, err := certs.Generate([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	certFile, keyFile := filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key")
	for name, data := range map[string][]byte{certFile: bundle.Cert, keyFile: bundle.Key} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testServerConfig(dir)
	cfg.Webhook = WebhookConfig{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, bundle
}

// TestWebhookManifestMode runs the webhook with certificate files against
// the manifest directory's objects.
func TestWebhookManifestMode(t *testing.T) {
	srv, bundle := newManifestWebhookServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(bundle.CACert)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"e2e-1",
"kind":{"group":"networking.k8s.io","version":"v1","kind":"Ingress"},
"resource":{"group":"networking.k8s.io","version":"v1","resource":"ingresses"},
"namespace":"shop","name":"new","operation":"CREATE",
"object":{"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"name":"new","namespace":"shop"},
"spec":{"ingressClassName":"torii","rules":[{"host":"shop.example","http":{"paths":[{"path":"/api","pathType":"Prefix",
"backend":{"service":{"name":"web","port":{"number":80}}}}]}}]}}}}`
	resp, err := client.Post("https://"+srv.WebhookAddr().String()+webhook.Path, "application/json", bytes.NewReader([]byte(review)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	if out.Response.UID != "e2e-1" || out.Response.Allowed || !strings.Contains(out.Response.Result.Message, "RuleConflict") ||
		!strings.Contains(out.Response.Result.Message, "shop/old") {
		t.Errorf("response %+v %+v, want a conflict with shop/old", out.Response, out.Response.Result)
	}
}

func TestWebhookFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"with --only-ingress", func(c *Config) { c.Kube.OnlyIngresses = []string{"shop/web"} }, "--webhook-addr and --only-ingress are exclusive"},
		{"with --only-ingress-class", func(c *Config) { c.Kube.OnlyIngressClass = "dedicated" }, "--webhook-addr and --only-ingress are exclusive"},
		{"timeout too long", func(c *Config) { c.Webhook.Timeout = 30 * time.Second }, "--webhook-timeout"},
		{"negative timeout", func(c *Config) { c.Webhook.Timeout = -time.Second }, "--webhook-timeout"},
		{"negative concurrency", func(c *Config) { c.Webhook.MaxConcurrent = -1 }, "--webhook-max-concurrent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testServerConfig(dir)
			cfg.Webhook = WebhookConfig{Addr: "127.0.0.1:0", CertFile: "a", KeyFile: "b"}
			tt.mutate(&cfg)
			wantNewError(t, cfg, tt.want)
		})
	}
}

// TestWebhookReadiness: with the webhook enabled, readiness waits for a
// serving certificate as well as for the snapshot.
func TestWebhookReadiness(t *testing.T) {
	srv, _ := newManifestWebhookServer(t)
	defer srv.closeWebhook()
	defer func() { _ = srv.listeners.Serve(canceledContext()) }()
	if !srv.Ready() {
		t.Fatal("not ready with a snapshot and a certificate")
	}
	// The same server before its first certificate (as with
	// --webhook-cert-secret until the Secret is read).
	served := srv.webhook.holder
	srv.webhook.holder = &certs.Holder{}
	if srv.Ready() {
		t.Error("ready although the webhook has no certificate to serve")
	}
	srv.webhook.holder = served
	if !srv.Ready() {
		t.Error("not ready once the certificate is back")
	}
}

// dedicatedObjects: class "torii" (shared) and class "dedicated", whose
// IngressClassConfig says mode Dedicated; Service shop/web; and the
// existing Ingresses.
const dedicatedObjects = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: torii}
spec: {controller: torii.dev/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: dedicated}
spec:
  controller: torii.dev/ingress-controller
  parameters: {apiGroup: torii.dev, kind: IngressClassConfig, name: dedicated}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shared, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: torii
  rules:
    - host: shop.example
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: own-a, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: dedicated
  rules:
    - host: shop.example
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: store-1
  namespace: shop
  creationTimestamp: "2024-01-01T00:00:00Z"
  annotations: {torii.dev/group: store}
spec:
  ingressClassName: dedicated
  rules:
    - host: store.example
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`

func dedicatedConfigs() dedicated.Configs {
	c := &toriiv1alpha1.IngressClassConfig{ObjectMeta: metav1.ObjectMeta{Name: "dedicated"}, Spec: toriiv1alpha1.IngressClassConfigSpec{Mode: toriiv1alpha1.ModeDedicated}}
	c.Default()
	return dedicated.Configs{Valid: map[string]*toriiv1alpha1.IngressClassConfig{"dedicated": c}, Invalid: map[string]error{}}
}

// TestWebhookDedicatedPartition: in dedicated mode an Ingress conflicts
// only with the Ingresses served by the same load balancer: two dedicated
// Ingresses, or a shared and a dedicated one, may route the same host and
// path; two of one group, or two shared ones, may not.
func TestWebhookDedicatedPartition(t *testing.T) {
	m, err := dir.Decode([]byte(dedicatedObjects))
	if err != nil {
		t.Fatal(err)
	}
	objs := &m.Objects
	tcfg := testServerConfig("").Translate
	view := func() (*store.Objects, bool) { return objs, true }
	partitioned := webhook.NewHandler(webhook.Config{Translate: tcfg, View: view, Partition: dedicatedPartition(tcfg, dedicatedConfigs)})
	whole := webhook.NewHandler(webhook.Config{Translate: tcfg, View: view})

	cand := func(name, class, host, group string) *networkingv1.Ingress {
		ing := &networkingv1.Ingress{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: networkingv1.IngressSpec{IngressClassName: &class, Rules: []networkingv1.IngressRule{{Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: ptrTo(networkingv1.PathTypePrefix),
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "other", Port: networkingv1.ServiceBackendPort{Number: 80}}},
				}}}}}}},
		}
		if group != "" {
			ing.Annotations = map[string]string{dedicated.AnnotationGroup: group}
		}
		return ing
	}
	for _, tt := range []struct {
		name     string
		ing      *networkingv1.Ingress
		allowed  bool
		conflict string // the Ingress named in the denial
	}{
		{"dedicated next to a dedicated one", cand("own-b", "dedicated", "shop.example", ""), true, ""},
		{"dedicated next to a shared one", cand("own-c", "dedicated", "shop.example", "other-group"), true, ""},
		{"shared next to dedicated ones", cand("store-shared", "torii", "store.example", ""), true, ""},
		{"shared next to a shared one", cand("shared-2", "torii", "shop.example", ""), false, "shop/shared"},
		{"two of one group", cand("store-2", "dedicated", "store.example", "store"), false, "shop/store-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := webhookReview(t, partitioned, tt.ing)
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed %v, want %v: %+v", resp.Allowed, tt.allowed, resp.Result)
			}
			if !tt.allowed && (!strings.Contains(resp.Result.Message, "RuleConflict") || !strings.Contains(resp.Result.Message, "Ingress "+tt.conflict)) {
				t.Errorf("denial %q, want a RuleConflict with %s", resp.Result.Message, tt.conflict)
			}
			if tt.allowed {
				// Over the whole view, as before the partition, the same
				// candidate was refused.
				if resp := webhookReview(t, whole, tt.ing); resp.Allowed {
					t.Error("the whole view admits it too: the case proves nothing")
				}
			}
		})
	}
}

// TestWebhookUnitViewMatchesTheController: the webhook judges a dedicated
// unit over the view unitProblems translates it with, so the two report
// the same problems.
func TestWebhookUnitViewMatchesTheController(t *testing.T) {
	m, err := dir.Decode([]byte(dedicatedObjects + `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: store-2
  namespace: shop
  creationTimestamp: "2025-01-01T00:00:00Z"
  annotations: {torii.dev/group: store}
spec:
  ingressClassName: dedicated
  tls: [{hosts: [store.example], secretName: missing}]
  rules:
    - host: store.example
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
          - {path: /gone, pathType: Prefix, backend: {service: {name: gone, port: {number: 80}}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	objs := &m.Objects
	for _, ing := range objs.Ingresses {
		ing.UID = types.UID("uid-" + ing.Name)
	}
	tcfg := testServerConfig("").Translate
	plan := dedicated.BuildPlan(tcfg, objs, dedicatedConfigs())
	var controller []string
	for _, p := range unitProblems(tcfg, objs, plan) {
		controller = append(controller, p.Object.Name+" "+p.Reason+": "+p.Message)
	}
	var hook []string
	for _, u := range plan.Units {
		for _, p := range translate.Build(tcfg, unitView(objs, u.Namespace, u.Class, u.Ingresses)).Problems {
			hook = append(hook, p.Object.Name+" "+p.Reason+": "+p.Message)
		}
	}
	slices.Sort(controller)
	slices.Sort(hook)
	if len(controller) < 3 || !slices.Equal(controller, hook) {
		t.Errorf("problems differ\ncontroller %q\nwebhook    %q", controller, hook)
	}
	// The unit view holds what the unit references and nothing more: the
	// missing Secret and Service are reported, not found elsewhere.
	for _, want := range []string{"store-2 SecretNotFound", "store-2 ServiceNotFound"} {
		if !slices.ContainsFunc(controller, func(p string) bool { return strings.HasPrefix(p, want+":") }) {
			t.Errorf("no %q among %q", want, controller)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// webhookReview sends a CREATE of ing to h.
func webhookReview(t *testing.T, h http.Handler, ing *networkingv1.Ingress) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(ing)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "uid",
			Kind:      metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"},
			Resource:  metav1.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
			Operation: admissionv1.Create, Namespace: ing.Namespace, Name: ing.Name,
			Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("status %d, %q: %v", rec.Code, rec.Body.String(), err)
	}
	return out.Response
}
