package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var (
	testHosts = []string{"torii-webhook.torii-system.svc", "torii-webhook.torii-system.svc.cluster.local", "127.0.0.1"}
	t0        = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func generate(t *testing.T, hosts []string, now time.Time) Bundle {
	t.Helper()
	b, err := Generate(hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServiceHosts(t *testing.T) {
	got := ServiceHosts("torii-webhook", "torii-system")
	if strings.Join(got, ",") != "torii-webhook.torii-system.svc,torii-webhook.torii-system.svc.cluster.local" {
		t.Errorf("ServiceHosts = %q", got)
	}
}

func TestGenerate(t *testing.T) {
	b := generate(t, testHosts, t0)
	cas, leaves := parseCerts(b.CACert), parseCerts(b.Cert)
	if len(cas) != 1 || len(leaves) != 1 {
		t.Fatalf("%d CA and %d serving certificates", len(cas), len(leaves))
	}
	ca, leaf := cas[0], leaves[0]
	if !ca.IsCA || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA %v, MaxPathLenZero %v, usage %v", ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage)
	}
	if leaf.IsCA || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("serving certificate: IsCA %v, ext usage %v", leaf.IsCA, leaf.ExtKeyUsage)
	}
	for _, c := range []*x509.Certificate{ca, leaf} {
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", c.Subject.CommonName, c.PublicKey)
		}
	}
	if got := ca.NotAfter.Sub(t0); got != CALifetime {
		t.Errorf("CA lifetime %v", got)
	}
	if got := leaf.NotAfter.Sub(t0); got != ServingLifetime {
		t.Errorf("serving lifetime %v", got)
	}
	if len(leaf.DNSNames) != 2 || len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("SANs: DNS %v, IP %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if _, err := Generate(nil, t0); err == nil {
		t.Error("Generate without hosts succeeded")
	}
}

func TestCheck(t *testing.T) {
	b := generate(t, testHosts, t0)
	other := generate(t, testHosts, t0)
	expiring := t0.Add(ServingLifetime - RenewBefore + time.Hour)
	for _, tt := range []struct {
		name   string
		bundle Bundle
		hosts  []string
		now    time.Time
		want   string
	}{
		{"good", b, testHosts, t0, ""},
		{"good for a while", b, testHosts, t0.Add(ServingLifetime - RenewBefore - time.Hour), ""},
		{"expiring", b, testHosts, expiring, "the certificate expires at"},
		{"expired", b, testHosts, t0.Add(2 * ServingLifetime), "does not verify"},
		{"new host", b, append(testHosts, "torii.example"), t0, "does not cover torii.example"},
		{"new IP", b, append(testHosts, "10.0.0.1"), t0, "does not cover 10.0.0.1"},
		{"other CA", Bundle{CACert: other.CACert, Cert: b.Cert, Key: b.Key}, testHosts, t0, "does not verify against ca.crt"},
		{"other key", Bundle{CACert: b.CACert, Cert: b.Cert, Key: other.Key}, testHosts, t0, "not a certificate and its key"},
		{"no CA", Bundle{Cert: b.Cert, Key: b.Key}, testHosts, t0, "ca.crt holds no certificate"},
		{"empty", Bundle{}, testHosts, t0, "not a certificate and its key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(tt.bundle, tt.hosts, tt.now, RenewBefore)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("Check = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCABundle(t *testing.T) {
	a := parseCerts(generate(t, testHosts, t0).CACert)[0]
	b := parseCerts(generate(t, testHosts, t0.Add(time.Hour)).CACert)[0]
	c := parseCerts(generate(t, testHosts, t0.Add(2*time.Hour)).CACert)[0]
	leaf := parseCerts(generate(t, testHosts, t0).Cert)[0]
	pemOf := func(cs ...*x509.Certificate) []byte {
		var out []byte
		for _, c := range cs {
			out = append(out, pemBlock("CERTIFICATE", c.Raw)...)
		}
		return out
	}
	for _, tt := range []struct {
		name    string
		current []byte
		now     time.Time
		want    []byte
	}{
		{"empty", nil, t0, pemOf(c)},
		{"already", pemOf(c), t0, pemOf(c)},
		{"keeps the previous CA", pemOf(b), t0, pemOf(c, b)},
		{"stable", pemOf(c, b), t0, pemOf(c, b)},
		{"keeps only the newest other", pemOf(a, b), t0, pemOf(c, b)},
		{"drops an expired CA", pemOf(b), b.NotAfter.Add(time.Second), pemOf(c)},
		{"drops what is no CA", pemOf(leaf), t0, pemOf(c)},
		{"drops garbage", []byte("not pem"), t0, pemOf(c)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := caBundle(tt.current, c, tt.now); !bytes.Equal(got, tt.want) {
				t.Errorf("caBundle: got %d certificates, want %d", len(parseCerts(got)), len(parseCerts(tt.want)))
			}
		})
	}
}

// testVWC is a ValidatingWebhookConfiguration with two webhooks, one
// called by URL and one through a Service.
func testVWC() *admissionregistrationv1.ValidatingWebhookConfiguration {
	none := admissionregistrationv1.SideEffectClassNone
	url := "https://127.0.0.1:9443/validate/ingress"
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "torii"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{Name: "validate.ingress.torii.dev", SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
				ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url}},
			{Name: "second.ingress.torii.dev", SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
				ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: "torii-system", Name: "torii-webhook"}}},
		},
	}
}

