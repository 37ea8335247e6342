package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/torii-dev/torii/internal/dedicated"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
	"github.com/torii-dev/torii/internal/webhook"
	"github.com/torii-dev/torii/internal/webhook/certs"
)

// WebhookConfig configures the validating admission webhook (Config.Webhook).
type WebhookConfig struct {
	// Addr is the HTTPS listen address of the webhook; empty disables it.
	Addr string
	// CertFile and KeyFile name a serving certificate and key managed
	// elsewhere (e.g. by cert-manager); they are re-read when they change.
	CertFile, KeyFile string
	// CertSecret "<namespace>/<name>" makes Torii generate the certificate
	// itself and keep it in that kubernetes.io/tls Secret (Kubernetes mode
	// only). Exactly one of CertSecret and CertFile/KeyFile is required.
	CertSecret string
	// ConfigName names the ValidatingWebhookConfiguration whose caBundle
	// Torii sets; required with CertSecret.
	ConfigName string
	// Service names the webhook's Service, in the Secret's namespace; the
	// certificate covers <service>.<namespace>.svc(.cluster.local). Empty
	// means the Secret's name without a trailing "-cert".
	Service string
	// Hosts are further DNS names or IP addresses for the certificate, e.g.
	// 127.0.0.1 for a configuration that calls the webhook by URL.
	Hosts []string
	// Timeout bounds one review (--webhook-timeout); it must stay below the
	// configuration's timeoutSeconds so that the API server hears why a
	// review gave up. Zero means 4 s.
	Timeout time.Duration
	// MaxConcurrent bounds the reviews judged at once
	// (--webhook-max-concurrent); zero means 4.
	MaxConcurrent int
	// CheckInterval is how often the bootstrap re-checks the Secret and
	// the caBundle; zero means one minute. No flag sets it: tests shorten
	// it, so that the e2e test sees a lost caBundle repaired in seconds.
	CheckInterval time.Duration
}

// Bounds of WebhookConfig.Timeout and MaxConcurrent: a configuration's
// timeoutSeconds is at most 30.
const (
	maxWebhookTimeout       = 29 * time.Second
	maxWebhookMaxConcurrent = 256
)

// webhookParts are the running pieces of the webhook.
type webhookParts struct {
	server *webhook.Server
	// certs keeps the certificate current: a *certs.Bootstrap or a
	// *certs.Files.
	certs interface{ Run(context.Context) error }
	// holder serves the certificate; readiness waits for its first one.
	holder *certs.Holder
}

