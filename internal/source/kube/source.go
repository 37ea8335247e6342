package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/torii-dev/torii/internal/store"
)

const (
	defaultDebounce = 100 * time.Millisecond
	defaultMaxDelay = time.Second

	// syncReportInterval is how often Run names the caches it is still
	// waiting for, e.g. while RBAC forbids a list or the API server is
	// down at start-up.
	syncReportInterval = 10 * time.Second
)

// Config configures a Source.
type Config struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// Namespaces limits the watched namespaces (--watch-namespace,
	// repeatable). Empty means cluster-wide. IngressClasses are
	// cluster-scoped and always watched cluster-wide.
	Namespaces []string
	// Debounce is how long the watched objects must be quiet after a
	// change before the handler is called, so that a burst (kubectl apply
	// of many objects, a rollout) costs one call. Zero means 100ms.
	Debounce time.Duration
	// MaxDelay caps how long a steady stream of changes can postpone a
	// call: the handler is called at most this long after the first
	// change it has not seen. Zero means 1s (or Debounce, if longer).
	MaxDelay time.Duration
	// Logger receives sync, connection and delivery messages. Nil means
	// slog.Default().
	Logger *slog.Logger
	// OnIngressStatus, if set, is called when an Ingress update changed
	// nothing but its status. Such updates start no rebuild (status is no
	// input to routing, and most are the echo of Torii's own writes, so
	// rebuilding would only turn every status write into a rebuild); the
	// callback lets the status writer repair a status someone else
	// changed. It runs on an informer goroutine and must not block.
	OnIngressStatus func()
	// Only, if set, scopes the source to a few Ingresses of one namespace:
	// a dedicated proxy (--only-ingress). See Only.
	Only *Only
	// Extra are further informers the source runs: their changes start a
	// Rebuild, and the first view waits for them to sync (dedicated mode's
	// IngressClassConfigs, which decide what the shared proxies serve).
	Extra []Extra
}

// Only scopes a Source to the named Ingresses, all in one namespace. Each
// gets an informer of its own selected by name (a metadata.name field
// selector, which RBAC resourceNames can authorise); Services,
// EndpointSlices and TLS Secrets are watched in that namespace only; and
// no IngressClass is watched (that would need cluster-wide access): Class
// stands in for the IngressClasses in every view.
type Only struct {
	Ingresses []types.NamespacedName
	Class     *networkingv1.IngressClass
}

// Extra is one further informer run by the Source.
type Extra struct {
	// Kind names the objects in logs and metrics.
	Kind     string
	Informer cache.SharedIndexInformer
}

// Handler receives the source's output. Calls are never concurrent, and
// each returns before the next is made.
//
// The views passed in hold the informers' cached objects (see the package
// documentation): read them, keep them, never modify them.
type Handler interface {
	// Rebuild gets a complete view, built from the caches alone (never a
	// GET), once after the caches first sync and then after every
	// coalesced change of an IngressClass, Ingress, Service or Secret.
	// seq is the source's event sequence number covered by the view:
	// every informer event up to seq is reflected in it. Each informer
	// event increments seq before the view is taken; later events may
	// already show too, and cause another call.
	Rebuild(view *store.Objects, seq uint64)
	// Endpoints gets, after EndpointSlice changes (coalesced with the same
	// debounce) and when no Rebuild is pending, the current view and the
	// Services, sorted, whose slices changed since the last call, so the
	// caller can recompute only those backends' endpoints (the endpoint
	// lane: no rebuild). seq is as for Rebuild.
	Endpoints(view *store.Objects, services []types.NamespacedName, seq uint64)
}

// Source watches the cluster through shared informers and feeds a Handler.
// Its methods are safe for concurrent use; Run may be called only once,
// since informers cannot be restarted.
type Source struct {
	log        *slog.Logger
	debounce   time.Duration
	maxDelay   time.Duration
	namespaces []string // sorted, unique; nil for cluster-wide
	onStatus   func()   // Config.OnIngressStatus; never nil

	factories []informers.SharedInformerFactory
	classes   cache.SharedIndexInformer // nil with Config.Only
	// fixedClasses stand in for the classes informer with Config.Only.
	fixedClasses []*networkingv1.IngressClass
	extra        []Extra
	scopes       []*scope // one per watched namespace, or one cluster-wide
	syncs        []syncCheck

	started atomic.Bool
	synced  atomic.Bool

	// wake tells the Run loop that pend changed. Buffered (1): observe
	// never blocks, and one pending wake-up covers any number of events.
	wake chan struct{}

	mu     sync.Mutex
	seq    uint64  // informer events counted so far
	pend   pending // changes not yet delivered
	counts counts
}

