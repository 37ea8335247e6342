package server

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/torii-dev/torii/internal/dedicated"
	"github.com/torii-dev/torii/internal/source/kube"
	"github.com/torii-dev/torii/internal/status"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

// DedicatedConfig configures dedicated mode (KubeConfig.Dedicated): an
// IngressClass whose spec.parameters name an IngressClassConfig with mode
// Dedicated gets, per Ingress (or torii.dev/group), a proxy Deployment and
// a load-balancer Service of its own. See docs/dedicated.md.
type DedicatedConfig struct {
	// Enabled watches IngressClassConfigs (the CRD must be installed) and,
	// on the leader, manages the dedicated proxies (--enable-dedicated).
	Enabled bool
	// Image is the proxies' image (--dedicated-image).
	Image string
	// PublishClusterIP also writes the dedicated Service's ClusterIP into
	// the Ingress status (--publish-cluster-ip).
	PublishClusterIP bool
}

// dedicatedMode is the controller side of dedicated mode.
type dedicatedMode struct {
	k   *kubeMode
	rec *dedicated.Reconciler

	mu       sync.Mutex
	plan     *dedicated.Plan
	services []*corev1.Service // of the view the plan was made from
	problems []status.Problem  // translation problems of dedicated Ingresses
}

func newDedicatedMode(k *kubeMode, rc *rest.Config) (*dedicatedMode, error) {
	if len(k.cfg.OnlyIngresses) > 0 {
		return nil, errors.New("--enable-dedicated and --only-ingress are exclusive: the controller manages the dedicated proxies, --only-ingress makes one")
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	image := k.cfg.Dedicated.Image
	if image == "" {
		image = "ghcr.io/torii-dev/torii:" + k.s.cfg.Version
	}
	rec, err := dedicated.New(dedicated.Config{
		Client: k.client, Dynamic: dyn, Namespaces: k.cfg.WatchNamespaces,
		Translate: k.s.cfg.Translate, Image: image, Logger: k.log,
		OnProblems: k.wake, // the leader's status loop emits them as Events
	})
	if err != nil {
		return nil, err
	}
	k.log.Info("dedicated mode enabled", "image", image)
	return &dedicatedMode{k: k, rec: rec}, nil
}

// extra is the informer the kube source runs for dedicated mode.
func (d *dedicatedMode) extra() kube.Extra {
	return kube.Extra{Kind: "IngressClassConfig", Informer: d.rec.ConfigInformer()}
}

// rebuild plans the dedicated units of a view, hands the plan to the
// reconciler and returns what the shared proxies serve: the view without
// the Ingresses of Dedicated classes.
func (d *dedicatedMode) rebuild(view *store.Objects) *store.Objects {
	plan := d.rec.Plan(view)
	problems := unitProblems(d.k.s.cfg.Translate, view, plan)
	d.mu.Lock()
	d.plan, d.services, d.problems = plan, view.Services, problems
	d.mu.Unlock()
	d.rec.SetPlan(plan)
	d.k.log.Debug("dedicated plan", "units", len(plan.Units), "claimed", len(plan.Claimed), "problems", len(plan.Problems)+len(problems))
	return plan.SharedView(view)
}

// status splits the Ingresses the shared build does not own (others) into
// dedicated targets, with the addresses of their own Service, and the real
// others; Ingresses of an unusable class are in neither. It also returns
// the Events about dedicated Ingresses, the reconciler's refused applies
// among them.
func (d *dedicatedMode) status(others []*networkingv1.Ingress) ([]status.Target, []*networkingv1.Ingress, []status.Problem) {
	d.mu.Lock()
	plan, services, problems := d.plan, d.services, d.problems
	d.mu.Unlock()
	if plan == nil {
		return nil, others, nil
	}
	planned, waiting := plan.Status(services, d.k.cfg.Dedicated.PublishClusterIP)
	addrs := make(map[types.UID][]networkingv1.IngressLoadBalancerIngress, len(planned))
	for _, t := range planned {
		addrs[t.Ingress.UID] = t.Addresses
	}
	var targets []status.Target
	rest := others[:0:0]
	for _, ing := range others {
		if a, ok := addrs[ing.UID]; ok {
			targets = append(targets, status.Target{Ingress: ing, Addresses: a})
			continue
		}
		if plan.Claimed[types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}] {
			continue // class unusable: status left as it is
		}
		rest = append(rest, ing)
	}
	applyFailed := d.rec.Problems()
	out := make([]status.Problem, 0, len(plan.Problems)+len(waiting)+len(problems)+len(applyFailed))
	out = append(append(append(append(out, plan.Problems...), waiting...), problems...), applyFailed...)
	return targets, rest, out
}

