package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/torii-dev/torii/internal/server"
	"github.com/torii-dev/torii/internal/translate"
	"github.com/torii-dev/torii/test/e2e/harness"
)

const (
	// whNamespace holds the Ingresses under review. The rest are the names
	// deploy/torii.yaml uses, whose RBAC Torii runs with here.
	whNamespace = "wh-shop"
	whSystem    = "torii-system"
	whConfig    = "torii"
	whSecret    = "torii-webhook-cert"
	whAccount   = "system:serviceaccount:torii-system:torii"
	whManifests = "../../deploy/torii.yaml"
)

// whWarnings collects the warnings the API server returns (kubectl prints
// them as "Warning: ...").
type whWarnings struct {
	mu   sync.Mutex
	list []string
}

func (w *whWarnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns the warnings so far and forgets them.
func (w *whWarnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// whIngress is an Ingress of class torii in whNamespace routing host/path
// to Service web.
func whIngress(name, host, path string, pathType networkingv1.PathType, svc string) *networkingv1.Ingress {
	class := "torii"
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: whNamespace},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: path, PathType: &pathType, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: svc, Port: networkingv1.ServiceBackendPort{Number: 80}},
				}}},
			}}}},
		},
	}
}

// whWebhookConfiguration calls the webhook by URL on loopback, where the
// API server can reach it, for Ingresses in whNamespace only.
func whWebhookConfiguration(addr string) *admissionregistrationv1.ValidatingWebhookConfiguration {
	url := "https://" + addr + "/validate/ingress"
	fail, none, equivalent := admissionregistrationv1.Fail, admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Equivalent
	timeout := int32(5)
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: whConfig},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "validate.ingress.torii.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			MatchPolicy:             &equivalent,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{whNamespace},
			}}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"networking.k8s.io"}, APIVersions: []string{"v1"}, Resources: []string{"ingresses"},
				},
			}},
		}},
	}
}