// pending is what has changed since the last call.
type pending struct {
	rebuild  bool                              // an IngressClass, Ingress, Service or Secret changed
	services map[types.NamespacedName]struct{} // Services whose EndpointSlices changed
	first    time.Time                         // first change not yet delivered; zero when none
	last     time.Time                         // latest change
}

func (p *pending) any() bool { return p.rebuild || len(p.services) > 0 }

// due returns when the pending changes should be delivered: once the
// objects have been quiet for debounce, but no later than maxDelay after the
// first change, so that a steady stream cannot hold the view back forever.
func (p *pending) due(debounce, maxDelay time.Duration) time.Time {
	quiet := p.last.Add(debounce)
	if capped := p.first.Add(maxDelay); capped.Before(quiet) {
		return capped
	}
	return quiet
}

// counts are the source's counters, guarded by Source.mu.
type counts struct {
	events        [numKinds]uint64
	unchanged     uint64
	watchErrors   uint64
	rebuilds      uint64
	endpointCalls uint64
	superseded    uint64
	extra         map[string]uint64 // by Extra.Kind
}

// Stats are the source's counters since New, for metrics and tests.
type Stats struct {
	// Seq is the current event sequence number.
	Seq uint64
	// Events counts, by kind ("IngressClass", "Ingress", "Service",
	// "EndpointSlice", "Secret"), the informer events that changed
	// something: adds, updates to a new resourceVersion, deletes.
	Events map[string]uint64
	// Unchanged counts updates skipped because the resourceVersion was the
	// same (resyncs, relists after reconnecting).
	Unchanged uint64
	// WatchErrors counts the list and watch failures client-go reports
	// (access denied, unreachable API server on a plain list, ...), not
	// watches that merely ended. In watch-list mode, client-go's default
	// since v0.35, connection failures are retried inside client-go and
	// not reported, so this is no outage detector.
	WatchErrors uint64
	// Rebuilds and EndpointsCalls count the Handler calls made.
	Rebuilds       uint64
	EndpointsCalls uint64
	// Superseded counts pending Endpoints calls dropped because a Rebuild
	// of the same changes was delivered instead.
	Superseded uint64
}

