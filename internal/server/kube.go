package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/torii-dev/torii/internal/metrics"
	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/source/kube"
	"github.com/torii-dev/torii/internal/status"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

// KubeConfig configures Kubernetes mode (Config.ManifestDir empty).
type KubeConfig struct {
	// Kubeconfig is a kubeconfig file; empty means the in-cluster config.
	Kubeconfig string
	// WatchNamespaces limits the watched namespaces; empty watches all.
	WatchNamespaces []string
	// PublishStatusAddress and PublishService choose the published status
	// address (see package status); with neither, the nodes running Torii
	// pods (PodName/PodNamespace) are published.
	PublishStatusAddress []string
	PublishService       string
	// ElectionID names the Lease in ElectionNamespace that elects the one
	// replica writing status and events.
	ElectionID, ElectionNamespace string
	// UpdateStatusOnShutdown clears the status when the last replica stops.
	UpdateStatusOnShutdown bool
	// PodName and PodNamespace identify this replica (downward API).
	PodName, PodNamespace string
	// LeaseDuration, RenewDeadline and RetryPeriod tune the election;
	// zero takes client-go's usual 15s/10s/2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// APIQPS and APIBurst bound the requests to the API server (status
	// writes, Events, Lease renewals, informer lists share them); zero
	// means 50 and 100. client-go's own default, 5 and 10, would take 200 s
	// to publish the status of 1000 Ingresses.
	APIQPS   float32
	APIBurst int
	// Dedicated configures dedicated mode.
	Dedicated DedicatedConfig
	// OnlyIngresses ("namespace/name", all in one namespace) make this
	// process a dedicated proxy that serves just those Ingresses, which
	// belong to OnlyIngressClass. Such a process neither elects nor writes
	// status or Events: the controller does.
	OnlyIngresses    []string
	OnlyIngressClass string
}

// Defaults of KubeConfig.APIQPS and APIBurst.
const (
	defaultAPIQPS   = 50
	defaultAPIBurst = 100
)

// kubeMode feeds the controller from the Kubernetes API and, on the elected
// leader, writes Ingress status and Events.
type kubeMode struct {
	s       *Server
	cfg     KubeConfig
	log     *slog.Logger
	client  kubernetes.Interface
	source  *kube.Source
	addrSrc *status.AddressSource // nil: no status address source
	writer  *status.Writer        // nil, like elector and events, in a dedicated proxy
	elector *status.Elector
	events  *status.EventSink
	ded     *dedicatedMode // nil unless dedicated mode is enabled

	kick chan struct{} // wakes the leader's status loop; buffered 1

	mu        sync.Mutex
	addrs     []networkingv1.IngressLoadBalancerIngress
	addrsKnow bool
	// stopping stops the status loop from writing once shutdown began, so
	// it never re-adds what the shutdown just cleared.
	stopping atomic.Bool
}

// newKubeMode connects to the API server and builds the Kubernetes parts.
func newKubeMode(s *Server, cfg KubeConfig) (*kubeMode, error) {
	var rc *rest.Config
	var err error
	if cfg.Kubeconfig != "" {
		if rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig: %w", err)
		}
	} else if rc, err = rest.InClusterConfig(); err != nil {
		return nil, fmt.Errorf("no --manifests DIR or --kubeconfig FILE, and not running in a pod: %w", err)
	}
	// client-go logs through klog (leader election, reflector warnings);
	// send those lines to Torii's structured log instead of klog's own
	// format on stderr. klog is process-global: the last server wins,
	// which only matters for tests running several servers in a process.
	klog.SetSlogLogger(s.log)
	rc.UserAgent = "torii/" + s.cfg.Version
	rc.QPS, rc.Burst = cmp.Or(cfg.APIQPS, defaultAPIQPS), cmp.Or(cfg.APIBurst, defaultAPIBurst)
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	k := &kubeMode{s: s, cfg: cfg, log: s.log, client: client, kick: make(chan struct{}, 1)}
	if len(cfg.OnlyIngresses) > 0 || cfg.OnlyIngressClass != "" {
		// A dedicated proxy: the source alone.
		only, err := onlyConfig(cfg.OnlyIngresses, cfg.OnlyIngressClass, s.cfg.Translate.ControllerName)
		if err != nil {
			return nil, err
		}
		if k.source, err = kube.New(kube.Config{Client: client, Namespaces: cfg.WatchNamespaces, Logger: s.log, Only: only}); err != nil {
			return nil, err
		}
		s.metrics.RegisterKube(k.stats)
		return k, nil
	}
	srcCfg := kube.Config{
		Client: client, Namespaces: cfg.WatchNamespaces, Logger: s.log,
		// A status someone else changed is repaired by the next sync.
		OnIngressStatus: k.wake,
	}
	if cfg.Dedicated.Enabled {
		if k.ded, err = newDedicatedMode(k, rc); err != nil {
			return nil, err
		}
		srcCfg.Extra = append(srcCfg.Extra, k.ded.extra())
	}
	if k.source, err = kube.New(srcCfg); err != nil {
		return nil, err
	}
	k.addrSrc, err = status.NewAddressSource(status.AddressConfig{
		Client: client, PublishStatusAddress: cfg.PublishStatusAddress, PublishService: cfg.PublishService,
		PodName: cfg.PodName, PodNamespace: cfg.PodNamespace, Logger: s.log,
	})
	switch {
	case errors.Is(err, status.ErrNoPublishSource):
		s.log.Warn("Ingress status will not be written", "reason", err)
		k.addrSrc = nil
	case err != nil:
		return nil, err
	}
	k.writer = status.NewWriter(status.WriterConfig{Client: client, Logger: s.log})
	ns := cfg.ElectionNamespace
	if ns == "" {
		ns = "default"
	}
	if cfg.ElectionID == "" {
		cfg.ElectionID = "torii-leader"
	}
	if k.elector, err = status.NewElector(status.ElectorConfig{
		Client: client, Namespace: ns, ElectionID: cfg.ElectionID, Identity: cfg.PodName,
		LeaseDuration: cfg.LeaseDuration, RenewDeadline: cfg.RenewDeadline, RetryPeriod: cfg.RetryPeriod,
		Logger: s.log,
	}); err != nil {
		return nil, err
	}
	k.events = status.NewEventSink(client, k.elector.Identity())
	s.metrics.RegisterKube(k.stats)
	return k, nil
}

