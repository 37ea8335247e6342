package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

const (
	// defaultInterval is how often Bootstrap re-checks the Secret and the
	// caBundle: it picks up a certificate another replica renewed, and
	// repairs a caBundle that a re-created configuration lost. Both are a
	// GET of one object.
	defaultInterval = time.Minute
	// maxBackoff caps the retry delay after a failed check.
	maxBackoff = 30 * time.Second
	// maxAttempts bounds the re-reads after losing a write race to another
	// replica.
	maxAttempts = 5
)

// BootstrapConfig configures Bootstrap.
type BootstrapConfig struct {
	Client kubernetes.Interface
	// SecretNamespace and SecretName name the kubernetes.io/tls Secret
	// holding the certificate, its key and the CA (ca.crt).
	SecretNamespace, SecretName string
	// WebhookConfigName names the ValidatingWebhookConfiguration whose
	// webhooks get the CA as caBundle. Empty leaves caBundles alone.
	WebhookConfigName string
	// Hosts are the DNS names and IP addresses the certificate must cover;
	// see ServiceHosts.
	Hosts  []string
	Holder *Holder
	// Interval between checks; zero means one minute.
	Interval time.Duration
	// RenewBefore renews a certificate that expires sooner than this; zero
	// means RenewBefore (30 days).
	RenewBefore time.Duration
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Bootstrap keeps a serving certificate in a Secret, served by a Holder,
// and its CA in a ValidatingWebhookConfiguration. Every replica runs one;
// they agree through the API server: the first to create or renew the
// Secret wins, the others read what it wrote.
type Bootstrap struct {
	cfg BootstrapConfig
	log *slog.Logger
}

// NewBootstrap checks the configuration.
func NewBootstrap(cfg BootstrapConfig) (*Bootstrap, error) {
	switch {
	case cfg.Client == nil || cfg.Holder == nil:
		return nil, errors.New("webhook certificate bootstrap: a client and a holder are required")
	case cfg.SecretNamespace == "" || cfg.SecretName == "":
		return nil, errors.New("webhook certificate bootstrap: the Secret needs a namespace and a name")
	case len(cfg.Hosts) == 0:
		return nil, errors.New("webhook certificate bootstrap: no host names for the certificate")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = defaultInterval
	}
	if cfg.RenewBefore <= 0 {
		cfg.RenewBefore = RenewBefore
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Bootstrap{cfg: cfg, log: cfg.Logger}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	return b, nil
}

// Run checks at once and then every interval until ctx is done, retrying
// failures with a backoff of up to 30 s. A failure is logged when it first
// happens (or changes), not on every retry.
func (b *Bootstrap) Run(ctx context.Context) error {
	backoff := time.Second
	lastErr := ""
	for {
		wait := b.cfg.Interval
		if err := b.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if msg := err.Error(); msg != lastErr {
				b.log.Warn("webhook certificate: check failed; retrying", "error", msg, "retry", backoff)
				lastErr = msg
			}
			wait = min(backoff, b.cfg.Interval)
			backoff = min(2*backoff, maxBackoff)
		} else {
			if lastErr != "" {
				b.log.Info("webhook certificate: check succeeded again")
			}
			lastErr, backoff = "", time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Sync makes sure the Secret holds a certificate good for RenewBefore,
// puts its CA in the caBundle of every webhook of the configuration, and
// serves it.
//
// Once a certificate is served, a new one (renewed by this replica or
// another) is served only after its CA is in the caBundle: the API server
// would refuse it before. The caBundle keeps the previous CA next to the
// new one, so the certificate still served stays trusted until the swap;
// while the caBundle cannot be patched, the previous certificate keeps
// being served and Sync fails (Run retries). A replica serving nothing yet
// serves the Secret's certificate at once: there is nothing to keep.
func (b *Bootstrap) Sync(ctx context.Context) error {
	sec, err := b.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if b.cfg.WebhookConfigName == "" {
		return b.serve(sec)
	}
	if b.cfg.Holder.Current() == nil {
		if err := b.serve(sec); err != nil {
			return err
		}
		return b.patchCABundle(ctx, sec.Data["ca.crt"])
	}
	if err := b.patchCABundle(ctx, sec.Data["ca.crt"]); err != nil {
		if b.cfg.Holder.Differs(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]) {
			return fmt.Errorf("%w; still serving the previous certificate until the caBundle holds the new CA", err)
		}
		return err
	}
	return b.serve(sec)
}

// serve serves the Secret's certificate.
func (b *Bootstrap) serve(sec *corev1.Secret) error {
	changed, err := b.cfg.Holder.SetPEM(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("Secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	if changed {
		logLoaded(b.log, b.cfg.Holder, "Secret "+sec.Namespace+"/"+sec.Name)
	}
	return nil
}

// ensureSecret returns the Secret once it holds a good certificate,
// creating or renewing it when needed. A write that loses a race with
// another replica (AlreadyExists, Conflict) is followed by a fresh read:
// the winner's certificate is as good as ours.
func (b *Bootstrap) ensureSecret(ctx context.Context) (*corev1.Secret, error) {
	secrets := b.cfg.Client.CoreV1().Secrets(b.cfg.SecretNamespace)
	ref := b.cfg.SecretNamespace + "/" + b.cfg.SecretName
	for range maxAttempts {
		now := b.cfg.Now()
		sec, err := secrets.Get(ctx, b.cfg.SecretName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			bundle, err := Generate(b.cfg.Hosts, now)
			if err != nil {
				return nil, err
			}
			created, err := secrets.Create(ctx, b.newSecret(bundle), metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create Secret %s: %w", ref, err)
			}
			b.log.Info("webhook certificate: created", "secret", ref, "hosts", b.cfg.Hosts)
			return created, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get Secret %s: %w", ref, err)
		}
		why := Check(bundleOf(sec), b.cfg.Hosts, now, b.cfg.RenewBefore)
		if why == "" {
			return sec, nil
		}
		bundle, err := Generate(b.cfg.Hosts, now)
		if err != nil {
			return nil, err
		}
		upd := sec.DeepCopy()
		if upd.Data == nil {
			upd.Data = map[string][]byte{}
		}
		upd.Data[corev1.TLSCertKey], upd.Data[corev1.TLSPrivateKeyKey], upd.Data["ca.crt"] = bundle.Cert, bundle.Key, bundle.CACert
		// The update carries the resourceVersion read above: if another
		// replica renewed meanwhile, it fails with a Conflict.
		updated, err := secrets.Update(ctx, upd, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("renew Secret %s: %w", ref, err)
		}
		b.log.Info("webhook certificate: renewed", "secret", ref, "reason", why)
		return updated, nil
	}
	return nil, fmt.Errorf("Secret %s: still changing after %d attempts", ref, maxAttempts)
}

func (b *Bootstrap) newSecret(bundle Bundle) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      b.cfg.SecretName,
			Namespace: b.cfg.SecretNamespace,
			Labels: map[string]string{
				"app.kubernetes.io/managed-by": "torii",
				"app.kubernetes.io/component":  "webhook",
			},
		},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       bundle.Cert,
			corev1.TLSPrivateKeyKey: bundle.Key,
			"ca.crt":                bundle.CACert,
		},
	}
}