// New returns a Source for cfg. It creates the informers but starts
// nothing; Run does.
func New(cfg Config) (*Source, error) {
	if cfg.Client == nil {
		return nil, errors.New("kube source: no client")
	}
	if cfg.Debounce < 0 || cfg.MaxDelay < 0 {
		return nil, errors.New("kube source: negative debounce or maximum delay")
	}
	if cfg.MaxDelay != 0 && cfg.MaxDelay < cfg.Debounce {
		return nil, fmt.Errorf("kube source: maximum delay %v is shorter than the debounce %v", cfg.MaxDelay, cfg.Debounce)
	}
	namespaces, err := cleanNamespaces(cfg.Namespaces)
	if err != nil {
		return nil, err
	}
	s := &Source{
		log:        cfg.Logger,
		debounce:   cmp.Or(cfg.Debounce, defaultDebounce),
		namespaces: namespaces,
		onStatus:   cfg.OnIngressStatus,
		wake:       make(chan struct{}, 1),
	}
	if s.onStatus == nil {
		s.onStatus = func() {}
	}
	s.maxDelay = cmp.Or(cfg.MaxDelay, max(defaultMaxDelay, s.debounce))
	if s.log == nil {
		s.log = slog.Default()
	}

	if cfg.Only != nil {
		if err := s.scopeOnly(cfg.Client, cfg.Only); err != nil {
			return nil, err
		}
	} else {
		cluster := newFactory(cfg.Client, "")
		s.factories = append(s.factories, cluster)
		s.classes = cluster.Networking().V1().IngressClasses().Informer()
		if err := s.register(s.classes, kindIngressClass, scopeName("")); err != nil {
			return nil, err
		}
		if len(namespaces) == 0 {
			s.scopes = []*scope{newScope(cluster, "", true)}
		}
		for _, ns := range namespaces {
			f := newFactory(cfg.Client, ns)
			s.factories = append(s.factories, f)
			s.scopes = append(s.scopes, newScope(f, ns, true))
		}
	}
	for _, sc := range s.scopes {
		where := scopeName(sc.namespace)
		for _, inf := range sc.ingresses {
			if err := s.register(inf, kindIngress, where); err != nil {
				return nil, err
			}
		}
		for _, r := range []struct {
			inf  cache.SharedIndexInformer
			kind kind
		}{
			{sc.services, kindService},
			{sc.slices, kindEndpointSlice},
			{sc.secrets, kindSecret},
		} {
			if err := s.register(r.inf, r.kind, where); err != nil {
				return nil, err
			}
		}
	}
	for _, e := range cfg.Extra {
		if e.Informer == nil || e.Kind == "" {
			return nil, errors.New("kube source: an extra informer needs a kind and an informer")
		}
		s.extra = append(s.extra, e)
		if err := s.registerExtra(e); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// scopeOnly sets up the informers of Config.Only.
func (s *Source) scopeOnly(client kubernetes.Interface, only *Only) error {
	if len(s.namespaces) > 0 {
		return errors.New("kube source: Only and Namespaces are exclusive")
	}
	if len(only.Ingresses) == 0 || only.Class == nil || only.Class.Name == "" {
		return errors.New("kube source: Only needs Ingresses and a Class")
	}
	ns := only.Ingresses[0].Namespace
	if _, err := cleanNamespaces([]string{ns}); err != nil {
		return err
	}
	s.namespaces = []string{ns}
	f := newFactory(client, ns)
	s.factories = append(s.factories, f)
	sc := newScope(f, ns, false)
	seen := map[string]bool{}
	for _, ing := range only.Ingresses {
		if ing.Namespace != ns {
			return fmt.Errorf("kube source: Only: Ingresses %s/%s and %s/%s are in different namespaces",
				ns, only.Ingresses[0].Name, ing.Namespace, ing.Name)
		}
		if ing.Name == "" || seen[ing.Name] {
			continue
		}
		seen[ing.Name] = true
		fi := newNamedFactory(client, ns, ing.Name)
		s.factories = append(s.factories, fi)
		sc.ingresses = append(sc.ingresses, fi.Networking().V1().Ingresses().Informer())
	}
	s.scopes = []*scope{sc}
	s.fixedClasses = []*networkingv1.IngressClass{only.Class.DeepCopy()}
	return nil
}

// cleanNamespaces validates, sorts and de-duplicates the watched
// namespaces.
func cleanNamespaces(in []string) ([]string, error) {
	var out []string
	for _, ns := range in {
		if ns == "" {
			return nil, errors.New("kube source: empty namespace name (watch no namespace in particular to watch all of them)")
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("kube source: invalid namespace name %q: %s", ns, strings.Join(errs, "; "))
		}
		out = append(out, ns)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Run starts the informers, waits for every cache to sync, delivers the
// first Rebuild, and then delivers calls until ctx is done; it returns nil
// then, after the informers have stopped. Before the caches sync nothing is
// delivered, so the handler never sees an empty or partial view.
//
// While the API server is unreachable the informers keep their caches and
// reconnect on their own, and delivery resumes with the changes made
// meanwhile; a relist that changes nothing delivers nothing.
func (s *Source) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("kube source: Run needs a Handler")
	}
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("kube source: Run was already called; informers cannot be restarted")
	}
	ictx, stop := context.WithCancel(ctx)
	var extras sync.WaitGroup
	defer func() {
		stop()
		// Shutdown waits for the informers' goroutines, so none of them
		// (and no event) outlives Run.
		for _, f := range s.factories {
			f.Shutdown()
		}
		extras.Wait()
	}()
	t0 := time.Now()
	for _, f := range s.factories {
		f.StartWithContext(ictx)
	}
	for _, e := range s.extra {
		extras.Go(func() { e.Informer.RunWithContext(ictx) })
	}
	if !s.waitForSync(ictx, t0) {
		return nil
	}
	s.synced.Store(true)
	took := time.Since(t0)
	view := s.deliver(h, true)
	s.log.Info("Kubernetes caches synced; initial view delivered", "scope", s.scopeDesc(), "took", took.Round(time.Millisecond),
		"ingressClasses", len(view.IngressClasses), "ingresses", len(view.Ingresses), "services", len(view.Services),
		"endpointSlices", len(view.EndpointSlices), "tlsSecrets", len(view.Secrets))
	return s.loop(ctx, h)
}

// waitForSync waits until every informer has synced and delivered its
// initial objects to the source, and reports false if ctx ended first.
func (s *Source) waitForSync(ctx context.Context, since time.Time) bool {
	report := time.NewTicker(syncReportInterval)
	defer report.Stop()
	for _, c := range s.syncs {
		for waiting := true; waiting; {
			select {
			case <-c.checker.Done():
				waiting = false
			case <-ctx.Done():
				return false
			case <-report.C:
				var names []string
				for _, c := range s.syncs {
					if !cache.IsDone(c.checker) {
						names = append(names, c.name)
					}
				}
				s.log.Warn("still waiting for Kubernetes caches to sync; no view delivered yet",
					"waiting", time.Since(since).Round(time.Second), "unsynced", names)
			}
		}
	}
	return true
}

// loop delivers coalesced changes until ctx is done.
func (s *Source) loop(ctx context.Context, h Handler) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var fire <-chan time.Time // nil while the timer is not armed
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-fire:
			fire = nil
		}
		if ctx.Err() != nil {
			return nil
		}
		// The timer is always derived from the current state, so a
		// wake-up that raced with a delivery (its changes already taken)
		// or a stale timer costs nothing.
		s.mu.Lock()
		due, ok := s.pend.due(s.debounce, s.maxDelay), s.pend.any()
		s.mu.Unlock()
		if !ok {
			continue
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			fire = timer.C
			continue
		}
		timer.Stop()
		fire = nil
		s.deliver(h, false)
	}
}