// newWebhook validates cfg and builds the webhook, binding its listener.
// It returns nil when the webhook is disabled. Call it once the source is
// set up: the webhook judges against the source's view.
func (s *Server) newWebhook(cfg WebhookConfig) (*webhookParts, error) {
	files := cfg.CertFile != "" || cfg.KeyFile != ""
	if cfg.Addr == "" {
		if files || cfg.CertSecret != "" || cfg.ConfigName != "" || cfg.Service != "" || len(cfg.Hosts) > 0 {
			return nil, errors.New("the --webhook-* flags need --webhook-addr")
		}
		return nil, nil
	}
	switch {
	case len(s.cfg.Kube.OnlyIngresses) > 0 || s.cfg.Kube.OnlyIngressClass != "":
		// A dedicated proxy sees only its own Ingresses: it would judge a
		// candidate against nothing else. The controller runs the webhook.
		return nil, errors.New("--webhook-addr and --only-ingress are exclusive: a dedicated proxy sees only its own Ingresses; run the webhook on the controller")
	case cfg.Timeout < 0 || cfg.Timeout > maxWebhookTimeout:
		return nil, fmt.Errorf("--webhook-timeout %v: want at most %v, below the configuration's timeoutSeconds", cfg.Timeout, maxWebhookTimeout)
	case cfg.MaxConcurrent < 0 || cfg.MaxConcurrent > maxWebhookMaxConcurrent:
		return nil, fmt.Errorf("--webhook-max-concurrent %d: want 1 to %d", cfg.MaxConcurrent, maxWebhookMaxConcurrent)
	case files && cfg.CertSecret != "":
		return nil, errors.New("--webhook-cert-secret and --webhook-cert-file/--webhook-key-file are exclusive")
	case files && (cfg.CertFile == "" || cfg.KeyFile == ""):
		return nil, errors.New("--webhook-cert-file and --webhook-key-file go together")
	case !files && cfg.CertSecret == "":
		return nil, errors.New("--webhook-addr needs a certificate: --webhook-cert-secret NS/NAME, or --webhook-cert-file and --webhook-key-file")
	case cfg.CertSecret != "" && s.kube == nil:
		return nil, errors.New("--webhook-cert-secret needs Kubernetes mode; with --manifests use --webhook-cert-file and --webhook-key-file")
	}

	holder := &certs.Holder{}
	parts := &webhookParts{holder: holder}
	if files {
		f, err := certs.NewFiles(certs.FilesConfig{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, Holder: holder, Logger: s.log})
		if err != nil {
			return nil, err
		}
		parts.certs = f
	} else {
		b, err := s.newBootstrap(cfg, holder)
		if err != nil {
			return nil, err
		}
		parts.certs = b
	}

	view := func() (*store.Objects, bool) {
		objs := s.lastObjects.Load()
		return objs, objs != nil
	}
	var namespaces []string
	var partition webhook.Partition
	if s.kube != nil {
		src := s.kube.source
		view = func() (*store.Objects, bool) { return src.View(), src.HasSynced() }
		namespaces = s.cfg.Kube.WatchNamespaces
		if s.kube.ded != nil {
			partition = dedicatedPartition(s.cfg.Translate, s.kube.ded.rec.Configs)
		}
	}
	timeout := cmp.Or(cfg.Timeout, webhook.DefaultReviewTimeout)
	srv, err := webhook.NewServer(webhook.ServerConfig{
		Addr: cfg.Addr,
		Handler: webhook.NewHandler(webhook.Config{
			Translate:     s.cfg.Translate,
			View:          view,
			Partition:     partition,
			Namespaces:    namespaces,
			ReviewTimeout: timeout,
			MaxConcurrent: cfg.MaxConcurrent,
			Logger:        s.log,
		}),
		GetCertificate: holder.GetCertificate,
		ReviewTimeout:  timeout,
		Logger:         s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("--webhook-addr: %w", err)
	}
	parts.server = srv
	return parts, nil
}

// newBootstrap configures certificate bootstrap from --webhook-cert-secret.
func (s *Server) newBootstrap(cfg WebhookConfig, holder *certs.Holder) (*certs.Bootstrap, error) {
	ns, name, ok := strings.Cut(cfg.CertSecret, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nil, fmt.Errorf("--webhook-cert-secret %q: want <namespace>/<name>", cfg.CertSecret)
	}
	if cfg.ConfigName == "" {
		return nil, errors.New("--webhook-cert-secret needs --webhook-config-name: the ValidatingWebhookConfiguration to put the CA in")
	}
	svc := cfg.Service
	if svc == "" {
		svc = strings.TrimSuffix(name, "-cert")
	}
	if len(validation.IsDNS1035Label(svc)) > 0 {
		return nil, fmt.Errorf("--webhook-service %q: not a Service name", svc)
	}
	hosts := certs.ServiceHosts(svc, ns)
	for _, h := range cfg.Hosts {
		if net.ParseIP(h) == nil && len(validation.IsDNS1123Subdomain(h)) > 0 {
			return nil, fmt.Errorf("--webhook-cert-host %q: not a DNS name or IP address", h)
		}
		hosts = append(hosts, h)
	}
	return certs.NewBootstrap(certs.BootstrapConfig{
		Client:            s.kube.client,
		SecretNamespace:   ns,
		SecretName:        name,
		WebhookConfigName: cfg.ConfigName,
		Hosts:             hosts,
		Holder:            holder,
		Interval:          cfg.CheckInterval,
		Logger:            s.log,
	})
}

// webhookReady reports whether the webhook, if enabled, has a certificate
// to serve: until it has, the API server cannot call it, and readiness
// keeps the webhook Service from sending to this replica.
func (s *Server) webhookReady() bool {
	return s.webhook == nil || s.webhook.holder.Current() != nil
}

// dedicatedPartition is the webhook's Partition in dedicated mode. It
// splits the view exactly as the controller does (dedicatedMode.rebuild
// and unitProblems): the plan of the view with the candidate in it decides.
// A candidate of a Dedicated class is judged with the other Ingresses of
// its unit (the ones its own proxy serves) and what they reference; any
// other candidate over the shared view, which leaves out the Ingresses of
// Dedicated classes. So an Ingress never conflicts with one served by
// another load balancer. A candidate claimed by no unit (its class's
// IngressClassConfig is missing or invalid, so nobody serves it until that
// is fixed) is judged alone.
func dedicatedPartition(cfg translate.Config, configs func() dedicated.Configs) webhook.Partition {
	return func(view *store.Objects, cand *networkingv1.Ingress) *store.Objects {
		plan := dedicated.BuildPlan(cfg, view, configs())
		if !plan.Claimed[types.NamespacedName{Namespace: cand.Namespace, Name: cand.Name}] {
			return plan.SharedView(view)
		}
		for _, u := range plan.Units {
			if u.Namespace != cand.Namespace {
				continue
			}
			for _, ing := range u.Ingresses {
				if ing.Name == cand.Name {
					return unitView(view, u.Namespace, u.Class, u.Ingresses)
				}
			}
		}
		class, _ := translate.NewClasses(cfg, view.IngressClasses).Owner(cand)
		return unitView(view, cand.Namespace, class, []*networkingv1.Ingress{cand})
	}
}

// unitView is what a dedicated proxy serving ings (of namespace ns and
// IngressClass class) sees, as unitProblems builds it: those Ingresses,
// their class, and the Services, EndpointSlices and Secrets of ns they
// name.
func unitView(view *store.Objects, ns, class string, ings []*networkingv1.Ingress) *store.Objects {
	return newUnitIndex(view).view(ns, class, ings)
}

// unitIndex indexes a view's classes, Services, EndpointSlices and
// Secrets so that unit views cost what their Ingresses reference.
type unitIndex struct {
	classes  []*networkingv1.IngressClass
	services map[types.NamespacedName]*corev1.Service
	slices   map[types.NamespacedName][]*discoveryv1.EndpointSlice
	secrets  map[types.NamespacedName]*corev1.Secret
}

func newUnitIndex(view *store.Objects) *unitIndex {
	x := &unitIndex{
		classes:  view.IngressClasses,
		services: map[types.NamespacedName]*corev1.Service{},
		slices:   map[types.NamespacedName][]*discoveryv1.EndpointSlice{},
		secrets:  map[types.NamespacedName]*corev1.Secret{},
	}
	for _, s := range view.Services {
		if s != nil {
			x.services[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
		}
	}
	for _, es := range view.EndpointSlices {
		if es == nil {
			continue
		}
		if svc := es.Labels[discoveryv1.LabelServiceName]; svc != "" {
			k := types.NamespacedName{Namespace: es.Namespace, Name: svc}
			x.slices[k] = append(x.slices[k], es)
		}
	}
	for _, s := range view.Secrets {
		if s != nil {
			x.secrets[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = s
		}
	}
	return x
}

// view is the unit view of ings (of namespace ns and IngressClass class),
// each referenced object once.
func (x *unitIndex) view(ns, class string, ings []*networkingv1.Ingress) *store.Objects {
	uv := &store.Objects{Ingresses: ings}
	for _, c := range x.classes {
		if c != nil && c.Name == class {
			uv.IngressClasses = append(uv.IngressClasses, c)
		}
	}
	svcNames, secretNames := references(ings)
	seen := make(map[string]bool, len(svcNames))
	for _, n := range svcNames {
		if seen[n] {
			continue
		}
		seen[n] = true
		k := types.NamespacedName{Namespace: ns, Name: n}
		if s := x.services[k]; s != nil {
			uv.Services = append(uv.Services, s)
		}
		uv.EndpointSlices = append(uv.EndpointSlices, x.slices[k]...)
	}
	clear(seen)
	for _, n := range secretNames {
		if seen[n] {
			continue
		}
		seen[n] = true
		if s := x.secrets[types.NamespacedName{Namespace: ns, Name: n}]; s != nil {
			uv.Secrets = append(uv.Secrets, s)
		}
	}
	return uv
}

// WebhookAddr is the webhook listener's address (nil when disabled).
func (s *Server) WebhookAddr() net.Addr {
	if s.webhook == nil {
		return nil
	}
	return s.webhook.server.Addr()
}