// stats gathers the Kubernetes-mode counters for a metrics scrape.
func (k *kubeMode) stats() metrics.KubeStats {
	src := k.source.Stats()
	var w status.WriterStats
	if k.writer != nil {
		w = k.writer.Stats()
	}
	return metrics.KubeStats{
		Leader: k.elector != nil && k.elector.IsLeader(),
		Events: src.Events, Unchanged: src.Unchanged, WatchErrors: src.WatchErrors,
		Rebuilds: src.Rebuilds, EndpointUpdates: src.EndpointsCalls,
		StatusUpdates: w.Writes, StatusConflicts: w.Conflicts,
	}
}

// run feeds the controller until ctx is done; the elected leader also keeps
// status and Events up to date.
func (k *kubeMode) run(ctx context.Context) error {
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	goRun := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if k.addrSrc != nil {
		goRun("status addresses", func() error { return k.addrSrc.Run(ctx, k.setAddresses) })
	}
	if k.elector != nil {
		goRun("leader election", func() error { return k.elector.Run(ctx, k.lead, func() {}) })
	}
	if k.ded != nil {
		goRun("dedicated mode", func() error { return k.ded.rec.Run(ctx) })
	}
	goRun("kubernetes source", func() error { return k.source.Run(ctx, k) })
	wg.Wait()
	if k.events != nil {
		k.events.Shutdown()
	}
	close(errc)
	return <-errc
}

// Rebuild implements kube.Handler: a new view of the cluster.
func (k *kubeMode) Rebuild(view *store.Objects, _ uint64) {
	if k.ded != nil {
		view = k.ded.rebuild(view) // without the Ingresses of Dedicated classes
	}
	k.s.applyObjects(view)
	k.wake()
}

// Endpoints implements kube.Handler: the endpoint lane. Only the backends of
// the named Services get new endpoints; anything a rebuild could change
// beyond endpoints falls back to a rebuild.
func (k *kubeMode) Endpoints(view *store.Objects, services []types.NamespacedName, seq uint64) {
	live := k.s.dp.Live()
	if live == nil {
		k.Rebuild(view, seq)
		return
	}
	touched := make(map[types.NamespacedName]bool, len(services))
	for _, svc := range services {
		touched[svc] = true
	}
	for _, b := range live.Snapshot.Backends {
		name := types.NamespacedName{Namespace: b.Service.Namespace, Name: b.Service.Name}
		if !touched[name] {
			continue
		}
		eps, ok := translate.BackendEndpoints(serviceObjects(view, name), b)
		if !ok || !k.s.dp.SetEndpoints(b.ID, eps) {
			k.Rebuild(view, seq)
			return
		}
	}
}

// serviceObjects is the part of view the endpoint lane needs for one
// Service: the Service and its EndpointSlices.
func serviceObjects(view *store.Objects, svc types.NamespacedName) *store.Objects {
	out := &store.Objects{}
	for _, s := range view.Services {
		if s.Namespace == svc.Namespace && s.Name == svc.Name {
			out.Services = append(out.Services, s)
		}
	}
	for _, es := range view.EndpointSlices {
		if es.Namespace == svc.Namespace && es.Labels["kubernetes.io/service-name"] == svc.Name {
			out.EndpointSlices = append(out.EndpointSlices, es)
		}
	}
	return out
}