// cluster is a fake API server holding testVWC.
func cluster(t *testing.T) *fake.Clientset {
	t.Helper()
	return fake.NewClientset(testVWC())
}

// clock is a settable clock.
type clock struct{ now atomic.Pointer[time.Time] }

func (c *clock) set(t time.Time) { c.now.Store(&t) }
func (c *clock) Now() time.Time  { return *c.now.Load() }

func newTestBootstrap(t *testing.T, client *fake.Clientset, clk *clock, hosts []string) (*Bootstrap, *Holder) {
	t.Helper()
	h := &Holder{}
	b, err := NewBootstrap(BootstrapConfig{
		Client: client, SecretNamespace: "torii-system", SecretName: "torii-webhook-cert",
		WebhookConfigName: "torii", Hosts: hosts, Holder: h, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, h
}

func getSecret(t *testing.T, client *fake.Clientset) *corev1.Secret {
	t.Helper()
	s, err := client.CoreV1().Secrets("torii-system").Get(context.Background(), "torii-webhook-cert", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bundles returns the caBundle of each webhook.
func bundles(t *testing.T, client *fake.Clientset) [][]byte {
	t.Helper()
	vwc, err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(context.Background(), "torii", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, w := range vwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

func countActions(client *fake.Clientset, verb, resource string) int {
	n := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			n++
		}
	}
	return n
}

func TestBootstrapLifecycle(t *testing.T) {
	ctx := context.Background()
	client := cluster(t)
	clk := &clock{}
	clk.set(t0)
	b1, h1 := newTestBootstrap(t, client, clk, testHosts)

	// First start: the Secret is created and the CA goes into every webhook.
	if err := b1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	sec := getSecret(t, client)
	if sec.Type != corev1.SecretTypeTLS || len(sec.Data["ca.crt"]) == 0 {
		t.Fatalf("Secret type %s, keys %v", sec.Type, keys(sec.Data))
	}
	if why := Check(bundleOf(sec), testHosts, t0, RenewBefore); why != "" {
		t.Fatalf("stored certificate: %s", why)
	}
	served := h1.Current()
	if served == nil || !bytes.Equal(served.Leaf.Raw, parseCerts(sec.Data[corev1.TLSCertKey])[0].Raw) {
		t.Fatal("the holder does not serve the stored certificate")
	}
	for i, cab := range bundles(t, client) {
		if !bytes.Equal(cab, sec.Data["ca.crt"]) {
			t.Errorf("webhook %d: caBundle is not the CA", i)
		}
	}

	// A second replica, and a later check: nothing is written.
	b2, h2 := newTestBootstrap(t, client, clk, testHosts)
	writes := countActions(client, "update", "secrets") + countActions(client, "create", "secrets") + countActions(client, "patch", "validatingwebhookconfigurations")
	for _, b := range []*Bootstrap{b2, b1} {
		if err := b.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := countActions(client, "update", "secrets") + countActions(client, "create", "secrets") + countActions(client, "patch", "validatingwebhookconfigurations"); n != writes {
		t.Errorf("%d writes by checks that had nothing to change", n-writes)
	}
	if !bytes.Equal(h2.Current().Leaf.Raw, served.Leaf.Raw) {
		t.Error("the second replica serves another certificate")
	}
	if h1.Current() != served {
		t.Error("an unchanged Secret was loaded again")
	}

	// 30 days before expiry: renewed, and the old CA stays trusted next to
	// the new one until the other replica has caught up.
	clk.set(t0.Add(ServingLifetime - RenewBefore + time.Hour))
	oldCA := sec.Data["ca.crt"]
	if err := b1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	renewed := getSecret(t, client)
	if bytes.Equal(renewed.Data[corev1.TLSCertKey], sec.Data[corev1.TLSCertKey]) {
		t.Fatal("not renewed")
	}
	if bytes.Equal(h1.Current().Leaf.Raw, served.Leaf.Raw) {
		t.Error("the renewing replica still serves the old certificate")
	}
	for i, cab := range bundles(t, client) {
		want := append(append([]byte(nil), renewed.Data["ca.crt"]...), oldCA...)
		if !bytes.Equal(cab, want) {
			t.Errorf("webhook %d: caBundle holds %d certificates, want the new CA then the old one", i, len(parseCerts(cab)))
		}
	}
	if err := b2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h2.Current().Leaf.Raw, h1.Current().Leaf.Raw) {
		t.Error("the other replica did not pick up the renewed certificate")
	}

	// A new host (--webhook-cert-host added): renewed to cover it.
	b3, h3 := newTestBootstrap(t, client, clk, append(testHosts, "10.1.2.3"))
	if err := b3.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !covers(h3.Current().Leaf, "10.1.2.3") {
		t.Error("the certificate does not cover the new host")
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestBootstrapRaces makes the writes of one replica lose to another's:
// the loser re-reads and serves the winner's certificate.
func TestBootstrapRaces(t *testing.T) {
	ctx := context.Background()
	clk := &clock{}
	clk.set(t0)
	secretsGVR := schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	winner := generate(t, testHosts, t0)
	winnerSecret := func(rv string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "torii-webhook-cert", Namespace: "torii-system", ResourceVersion: rv},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{"tls.crt": winner.Cert, "tls.key": winner.Key, "ca.crt": winner.CACert},
		}
	}

	t.Run("create", func(t *testing.T) {
		client := cluster(t)
		raced := false
		client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
			if raced {
				return false, nil, nil
			}
			raced = true
			// The other replica's create lands first.
			if err := client.Tracker().Create(secretsGVR, winnerSecret(""), "torii-system"); err != nil {
				t.Fatal(err)
			}
			return true, nil, apierrors.NewAlreadyExists(secretsGVR.GroupResource(), "torii-webhook-cert")
		})
		b, h := newTestBootstrap(t, client, clk, testHosts)
		if err := b.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if !raced || !bytes.Equal(h.Current().Leaf.Raw, parseCerts(winner.Cert)[0].Raw) {
			t.Error("the loser does not serve the winner's certificate")
		}
		if cab := bundles(t, client)[0]; !bytes.Equal(cab, winner.CACert) {
			t.Error("caBundle is not the winner's CA")
		}
	})

	t.Run("renew", func(t *testing.T) {
		client := cluster(t)
		expired := generate(t, testHosts, t0.Add(-2*ServingLifetime))
		stale := winnerSecret("")
		stale.Data = map[string][]byte{"tls.crt": expired.Cert, "tls.key": expired.Key, "ca.crt": expired.CACert}
		if err := client.Tracker().Add(stale); err != nil {
			t.Fatal(err)
		}
		raced := false
		client.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
			if raced {
				return false, nil, nil
			}
			raced = true
			if err := client.Tracker().Update(secretsGVR, winnerSecret(""), "torii-system"); err != nil {
				t.Fatal(err)
			}
			return true, nil, apierrors.NewConflict(secretsGVR.GroupResource(), "torii-webhook-cert", nil)
		})
		b, h := newTestBootstrap(t, client, clk, testHosts)
		if err := b.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if !raced || !bytes.Equal(h.Current().Leaf.Raw, parseCerts(winner.Cert)[0].Raw) {
			t.Error("the loser does not serve the winner's certificate")
		}
	})
}