// deliver takes the pending changes and makes the call they need: Rebuild
// if anything but EndpointSlices changed (or initial is set), since it
// covers the endpoints too, else Endpoints. It returns the view delivered.
func (s *Source) deliver(h Handler, initial bool) *store.Objects {
	s.mu.Lock()
	p := s.pend
	s.pend = pending{}
	// Read under the lock that observe increments it under: every event
	// counted in seq had its object in the cache before it was counted,
	// so the view taken below reflects it.
	seq := s.seq
	rebuild := initial || p.rebuild
	switch {
	case rebuild:
		s.counts.rebuilds++
		if len(p.services) > 0 && !initial {
			s.counts.superseded++
		}
	default:
		s.counts.endpointCalls++
	}
	s.mu.Unlock()

	t0 := time.Now()
	view := s.view()
	tView := time.Since(t0)
	var services []types.NamespacedName
	if rebuild {
		h.Rebuild(view, seq)
	} else {
		services = slices.SortedFunc(maps.Keys(p.services), func(a, b types.NamespacedName) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
		})
		h.Endpoints(view, services, seq)
	}
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		attrs := []any{"seq", seq, "view", tView.Round(time.Microsecond), "handler", (time.Since(t0) - tView).Round(time.Microsecond)}
		if !p.first.IsZero() {
			attrs = append(attrs, "since_first_change", t0.Sub(p.first).Round(time.Millisecond))
		}
		switch {
		case initial:
			s.log.Debug("initial Rebuild delivered", attrs...)
		case rebuild:
			s.log.Debug("Rebuild delivered", append(attrs, "endpoint_services_folded_in", len(p.services))...)
		default:
			s.log.Debug("Endpoints delivered", append(attrs, "services", len(services))...)
		}
	}
	return view
}

// HasSynced reports whether every cache has synced. Once true it stays
// true, also while the API server is unreachable: the caches keep their
// objects.
func (s *Source) HasSynced() bool { return s.synced.Load() }

// View returns the current view of the caches, as Rebuild would get it, for
// callers outside the Handler such as an admission webhook. Before
// HasSynced it may be partial. The objects are shared: read-only.
func (s *Source) View() *store.Objects { return s.view() }

// Ingresses returns the cached Ingresses in the watched namespaces, sorted
// by namespace and name, e.g. for the status writer. Before HasSynced the
// list may be partial. The objects are shared: read-only.
func (s *Source) Ingresses() []*networkingv1.Ingress {
	var out []*networkingv1.Ingress
	for _, sc := range s.scopes {
		for _, inf := range sc.ingresses {
			out = appendCached[*networkingv1.Ingress](out, inf)
		}
	}
	sortByName(out)
	return out
}

// Stats returns the source's counters.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Seq:            s.seq,
		Events:         make(map[string]uint64, numKinds),
		Unchanged:      s.counts.unchanged,
		WatchErrors:    s.counts.watchErrors,
		Rebuilds:       s.counts.rebuilds,
		EndpointsCalls: s.counts.endpointCalls,
		Superseded:     s.counts.superseded,
	}
	for k := range numKinds {
		st.Events[k.String()] = s.counts.events[k]
	}
	for _, e := range s.extra {
		st.Events[e.Kind] = s.counts.extra[e.Kind]
	}
	return st
}

// scopeDesc describes the watched namespaces for logs.
func (s *Source) scopeDesc() string {
	if len(s.namespaces) == 0 {
		return "cluster-wide"
	}
	return "namespaces " + strings.Join(s.namespaces, ",")
}