func (k *kubeMode) setAddresses(addrs []networkingv1.IngressLoadBalancerIngress) {
	k.mu.Lock()
	k.addrs, k.addrsKnow = addrs, true
	k.mu.Unlock()
	k.wake()
}

func (k *kubeMode) addresses() ([]networkingv1.IngressLoadBalancerIngress, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.addrs, k.addrsKnow
}

func (k *kubeMode) wake() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// lead runs while this replica holds the Lease: every rebuild or address
// change brings status and Events up to date.
func (k *kubeMode) lead(ctx context.Context) {
	k.log.Info("elected leader: writing Ingress status and events", "identity", k.elector.Identity())
	if k.ded != nil {
		// The dedicated proxies are reconciled on a loop of their own, so
		// a slow API write there never delays a status update.
		done := make(chan struct{})
		go func() { defer close(done); k.ded.rec.Lead(ctx) }()
		defer func() { <-done }()
	}
	k.wake()
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.kick:
		}
		if k.stopping.Load() {
			continue
		}
		k.syncStatus(ctx)
	}
}

// syncStatus writes the published addresses on owned Ingresses, removes them
// from Ingresses Torii no longer owns, and emits Events for new problems.
func (k *kubeMode) syncStatus(ctx context.Context) {
	res := k.s.ctrl.Result()
	if res == nil {
		return
	}
	owned, others := k.split(res.Owned)
	problems := k.problems(res.Problems, owned)
	var targets []status.Target // dedicated Ingresses: their own addresses
	if k.ded != nil {
		var more []status.Problem
		targets, others, more = k.ded.status(others)
		problems = append(problems, more...)
	}
	k.events.Emit(problems)
	addrs, known := k.addresses()
	if k.addrSrc == nil || !known {
		if len(targets) == 0 {
			return // never publish before the addresses are known
		}
		owned, others, addrs = nil, nil, nil // the dedicated targets only
	}
	for _, ing := range owned {
		targets = append(targets, status.Target{Ingress: ing, Addresses: addrs})
	}
	if err := k.writer.SyncTargets(ctx, targets, others, addrs); err != nil && ctx.Err() == nil {
		k.log.Debug("status sync incomplete", "error", err)
	}
}

// split divides the cached Ingresses into those the last build owned and
// the rest.
func (k *kubeMode) split(ownedRefs []model.ObjectRef) (owned, others []*networkingv1.Ingress) {
	set := make(map[types.NamespacedName]bool, len(ownedRefs))
	for _, r := range ownedRefs {
		set[types.NamespacedName{Namespace: r.Namespace, Name: r.Name}] = true
	}
	for _, ing := range k.source.Ingresses() {
		if set[types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}] {
			owned = append(owned, ing)
		} else {
			others = append(others, ing)
		}
	}
	return owned, others
}

// problems turns translate problems on owned Ingresses into Event problems.
func (k *kubeMode) problems(ps []translate.Problem, owned []*networkingv1.Ingress) []status.Problem {
	uids := make(map[types.NamespacedName]types.UID, len(owned))
	for _, ing := range owned {
		uids[types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}] = ing.UID
	}
	out := make([]status.Problem, 0, len(ps))
	for _, p := range ps {
		if p.Object.Kind != "Ingress" {
			continue
		}
		uid, ok := uids[types.NamespacedName{Namespace: p.Object.Namespace, Name: p.Object.Name}]
		if !ok {
			continue
		}
		out = append(out, status.Problem{
			Object: corev1.ObjectReference{
				APIVersion: "networking.k8s.io/v1", Kind: "Ingress",
				Namespace: p.Object.Namespace, Name: p.Object.Name, UID: uid,
			},
			Reason:  p.Reason,
			Message: p.Message,
		})
	}
	return out
}

// shutdown runs after the listeners drained: the last replica clears the
// status it published, as ingress-nginx did, while it still leads.
func (k *kubeMode) shutdown(ctx context.Context) {
	k.stopping.Store(true)
	if !k.cfg.UpdateStatusOnShutdown || k.addrSrc == nil || k.elector == nil || !k.elector.IsLeader() {
		return
	}
	last := true
	if k.cfg.PodName != "" {
		var err error
		if last, err = status.LastReplica(ctx, k.client, k.cfg.PodNamespace, k.cfg.PodName); err != nil {
			k.log.Warn("cannot tell whether this is the last replica; keeping the status", "error", err)
			return
		}
	}
	if !last {
		return
	}
	addrs, known := k.addresses()
	res := k.s.ctrl.Result()
	if !known || res == nil {
		return
	}
	owned, _ := k.split(res.Owned)
	if err := k.writer.Clear(ctx, owned, addrs); err != nil {
		k.log.Warn("clearing Ingress status at shutdown", "error", err)
		return
	}
	k.log.Info("last replica: cleared Ingress status", "ingresses", len(owned))
}
