package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ErrNoPublishSource means no address source is configured: no fixed
// addresses, no publish Service, and no pod identity for the node mode.
// A caller may then run without writing status.
var ErrNoPublishSource = errors.New("no status address source: set --publish-status-address or --publish-service, or run in a pod with POD_NAME and POD_NAMESPACE")

// AddressConfig configures an AddressSource. Exactly one mode applies, in
// precedence order:
//
//  1. PublishStatusAddress: fixed IPs and hostnames (each value may be
//     comma-separated); an IP becomes an ip entry, anything else a hostname.
//  2. PublishService "namespace/name": a copy of that Service's
//     status.loadBalancer.ingress (ports included), following its changes.
//  3. Otherwise the addresses of the nodes running Torii pods: ready pods in
//     PodNamespace matching the labels of PodName (less the per-revision
//     ones), each node's ExternalIPs, else its InternalIPs; sorted, unique.
type AddressConfig struct {
	Client               kubernetes.Interface
	PublishStatusAddress []string
	PublishService       string // "namespace/name"
	PodName              string
	PodNamespace         string
	// Logger receives state changes (never a line per event); nil discards.
	Logger *slog.Logger
}

// addressMode says where the addresses come from.
type addressMode int

const (
	modeFixed addressMode = iota
	modeService
	modeNodes
)

// AddressSource computes the addresses Torii publishes and reports their
// changes. Create it with NewAddressSource.
type AddressSource struct {
	cfg   AddressConfig
	log   *slog.Logger
	mode  addressMode
	fixed []networkingv1.IngressLoadBalancerIngress
	svcNS string
	svc   string
}

// NewAddressSource validates cfg and picks the mode. Invalid fixed
// addresses or a malformed namespace/name are errors; with neither set and
// no pod identity it returns ErrNoPublishSource.
func NewAddressSource(cfg AddressConfig) (*AddressSource, error) {
	a := &AddressSource{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	fixed, err := ParseStatusAddresses(cfg.PublishStatusAddress)
	if err != nil {
		return nil, fmt.Errorf("--publish-status-address: %w", err)
	}
	switch {
	case len(fixed) > 0:
		a.mode, a.fixed = modeFixed, fixed
		return a, nil
	case cfg.PublishService != "":
		ns, name, err := splitServiceRef(cfg.PublishService)
		if err != nil {
			return nil, fmt.Errorf("--publish-service: %w", err)
		}
		a.mode, a.svcNS, a.svc = modeService, ns, name
	case cfg.PodName != "" && cfg.PodNamespace != "":
		a.mode = modeNodes
	default:
		return nil, ErrNoPublishSource
	}
	if cfg.Client == nil {
		return nil, errors.New("status addresses: a Kubernetes client is required unless --publish-status-address is set")
	}
	return a, nil
}

// splitServiceRef parses "namespace/name".
func splitServiceRef(s string) (ns, name string, err error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("%q is not namespace/name", s)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", "", fmt.Errorf("%q: namespace: %s", s, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return "", "", fmt.Errorf("%q: name: %s", s, strings.Join(errs, "; "))
	}
	return ns, name, nil
}

// Run reports the current addresses to onChange once known, and again
// whenever they change (never twice in a row for the same set), until ctx
// ends; then it returns nil. onChange is called from one goroutine at a
// time and owns the slice it is given.
//
// In the Service mode nothing is reported while the Service does not exist:
// a missing Service is more often a redeploy in progress than an address
// change, and clearing the status would drop DNS records for it.
func (a *AddressSource) Run(ctx context.Context, onChange func([]networkingv1.IngressLoadBalancerIngress)) error {
	switch a.mode {
	case modeFixed:
		onChange(cloneAddresses(a.fixed))
		<-ctx.Done()
		return nil
	case modeService:
		return a.runService(ctx, onChange)
	default:
		return a.runNodes(ctx, onChange)
	}
}

// publisher deduplicates reports: a compute function is run on every kick
// from one goroutine, and onChange sees only results that differ.
type publisher struct {
	kick     chan struct{}
	compute  func() ([]networkingv1.IngressLoadBalancerIngress, bool)
	onChange func([]networkingv1.IngressLoadBalancerIngress)
	last     []networkingv1.IngressLoadBalancerIngress
	done     bool // last holds a reported value
}

func newPublisher(compute func() ([]networkingv1.IngressLoadBalancerIngress, bool), onChange func([]networkingv1.IngressLoadBalancerIngress)) *publisher {
	// One pending kick is enough: the loop recomputes from the caches, so
	// any number of events since the last computation collapse into one.
	return &publisher{kick: make(chan struct{}, 1), compute: compute, onChange: onChange}
}