func TestBootstrapWithoutWebhookConfiguration(t *testing.T) {
	client := fake.NewClientset()
	clk := &clock{}
	clk.set(t0)
	b, h := newTestBootstrap(t, client, clk, testHosts)
	err := b.Sync(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ValidatingWebhookConfiguration torii") {
		t.Fatalf("Sync: %v, want an error naming the configuration", err)
	}
	if h.Current() == nil {
		t.Error("the certificate is not served while the configuration is missing")
	}

	// Run retries until the configuration appears.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, testVWC(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(bundles(t, client)[0]) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the caBundle was not set after the configuration appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(b Bundle) {
		t.Helper()
		// Like the kubelet: replace, never write in place.
		for name, data := range map[string][]byte{certFile: b.Cert, keyFile: b.Key} {
			tmp := name + ".tmp"
			if err := os.WriteFile(tmp, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	first, second := generate(t, testHosts, t0), generate(t, testHosts, t0)
	h := &Holder{}
	if _, err := NewFiles(FilesConfig{CertFile: certFile, KeyFile: keyFile, Holder: h}); err == nil {
		t.Fatal("NewFiles succeeded without files")
	}
	write(first)
	f, err := NewFiles(FilesConfig{CertFile: certFile, KeyFile: keyFile, Holder: h, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Current().Leaf.Raw, parseCerts(first.Cert)[0].Raw) {
		t.Fatal("not serving the files' certificate")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// A broken pair keeps the last good one.
	if err := os.WriteFile(keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Load(); err == nil {
		t.Error("a broken key loaded")
	}
	if !bytes.Equal(h.Current().Leaf.Raw, parseCerts(first.Cert)[0].Raw) {
		t.Error("a broken key replaced the certificate")
	}
	// Renewed files are picked up by Run.
	write(second)
	deadline := time.Now().Add(5 * time.Second)
	for !bytes.Equal(h.Current().Leaf.Raw, parseCerts(second.Cert)[0].Raw) {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not loaded")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBootstrapRenewalWaitsForTheCABundle: a renewed certificate is
// served only once its CA is in the caBundle; while the caBundle cannot be
// patched, the previous certificate (still trusted) keeps being served.
func TestBootstrapRenewalWaitsForTheCABundle(t *testing.T) {
	ctx := context.Background()
	client := cluster(t)
	clk := &clock{}
	clk.set(t0)
	b, h := newTestBootstrap(t, client, clk, testHosts)
	other, h2 := newTestBootstrap(t, client, clk, testHosts) // another replica
	for _, r := range []*Bootstrap{b, other} {
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	first := h.Current()
	oldCA := getSecret(t, client).Data["ca.crt"]

	var failing atomic.Bool
	failing.Store(true)
	client.PrependReactor("patch", "validatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, apierrors.NewServiceUnavailable("etcd is down")
		}
		return false, nil, nil
	})
	clk.set(t0.Add(ServingLifetime - RenewBefore + time.Hour))
	err := b.Sync(ctx)
	if err == nil || !strings.Contains(err.Error(), "still serving the previous certificate") {
		t.Fatalf("Sync with the patch failing: %v", err)
	}
	renewed := getSecret(t, client)
	if bytes.Equal(renewed.Data["ca.crt"], oldCA) {
		t.Fatal("the Secret was not renewed")
	}
	if h.Current() != first {
		t.Fatal("the renewed certificate is served before the caBundle holds its CA")
	}
	if err := other.Sync(ctx); err == nil || h2.Current().Leaf.Equal(parseCerts(renewed.Data["tls.crt"])[0]) {
		t.Fatalf("the other replica: %v; it must keep its certificate too", err)
	}
	for i, cab := range bundles(t, client) {
		if !bytes.Equal(cab, oldCA) {
			t.Errorf("webhook %d: caBundle changed although every patch failed", i)
		}
	}

	failing.Store(false)
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i, cab := range bundles(t, client) {
		if want := append(append([]byte(nil), renewed.Data["ca.crt"]...), oldCA...); !bytes.Equal(cab, want) {
			t.Errorf("webhook %d: caBundle holds %d certificates, want the new CA then the old one", i, len(parseCerts(cab)))
		}
	}
	if !h.Current().Leaf.Equal(parseCerts(renewed.Data["tls.crt"])[0]) {
		t.Error("the renewed certificate is not served once its CA is in the caBundle")
	}
	if err := other.Sync(ctx); err != nil || !h2.Current().Leaf.Equal(h.Current().Leaf) {
		t.Errorf("the other replica: %v, serving the renewed certificate: %v", err, h2.Current().Leaf.Equal(h.Current().Leaf))
	}
}

// TestBootstrapCABundlePatchTestsTheBundle: the JSON patch tests the
// caBundle it read at each index; when someone else wrote the caBundle in
// between (422 from the failed test), it reads again and patches over
// what is there now.
func TestBootstrapCABundlePatchTestsTheBundle(t *testing.T) {
	ctx := context.Background()
	client := cluster(t)
	clk := &clock{}
	clk.set(t0)
	vwcGVR := schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}
	foreign := generate(t, testHosts, t0.Add(-time.Hour)).CACert // another writer's CA

	var patches [][]jsonPatchOp
	client.PrependReactor("patch", "validatingwebhookconfigurations", func(a k8stesting.Action) (bool, runtime.Object, error) {
		var ops []jsonPatchOp
		if err := json.Unmarshal(a.(k8stesting.PatchAction).GetPatch(), &ops); err != nil {
			t.Fatal(err)
		}
		patches = append(patches, ops)
		if len(patches) > 1 {
			return false, nil, nil // the tracker applies it, tests included
		}
		// Someone else writes the first webhook's caBundle between our
		// read and our patch: the API server fails the test with 422.
		vwc := testVWC()
		vwc.Webhooks[0].ClientConfig.CABundle = foreign
		if err := client.Tracker().Update(vwcGVR, vwc, ""); err != nil {
			t.Fatal(err)
		}
		return true, nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "patch", vwcGVR.GroupResource(), "torii", "testing value /webhooks/0/clientConfig/caBundle failed", 0, false)
	})
	b, _ := newTestBootstrap(t, client, clk, testHosts)
	if err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(patches) != 2 {
		t.Fatalf("%d patches, want a failed one and a second after a fresh read", len(patches))
	}
	// Each changed webhook: test its name, test its caBundle as read, add.
	for i, ops := range patches {
		if len(ops) != 6 || ops[0].Op != "test" || ops[0].Path != "/webhooks/0/name" ||
			ops[1].Op != "test" || ops[1].Path != "/webhooks/0/clientConfig/caBundle" || ops[2].Op != "add" {
			t.Fatalf("patch %d: %+v", i, ops)
		}
	}
	if patches[0][1].Value != nil {
		t.Errorf("first patch tests caBundle %v, want null (none read)", patches[0][1].Value)
	}
	if got, _ := patches[1][1].Value.(string); got != base64.StdEncoding.EncodeToString(foreign) {
		t.Errorf("second patch tests caBundle %.20q..., want the other writer's", got)
	}
	ca := getSecret(t, client).Data["ca.crt"]
	cab := bundles(t, client)
	if want := append(append([]byte(nil), ca...), foreign...); !bytes.Equal(cab[0], want) {
		t.Errorf("webhook 0: caBundle holds %d certificates, want ours then the other writer's", len(parseCerts(cab[0])))
	}
	if !bytes.Equal(cab[1], ca) {
		t.Error("webhook 1: caBundle is not our CA")
	}

	// A patch whose test fails for good (the configuration keeps changing)
	// gives up after maxAttempts.
	client2 := cluster(t)
	calls := 0
	client2.PrependReactor("patch", "validatingwebhookconfigurations", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		return true, nil, apierrors.NewConflict(vwcGVR.GroupResource(), "torii", nil)
	})
	b2, _ := newTestBootstrap(t, client2, clk, testHosts)
	if err := b2.Sync(ctx); err == nil || !strings.Contains(err.Error(), "still changing") || calls != maxAttempts {
		t.Errorf("Sync: %v after %d patches, want to give up after %d", err, calls, maxAttempts)
	}
}