func bundleOf(sec *corev1.Secret) Bundle {
	return Bundle{CACert: sec.Data["ca.crt"], Cert: sec.Data[corev1.TLSCertKey], Key: sec.Data[corev1.TLSPrivateKeyKey]}
}

// jsonPatchOp is one RFC 6902 operation.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// patchCABundle puts caPEM into the caBundle of every webhook of the
// configuration that lacks it. The JSON patch tests, at each index it
// changes, the webhook's name and its caBundle as read: a configuration
// changed since the read (a webhook added or moved, another replica's or
// cert-manager's caBundle written) fails the patch instead of being
// overwritten, and is read again (the API server answers a failed test
// 422, a conflict 409).
func (b *Bootstrap) patchCABundle(ctx context.Context, caPEM []byte) error {
	cas := parseCerts(caPEM)
	if len(cas) == 0 {
		return errors.New("the Secret's ca.crt holds no certificate")
	}
	vwcs := b.cfg.Client.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	name := b.cfg.WebhookConfigName
	for range maxAttempts {
		vwc, err := vwcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get ValidatingWebhookConfiguration %s: %w", name, err)
		}
		patch, n, err := caBundlePatch(vwc, cas[0], b.cfg.Now())
		if err != nil || n == 0 {
			return err
		}
		_, err = vwcs.Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{})
		if apierrors.IsConflict(err) || apierrors.IsInvalid(err) {
			continue // changed since the read
		}
		if err != nil {
			return fmt.Errorf("patch the caBundle of ValidatingWebhookConfiguration %s: %w", name, err)
		}
		b.log.Info("webhook certificate: caBundle set", "validatingWebhookConfiguration", name, "webhooks", n)
		return nil
	}
	return fmt.Errorf("ValidatingWebhookConfiguration %s: still changing after %d attempts", name, maxAttempts)
}

// caBundlePatch returns the JSON patch that gives every webhook of vwc the
// caBundle it should have, and how many webhooks it changes.
func caBundlePatch(vwc *admissionregistrationv1.ValidatingWebhookConfiguration, ca *x509.Certificate, now time.Time) ([]byte, int, error) {
	var ops []jsonPatchOp
	n := 0
	for i, wh := range vwc.Webhooks {
		current := wh.ClientConfig.CABundle
		want := caBundle(current, ca, now)
		if bytes.Equal(want, current) {
			continue
		}
		at := "/webhooks/" + strconv.Itoa(i)
		var was any // JSON null: a missing caBundle tests as null
		if len(current) > 0 {
			was = current // []byte: base64 in JSON, as stored
		}
		ops = append(ops,
			jsonPatchOp{Op: "test", Path: at + "/name", Value: wh.Name},
			jsonPatchOp{Op: "test", Path: at + "/clientConfig/caBundle", Value: was},
			jsonPatchOp{Op: "add", Path: at + "/clientConfig/caBundle", Value: want})
		n++
	}
	if n == 0 {
		return nil, 0, nil
	}
	patch, err := json.Marshal(ops)
	return patch, n, err
}

// caBundle returns the caBundle a webhook should have: the current CA
// first, then at most one other CA from the current bundle that has not
// expired, the most recently issued. That one is the CA a renewal just
// replaced: replicas that have not re-read the Secret yet still serve a
// certificate it signed, and the API server keeps trusting them until they
// do. The result depends only on its inputs, so replicas agree on it and a
// second check changes nothing.
func caBundle(current []byte, ca *x509.Certificate, now time.Time) []byte {
	out := pemBlock("CERTIFICATE", ca.Raw)
	var prev *x509.Certificate
	for _, c := range parseCerts(current) {
		if bytes.Equal(c.Raw, ca.Raw) || now.After(c.NotAfter) || !c.IsCA {
			continue
		}
		if prev == nil || c.NotBefore.After(prev.NotBefore) {
			prev = c
		}
	}
	if prev != nil {
		out = append(out, pemBlock("CERTIFICATE", prev.Raw)...)
	}
	return out
}