// Kick asks for a recomputation without blocking informer handlers.
func (p *publisher) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *publisher) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		addrs, ok := p.compute()
		if !ok || (p.done && SameAddresses(p.last, addrs)) {
			continue
		}
		p.last, p.done = addrs, true
		p.onChange(cloneAddresses(addrs))
	}
}

// handler kicks p on every informer event.
func (p *publisher) handler() cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { p.Kick() },
		UpdateFunc: func(any, any) { p.Kick() },
		DeleteFunc: func(any) { p.Kick() },
	}
}

// runService follows the one publish Service through an informer limited to
// it by a field selector, so no other Service is sent to Torii for this.
func (a *AddressSource) runService(ctx context.Context, onChange func([]networkingv1.IngressLoadBalancerIngress)) error {
	sel := fields.OneTermEqualSelector("metadata.name", a.svc).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return a.cfg.Client.CoreV1().Services(a.svcNS).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return a.cfg.Client.CoreV1().Services(a.svcNS).Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, a.cfg.Client), &corev1.Service{}, 0, cache.Indexers{})
	key := a.svcNS + "/" + a.svc
	missingLogged := false
	pub := newPublisher(func() ([]networkingv1.IngressLoadBalancerIngress, bool) {
		obj, ok, err := inf.GetStore().GetByKey(key)
		if err != nil || !ok {
			if !missingLogged {
				a.log.Warn("publish Service not found; keeping the last published addresses", "service", key)
				missingLogged = true
			}
			return nil, false
		}
		missingLogged = false
		return serviceAddresses(obj.(*corev1.Service)), true
	}, onChange)
	if _, err := inf.AddEventHandler(pub.handler()); err != nil {
		return fmt.Errorf("publish service %s: %w", key, err)
	}
	return runInformers(ctx, pub, inf)
}

// serviceAddresses copies a Service's load-balancer ingress into Ingress
// status entries, ports included.
func serviceAddresses(svc *corev1.Service) []networkingv1.IngressLoadBalancerIngress {
	out := make([]networkingv1.IngressLoadBalancerIngress, 0, len(svc.Status.LoadBalancer.Ingress))
	for _, in := range svc.Status.LoadBalancer.Ingress {
		e := networkingv1.IngressLoadBalancerIngress{IP: in.IP, Hostname: in.Hostname}
		for _, p := range in.Ports {
			ps := networkingv1.IngressPortStatus{Port: p.Port, Protocol: p.Protocol}
			if p.Error != nil {
				msg := *p.Error
				ps.Error = &msg
			}
			e.Ports = append(e.Ports, ps)
		}
		out = append(out, e)
	}
	return out
}

// runInformers starts informers, waits for their caches, publishes once and
// then on every kick until ctx ends.
func runInformers(ctx context.Context, pub *publisher, infs ...cache.SharedIndexInformer) error {
	var wg sync.WaitGroup
	synced := make([]cache.InformerSynced, len(infs))
	for i, inf := range infs {
		synced[i] = inf.HasSynced
		wg.Go(func() { inf.RunWithContext(ctx) })
	}
	defer wg.Wait()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx ended first
	}
	pub.Kick()
	pub.run(ctx)
	return nil
}

// podRetry bounds the wait between attempts to read Torii's own pod at
// start: long enough not to hammer an API server that is down, short
// enough to publish soon after it returns.
const podRetry = 10 * time.Second

// runNodes follows the Torii pods (an informer on PodNamespace limited to
// the replica selector) and the nodes they run on (one informer per such
// node, limited to it by name, so Torii never receives every Node update
// of a large cluster).
func (a *AddressSource) runNodes(ctx context.Context, onChange func([]networkingv1.IngressLoadBalancerIngress)) error {
	self, err := a.ownPod(ctx)
	if err != nil || self == nil {
		return err
	}
	sel := replicaSelector(self)
	podLW := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			a.limitPods(&o, sel)
			return a.cfg.Client.CoreV1().Pods(a.cfg.PodNamespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			a.limitPods(&o, sel)
			return a.cfg.Client.CoreV1().Pods(a.cfg.PodNamespace).Watch(ctx, o)
		},
	}
	pods := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(podLW, a.cfg.Client), &corev1.Pod{}, 0, cache.Indexers{})
	if err := pods.SetTransform(trimPod); err != nil {
		return err
	}
	nodes := newNodeWatch(ctx, a.cfg.Client)
	defer nodes.stopAll()
	pub := newPublisher(func() ([]networkingv1.IngressLoadBalancerIngress, bool) {
		return a.nodeAddresses(pods.GetStore().List(), nodes)
	}, onChange)
	nodes.onEvent = pub.Kick
	if _, err := pods.AddEventHandler(pub.handler()); err != nil {
		return fmt.Errorf("torii pods: %w", err)
	}
	return runInformers(ctx, pub, pods)
}