// TestWebhook runs Torii with the admission webhook and certificate
// bootstrap against a real API server, as the ServiceAccount of
// deploy/torii.yaml with exactly that file's RBAC: the certificate Secret is
// created and the CA bundle patched in, the API server calls the webhook,
// invalid and conflicting Ingresses are refused with their reason, valid ones
// are admitted, warnings reach the client, another class's Ingress is left
// alone, and an injection payload in an ingress-nginx annotation is admitted
// but inert.
func TestWebhook(t *testing.T) {
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
	mustCreate(t, func() error {
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: whSystem}}, metav1.CreateOptions{})
		return err
	})
	whApplyRBAC(t, ctx, cs)
	backend := echoBackend(t, "shop")
	createNamespaceAndService(t, ctx, c, whNamespace, "web", backend)

	// Torii binds its listeners in New: the webhook's port is known before
	// it runs, and goes into the configuration the API server reads.
	srv := whStartTorii(t, c, func(srv *server.Server) {
		mustCreate(t, func() error {
			_, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, whWebhookConfiguration(srv.WebhookAddr().String()), metav1.CreateOptions{})
			return err
		})
	})

	t.Run("certificate bootstrap", func(t *testing.T) {
		var sec *corev1.Secret
		eventually(t, "the certificate Secret and the caBundle", func() bool {
			var err error
			if sec, err = cs.CoreV1().Secrets(whSystem).Get(ctx, whSecret, metav1.GetOptions{}); err != nil {
				return false
			}
			vwc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, whConfig, metav1.GetOptions{})
			return err == nil && bytes.Equal(vwc.Webhooks[0].ClientConfig.CABundle, sec.Data["ca.crt"])
		})
		if sec.Type != corev1.SecretTypeTLS || len(sec.Data["tls.crt"]) == 0 || len(sec.Data["tls.key"]) == 0 {
			t.Fatalf("Secret %s/%s: type %s, %d keys", whSystem, whSecret, sec.Type, len(sec.Data))
		}
		block, _ := pem.Decode(sec.Data["tls.crt"])
		if block == nil {
			t.Fatal("tls.crt holds no PEM block")
		}
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		// The Service name is derived from the Secret's (no -cert).
		if !slices.Contains(leaf.DNSNames, "torii-webhook.torii-system.svc") || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
			t.Errorf("certificate names %v %v", leaf.DNSNames, leaf.IPAddresses)
		}
	})

	t.Run("least privilege", func(t *testing.T) {
		// What the identity Torii ran as (the RBAC of deploy/torii.yaml,
		// which sufficed) may do with Secrets and webhook configurations:
		// get and update its own Secret, and no other by name; create
		// Secrets in its namespace; list and watch Secrets (the
		// ClusterRole's rule for TLS certificates: RBAC cannot narrow it to
		// type kubernetes.io/tls, Torii's informer does, with a field
		// selector); get and patch its own webhook configuration, and
		// nothing else about webhook configurations.
		mustCreate(t, func() error {
			_, err := cs.CoreV1().Secrets(whSystem).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{})
			return err
		})
		sa, err := kubernetes.NewForConfig(c.ImpersonatingConfig(whAccount, "system:serviceaccounts", "system:serviceaccounts:"+whSystem, "system:authenticated"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sa.CoreV1().Secrets(whSystem).Get(ctx, whSecret, metav1.GetOptions{}); err != nil {
			t.Errorf("get own Secret: %v", err)
		}
		other, err := cs.CoreV1().Secrets(whSystem).Get(ctx, "other", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sa.CoreV1().Secrets(whSystem).Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("get another Secret by name: %v, want Forbidden", err)
		}
		if _, err := sa.CoreV1().Secrets(whSystem).Update(ctx, other, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("update another Secret: %v, want Forbidden", err)
		}
		if err := sa.CoreV1().Secrets(whSystem).Delete(ctx, whSecret, metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("delete own Secret: %v, want Forbidden", err)
		}
		// Listing is granted, cluster-wide: the TLS-certificate rule.
		if _, err := sa.CoreV1().Secrets(whSystem).List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("list Secrets: %v; the ClusterRole grants list/watch for TLS certificates", err)
		}
		if _, err := sa.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, whConfig, metav1.GetOptions{}); err != nil {
			t.Errorf("get own webhook configuration: %v", err)
		}
		if _, err := sa.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("list webhook configurations: %v, want Forbidden", err)
		}
		if _, err := sa.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("get another webhook configuration: %v, want Forbidden", err)
		}
	})

	warnings := &whWarnings{}
	rc := c.RESTConfig()
	rc.WarningHandler = warnings
	wcs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	ingresses := wcs.NetworkingV1().Ingresses(whNamespace)

	// The payload of CVE-2025-24514-style injections; the API server's
	// own validation accepts this path, Torii's does not.
	badPath := "/x\n}\nlocation /evil { return 200; }\n#"

	t.Run("invalid Ingress refused with its reason", func(t *testing.T) {
		eventually(t, "Torii ready (caches synced)", srv.Ready)
		var last error
		// Until the API server has the configuration and trusts the
		// certificate, creates fail to call the webhook (failurePolicy
		// Fail) or, before the configuration, succeed.
		eventually(t, "the webhook to refuse the invalid path", func() bool {
			_, last = ingresses.Create(ctx, whIngress("bad-path", "shop.example", badPath, networkingv1.PathTypePrefix, "web"), metav1.CreateOptions{})
			if last == nil {
				_ = ingresses.Delete(ctx, "bad-path", metav1.DeleteOptions{})
				return false
			}
			return strings.Contains(last.Error(), "denied the request")
		})
		msg := last.Error()
		for _, want := range []string{`admission webhook "validate.ingress.torii.dev" denied the request`, "Ingress wh-shop/bad-path", "InvalidPath",
			`spec.rules[0].http.paths[0].path "/x\n}\nlocation /evil { return 200; }\n#": character '\n' is not allowed in a path`} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q lacks %q", msg, want)
			}
		}
		t.Logf("refused: %v", last)

		// An unknown Torii annotation is refused too.
		ing := whIngress("bad-annotation", "shop.example", "/a", networkingv1.PathTypePrefix, "web")
		ing.Annotations = map[string]string{"torii.dev/rewrite-target": "/"}
		if _, err := ingresses.Create(ctx, ing, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), `UnknownAnnotation: metadata.annotations["torii.dev/rewrite-target"]`) {
			t.Errorf("unknown annotation: %v", err)
		}
	})

	t.Run("valid Ingress admitted and served", func(t *testing.T) {
		warnings.take()
		if _, err := ingresses.Create(ctx, whIngress("shop", "shop.example", "/", networkingv1.PathTypePrefix, "web"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("warnings for a clean Ingress: %q", w)
		}
		eventually(t, "the route", func() bool {
			code, body := get(srv.HTTPAddr().String(), "shop.example", "/")
			return code == 200 && body == "shop"
		})
		// An update of its labels is admitted; one that breaks it is not.
		ing, err := ingresses.Get(ctx, "shop", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ing.Labels = map[string]string{"team": "shop"}
		if ing, err = ingresses.Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("label update: %v", err)
		}
		ing.Spec.Rules[0].HTTP.Paths[0].Path = "/a b"
		if _, err := ingresses.Update(ctx, ing, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "InvalidPath") {
			t.Errorf("breaking update: %v", err)
		}
	})

	t.Run("conflict with an older Ingress refused", func(t *testing.T) {
		_, err := ingresses.Create(ctx, whIngress("copycat", "shop.example", "/", networkingv1.PathTypePrefix, "web"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "RuleConflict") || !strings.Contains(err.Error(), "Ingress wh-shop/shop") {
			t.Fatalf("conflicting create: %v", err)
		}
	})

	t.Run("warnings surface", func(t *testing.T) {
		warnings.take()
		if _, err := ingresses.Create(ctx, whIngress("later", "later.example", "/", networkingv1.PathTypePrefix, "not-yet"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		w := warnings.take()
		if len(w) != 1 || !strings.Contains(w[0], `ServiceNotFound: spec.rules[0].http.paths[0].backend.service.name "not-yet": Service wh-shop/not-yet not found`) {
			t.Errorf("warnings %q, want the missing Service", w)
		}
	})

	t.Run("injection payload in an nginx annotation is inert or denied", func(t *testing.T) {
		// CVE-2025-24514: auth-url is access control Torii does not
		// enforce yet, so the Ingress is refused rather than served open.
		warnings.take()
		ing := whIngress("nightmare-auth", "nightmare.example", "/", networkingv1.PathTypePrefix, "web")
		ing.Annotations = map[string]string{
			"nginx.ingress.kubernetes.io/auth-url": "http://example.com/#;\n}\n}\nload_module /tmp/evil.so;\n#",
		}
		_, err := ingresses.Create(ctx, ing, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "UnsupportedAccessControlAnnotation") || !strings.Contains(err.Error(), "auth-url") {
			t.Fatalf("create with auth-url: err = %v, want a denial naming UnsupportedAccessControlAnnotation and auth-url", err)
		}
		// A rewrite-target payload is ignored (warned about) and inert.
		warnings.take()
		ing = whIngress("nightmare", "nightmare.example", "/", networkingv1.PathTypePrefix, "web")
		ing.Annotations = map[string]string{
			"nginx.ingress.kubernetes.io/rewrite-target": "/$1\";\n}\nlocation /evil { return 200 'evil'; }\n#",
		}
		if _, err := ingresses.Create(ctx, ing, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if w := warnings.take(); len(w) != 1 || !strings.Contains(w[0], `UnsupportedAnnotation: metadata.annotations: nginx.ingress.kubernetes.io annotations are not supported yet and are ignored: "rewrite-target"`) {
			t.Errorf("warnings %q", w)
		}
		// Served plainly: no rewrite, no extra location.
		eventually(t, "the route", func() bool {
			code, body := get(srv.HTTPAddr().String(), "nightmare.example", "/evil")
			return code == 200 && body == "shop"
		})
	})

	t.Run("another class is not Torii's business", func(t *testing.T) {
		ing := whIngress("theirs", "shop.example", badPath, networkingv1.PathTypePrefix, "nope")
		other := "someone-else"
		ing.Spec.IngressClassName = &other
		warnings.take()
		if _, err := ingresses.Create(ctx, ing, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create of another class's Ingress: %v", err)
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("warnings for another class's Ingress: %q", w)
		}
	})

	t.Run("a lost caBundle is repaired", func(t *testing.T) {
		// As when the configuration is re-applied without it: the next
		// check (CheckInterval, shortened here) puts the CA back.
		vwcs := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
		vwc, err := vwcs.Get(ctx, whConfig, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		vwc.Webhooks[0].ClientConfig.CABundle = nil
		if _, err := vwcs.Update(ctx, vwc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		sec, err := cs.CoreV1().Secrets(whSystem).Get(ctx, whSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "the caBundle repaired", func() bool {
			vwc, err := vwcs.Get(ctx, whConfig, metav1.GetOptions{})
			return err == nil && bytes.Equal(vwc.Webhooks[0].ClientConfig.CABundle, sec.Data["ca.crt"])
		})
	})
}

// whStartTorii runs Torii in Kubernetes mode with the webhook and
// certificate bootstrap; beforeRun sees the bound server before it runs.
func whStartTorii(t *testing.T, c *harness.Cluster, beforeRun func(*server.Server)) *server.Server {
	t.Helper()
	// As the ServiceAccount, with the groups the API server gives it.
	kubeconfig := filepath.Join(t.TempDir(), "torii.kubeconfig")
	if err := harness.WriteKubeconfig(kubeconfig, c.ImpersonatingConfig(whAccount,
		"system:serviceaccounts", "system:serviceaccounts:"+whSystem, "system:authenticated")); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{
		HTTPAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Kube: server.KubeConfig{
			Kubeconfig: kubeconfig, ElectionNamespace: whSystem, ElectionID: "torii-leader",
			PublishStatusAddress: []string{"203.0.113.9"},
			LeaseDuration:        2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 100 * time.Millisecond,
		},
		Translate: translate.Config{ControllerName: "torii.dev/ingress-controller", IngressClass: "torii"},
		// The flags of deploy/torii.yaml, but the Service name derived
		// from the Secret's.
		Webhook: server.WebhookConfig{
			Addr:       "127.0.0.1:0",
			CertSecret: whSystem + "/" + whSecret,
			ConfigName: whConfig,
			// Called by URL on loopback: the certificate must name it.
			Hosts: []string{"127.0.0.1"},
			// Re-check every half second, not every minute, so that a
			// lost caBundle is seen repaired within the test.
			CheckInterval: 500 * time.Millisecond,
		},
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 75 * time.Second, MaxHeaderBytes: 60 << 10,
		DrainTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if _, ok := srv.WebhookAddr().(*net.TCPAddr); !ok {
		t.Fatalf("webhook address %v", srv.WebhookAddr())
	}
	beforeRun(srv)
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
			t.Errorf("Torii did not stop within %v", waitTimeout)
		}
	})
	return srv
}

// whApplyRBAC creates the ClusterRoles, Roles and bindings of
// deploy/torii.yaml, as they are.
func whApplyRBAC(t *testing.T, ctx context.Context, cs kubernetes.Interface) {
	t.Helper()
	data, err := os.ReadFile(whManifests)
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	n := 0
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			continue // only comments
		}
		switch o := obj.(type) {
		case *rbacv1.ClusterRole:
			_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 4 {
		t.Fatalf("%s: %d RBAC objects, want a ClusterRole, a Role and their bindings", whManifests, n)
	}
}