// unitProblems translates each unit's Ingresses the way its proxy will,
// for the Events the proxies themselves do not write. Each unit sees only
// its Ingresses and the Services, EndpointSlices and Secrets they name, so
// units never conflict with each other and the cost stays proportional to
// what they reference.
func unitProblems(cfg translate.Config, view *store.Objects, plan *dedicated.Plan) []status.Problem {
	if len(plan.Units) == 0 {
		return nil
	}
	index := newUnitIndex(view)
	var out []status.Problem
	for _, u := range plan.Units {
		uv := index.view(u.Namespace, u.Class, u.Ingresses)
		res := translate.Build(cfg, uv)
		uids := make(map[string]types.UID, len(u.Ingresses))
		for _, ing := range u.Ingresses {
			uids[ing.Name] = ing.UID
		}
		for _, p := range res.Problems {
			if p.Object.Kind != "Ingress" || p.Object.Namespace != u.Namespace {
				continue
			}
			uid, ok := uids[p.Object.Name]
			if !ok {
				continue
			}
			out = append(out, status.Problem{
				Object: corev1.ObjectReference{
					APIVersion: "networking.k8s.io/v1", Kind: "Ingress",
					Namespace: p.Object.Namespace, Name: p.Object.Name, UID: uid,
				},
				Reason: p.Reason, Message: p.Message,
			})
		}
	}
	return out
}

// references lists the Services and TLS Secrets some Ingresses name
// (duplicates possible).
func references(ings []*networkingv1.Ingress) (services, secrets []string) {
	add := func(b *networkingv1.IngressBackend) {
		if b != nil && b.Service != nil {
			services = append(services, b.Service.Name)
		}
	}
	for _, ing := range ings {
		add(ing.Spec.DefaultBackend)
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				add(&p.Backend)
			}
		}
		for _, t := range ing.Spec.TLS {
			if t.SecretName != "" {
				secrets = append(secrets, t.SecretName)
			}
		}
	}
	return services, secrets
}

// onlyConfig builds the kube source scope of a dedicated proxy from
// --only-ingress and --only-ingress-class. The class stands in for the
// IngressClass the proxy does not read (that would need cluster-wide
// access): its controller is --controller-name, and it is marked default so
// the proxy also serves its Ingress should it name its class only through
// the default. Which Ingresses are the controller's and Dedicated is the
// controller's decision; it deletes the proxy when that changes.
func onlyConfig(ingresses []string, class, controller string) (*kube.Only, error) {
	if len(ingresses) == 0 {
		return nil, errors.New("--only-ingress-class needs --only-ingress")
	}
	if class == "" {
		return nil, errors.New("--only-ingress needs --only-ingress-class")
	}
	if errs := validation.IsDNS1123Subdomain(class); len(errs) > 0 {
		return nil, fmt.Errorf("--only-ingress-class %q: %s", class, strings.Join(errs, "; "))
	}
	only := &kube.Only{Class: &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: class, Annotations: map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}},
		Spec:       networkingv1.IngressClassSpec{Controller: controller},
	}}
	for _, v := range ingresses {
		ns, name, ok := strings.Cut(v, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("--only-ingress %q: want namespace/name", v)
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return nil, fmt.Errorf("--only-ingress %q: %s", v, strings.Join(errs, "; "))
		}
		if len(only.Ingresses) > 0 && only.Ingresses[0].Namespace != ns {
			return nil, fmt.Errorf("--only-ingress: %q and %q are in different namespaces", ingresses[0], v)
		}
		only.Ingresses = append(only.Ingresses, types.NamespacedName{Namespace: ns, Name: name})
	}
	return only, nil
}