// limitPods narrows a pod list/watch to the replicas, or to the own pod
// when its labels cannot tell replicas apart.
func (a *AddressSource) limitPods(o *metav1.ListOptions, sel labels.Selector) {
	if isNothing(sel) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", a.cfg.PodName).String()
		return
	}
	o.LabelSelector = sel.String()
}

// ownPod reads Torii's own pod, retrying transient errors until ctx ends
// (nil, nil). A pod that does not exist is a configuration error.
func (a *AddressSource) ownPod(ctx context.Context) (*corev1.Pod, error) {
	wait := 200 * time.Millisecond
	for {
		pod, err := a.cfg.Client.CoreV1().Pods(a.cfg.PodNamespace).Get(ctx, a.cfg.PodName, metav1.GetOptions{})
		if err == nil {
			return pod, nil
		}
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("status addresses: own pod %s/%s not found (check POD_NAME and POD_NAMESPACE): %w", a.cfg.PodNamespace, a.cfg.PodName, err)
		}
		a.log.Warn("status addresses: cannot read own pod; retrying", "pod", a.cfg.PodNamespace+"/"+a.cfg.PodName, "retry_in", wait, "error", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(wait):
		}
		wait = min(2*wait, podRetry)
	}
}

// nodeAddresses computes the node mode's addresses from the cached pods. It
// reports false while a needed node is not known yet, so that start-up does
// not publish a partial set and then the full one.
func (a *AddressSource) nodeAddresses(objs []any, nodes *nodeWatch) ([]networkingv1.IngressLoadBalancerIngress, bool) {
	want := map[string]bool{}
	for _, o := range objs {
		pod := o.(*corev1.Pod)
		if pod.Spec.NodeName == "" {
			continue
		}
		// The own pod counts even before it is Ready: this process is
		// running on it, and leaving it out would publish an empty status
		// whenever a single replica restarts (an empty status removes the
		// DNS records external-dns made).
		self := pod.Name == a.cfg.PodName && pod.DeletionTimestamp == nil
		if self || podReady(pod) {
			want[pod.Spec.NodeName] = true
		}
	}
	nodes.track(want)
	var out []networkingv1.IngressLoadBalancerIngress
	seen := map[string]bool{}
	complete := true
	for name := range want {
		node, known := nodes.get(name)
		if !known {
			complete = false
			continue
		}
		if node == nil {
			continue // deleted node: nothing to publish for it
		}
		for _, ip := range nodeIPs(node) {
			if !seen[ip] {
				seen[ip] = true
				out = append(out, networkingv1.IngressLoadBalancerIngress{IP: ip})
			}
		}
	}
	if !complete {
		return nil, false
	}
	sortAddresses(out)
	return out, true
}

// nodeIPs returns a node's ExternalIPs, or its InternalIPs when it has no
// external one; all of them, so a dual-stack node publishes both families.
func nodeIPs(node *corev1.Node) []string {
	for _, typ := range []corev1.NodeAddressType{corev1.NodeExternalIP, corev1.NodeInternalIP} {
		var ips []string
		for _, ad := range node.Status.Addresses {
			if ad.Type != typ {
				continue
			}
			if a, err := parseAddress(ad.Address); err == nil && a.IP != "" {
				ips = append(ips, a.IP)
			}
		}
		if len(ips) > 0 {
			return ips
		}
	}
	return nil
}

// trimPod keeps only what the node mode reads, to keep the cache small.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a DeletedFinalStateUnknown tombstone
	}
	t := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, DeletionTimestamp: pod.DeletionTimestamp,
		},
		Spec:   corev1.PodSpec{NodeName: pod.Spec.NodeName},
		Status: corev1.PodStatus{Phase: pod.Status.Phase},
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			t.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return t, nil
}

// trimNode keeps only a node's addresses.
func trimNode(obj any) (any, error) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: node.Name, UID: node.UID, ResourceVersion: node.ResourceVersion},
		Status:     corev1.NodeStatus{Addresses: node.Status.Addresses},
	}, nil
}
