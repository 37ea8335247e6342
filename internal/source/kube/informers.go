package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// kind is one of the object kinds the source watches.
type kind int

const (
	kindIngressClass kind = iota
	kindIngress
	kindService
	kindEndpointSlice
	kindSecret
	numKinds
)

// kindExtra is the kind of every Config.Extra informer; its events are
// counted by Extra.Kind.
const kindExtra = numKinds

var kindNames = [numKinds]string{"IngressClass", "Ingress", "Service", "EndpointSlice", "Secret"}

func (k kind) String() string {
	if k == kindExtra {
		return "Extra"
	}
	return kindNames[k]
}

// scope holds the informers of the namespaced kinds for one watched
// namespace, or for the whole cluster.
type scope struct {
	namespace string // "" for cluster-wide
	// ingresses is one informer, or with Config.Only one per name.
	ingresses []cache.SharedIndexInformer
	services  cache.SharedIndexInformer
	slices    cache.SharedIndexInformer
	secrets   cache.SharedIndexInformer
}

// tlsSecretSelector limits the Secret informers to TLS Secrets. Routing only
// ever reads certificates from kubernetes.io/tls Secrets, so the API server
// filters out every other Secret: less memory and traffic, and service
// account tokens and other credentials never enter Torii's heap. (A Secret's
// type is immutable, so an object cannot move in or out of the selection.)
var tlsSecretSelector = fields.OneTermEqualSelector("type", string(corev1.SecretTypeTLS)).String()

// newFactory returns an informer factory for namespace ns ("" for the whole
// cluster) whose informers all strip their objects before caching them.
func newFactory(client kubernetes.Interface, ns string) informers.SharedInformerFactory {
	opts := []informers.SharedInformerOption{informers.WithTransform(strip)}
	if ns != "" {
		opts = append(opts, informers.WithNamespace(ns))
	}
	// No periodic resync: it would only replay the cache to the handlers,
	// which skip unchanged resourceVersions anyway.
	return informers.NewSharedInformerFactoryWithOptions(client, 0, opts...)
}

// newNamedFactory returns a factory like newFactory's whose informers list
// and watch only the objects named name (for the Ingress informers of
// Config.Only).
func newNamedFactory(client kubernetes.Interface, ns, name string) informers.SharedInformerFactory {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	return informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(strip), informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = sel }))
}

// newScope creates the namespaced informers of f, whose namespace is ns;
// the Ingress informer only if withIngresses (Config.Only adds its own).
func newScope(f informers.SharedInformerFactory, ns string, withIngresses bool) *scope {
	var ingresses []cache.SharedIndexInformer
	if withIngresses {
		ingresses = []cache.SharedIndexInformer{f.Networking().V1().Ingresses().Informer()}
	}
	return &scope{
		namespace: ns,
		ingresses: ingresses,
		services:  f.Core().V1().Services().Informer(),
		slices:    f.Discovery().V1().EndpointSlices().Informer(),
		// The factory's own Secret informer cannot take a field selector
		// of its own (the factory's list options apply to every kind), so
		// the filtered one is registered in its place. InformerFor still
		// applies the factory's transform.
		secrets: f.InformerFor(&corev1.Secret{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
			return coreinformers.NewFilteredSecretInformer(c, ns, resync,
				cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
				func(o *metav1.ListOptions) { o.FieldSelector = tlsSecretSelector })
		}),
	}
}

// strip is the informers' transform. It runs on every object before it
// enters a cache and removes what Torii never reads, which is most of the
// memory an idle cache would hold: managedFields are often larger than the
// object itself, and the last-applied annotation repeats the whole
// manifest. Secrets keep only the certificate and key. strip modifies obj
// in place, which is safe because the informer has just decoded it, and is
// idempotent, as client-go asks of transforms.
func strip(obj any) (any, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		// Tombstones (cache.DeletedFinalStateUnknown) are never passed to
		// transforms; anything else without metadata is left alone.
		return obj, nil
	}
	m.SetManagedFields(nil)
	if a := m.GetAnnotations(); a != nil {
		delete(a, corev1.LastAppliedConfigAnnotation)
	}
	if s, ok := obj.(*corev1.Secret); ok {
		for k := range s.Data {
			if k != corev1.TLSCertKey && k != corev1.TLSPrivateKeyKey {
				delete(s.Data, k)
			}
		}
		s.StringData = nil // write-only; never set on a read, but never kept either
	}
	return obj, nil
}

// register subscribes the source to inf's events and makes the source wait
// for inf (and for the delivery of its initial objects) before the first
// view. where names the scope in logs.
func (s *Source) register(inf cache.SharedIndexInformer, k kind, where string) error {
	name := k.String() + " informer " + where
	reg, err := inf.AddEventHandler(eventHandler{s: s, kind: k})
	if err != nil {
		return fmt.Errorf("%s: add event handler: %w", name, err)
	}
	if err := inf.SetWatchErrorHandlerWithContext(s.watchErrorHandler(k, where)); err != nil {
		return fmt.Errorf("%s: set watch error handler: %w", name, err)
	}
	// The registration, unlike the informer, is done only once our handler
	// has received every object of the initial list, so after waiting for
	// it none of those initial adds can arrive late and cause a second,
	// redundant Rebuild.
	s.syncs = append(s.syncs, syncCheck{name: name, checker: reg.HasSyncedChecker()})
	return nil
}

// registerExtra subscribes the source to a Config.Extra informer, as
// register does.
func (s *Source) registerExtra(e Extra) error {
	name := e.Kind + " informer"
	reg, err := e.Informer.AddEventHandler(eventHandler{s: s, kind: kindExtra, extra: e.Kind})
	if err != nil {
		return fmt.Errorf("%s: add event handler: %w", name, err)
	}
	if err := e.Informer.SetWatchErrorHandlerWithContext(s.watchErrorHandler(kindExtra, e.Kind)); err != nil {
		return fmt.Errorf("%s: set watch error handler: %w", name, err)
	}
	s.syncs = append(s.syncs, syncCheck{name: name, checker: reg.HasSyncedChecker()})
	return nil
}

// syncCheck is one cache the first view waits for.
type syncCheck struct {
	name    string
	checker cache.DoneChecker
}

// eventHandler forwards one informer's events to the source.
type eventHandler struct {
	s     *Source
	kind  kind
	extra string // Extra.Kind when kind is kindExtra
}

func (h eventHandler) OnAdd(obj any, _ bool)       { h.s.observeAs(h.kind, h.extra, nil, obj) }
func (h eventHandler) OnUpdate(oldObj, newObj any) { h.s.observeAs(h.kind, h.extra, oldObj, newObj) }
func (h eventHandler) OnDelete(obj any)            { h.s.observeAs(h.kind, h.extra, obj, nil) }

// observe records one informer event: the object before (nil on add) and
// after (nil on delete). It runs on the informers' goroutines, so it only
// takes the lock briefly and never blocks on the handler: a slow Rebuild
// must not stall the informers.
func (s *Source) observe(k kind, oldObj, newObj any) { s.observeAs(k, "", oldObj, newObj) }

// observeAs is observe for an informer of kind k; extra is the Extra.Kind
// of a kindExtra informer.
func (s *Source) observeAs(k kind, extra string, oldObj, newObj any) {
	oldObj, newObj = untomb(oldObj), untomb(newObj)
	if k == kindSecret && !isTLSSecret(oldObj) && !isTLSSecret(newObj) {
		// The field selector keeps other Secrets out of the cache; this
		// guard only matters for clients that ignore field selectors, such
		// as client-go's fake clientset.
		return
	}
	if oldObj != nil && newObj != nil {
		if rv := resourceVersion(newObj); rv != "" && rv == resourceVersion(oldObj) {
			// A resync or a relist after reconnecting replays objects
			// that did not change; rebuilding for them would be wasted
			// work (and, for every object at once, a thundering herd).
			s.mu.Lock()
			s.counts.unchanged++
			s.mu.Unlock()
			return
		}
		if k == kindIngress && onlyStatusChanged(oldObj, newObj) {
			s.mu.Lock()
			s.counts.unchanged++
			s.mu.Unlock()
			s.onStatus()
			return
		}
	}
	var services []types.NamespacedName
	if k == kindEndpointSlice {
		// A slice moved to another Service (label changed) touches both.
		services = appendService(appendService(nil, oldObj), newObj)
	}

	now := time.Now()
	s.mu.Lock()
	s.seq++
	if k == kindExtra {
		if s.counts.extra == nil {
			s.counts.extra = map[string]uint64{}
		}
		s.counts.extra[extra]++
	} else {
		s.counts.events[k]++
	}
	switch {
	case k != kindEndpointSlice:
		s.pend.rebuild = true
	case len(services) > 0:
		if s.pend.services == nil {
			s.pend.services = make(map[types.NamespacedName]struct{})
		}
		for _, svc := range services {
			s.pend.services[svc] = struct{}{}
		}
	default:
		// A slice that belongs to no Service feeds no backend.
		s.mu.Unlock()
		return
	}
	if s.pend.first.IsZero() {
		s.pend.first = now
	}
	s.pend.last = now
	s.mu.Unlock()

	select {
	case s.wake <- struct{}{}:
	default: // a wake-up is already pending; the loop reads the state anew
	}
}

// untomb returns the last known object of a deletion the informer missed
// (cache.DeletedFinalStateUnknown), else obj.
func untomb(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}

// onlyStatusChanged reports whether an Ingress update changed nothing but
// its status (and the bookkeeping every write changes: resourceVersion,
// managedFields). Such updates are mostly the echo of Torii's own status
// writes, and status is never an input to routing, so a rebuild for them
// would be wasted and could start a write-rebuild loop.
//
// metadata.generation is not enough for this: it ignores annotations,
// which carry routing configuration.
func onlyStatusChanged(oldObj, newObj any) bool {
	o, ok1 := oldObj.(*networkingv1.Ingress)
	n, ok2 := newObj.(*networkingv1.Ingress)
	if !ok1 || !ok2 || o == nil || n == nil {
		return false
	}
	a, b := o.ObjectMeta, n.ObjectMeta
	a.ResourceVersion, b.ResourceVersion = "", ""
	a.ManagedFields, b.ManagedFields = nil, nil
	return equality.Semantic.DeepEqual(a, b) && equality.Semantic.DeepEqual(o.Spec, n.Spec)
}

func isTLSSecret(obj any) bool {
	s, ok := obj.(*corev1.Secret)
	return ok && s.Type == corev1.SecretTypeTLS
}

func resourceVersion(obj any) string {
	m, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return m.GetResourceVersion()
}

// appendService appends the Service that EndpointSlice obj belongs to, if
// obj is a slice with a kubernetes.io/service-name label and that Service
// is not the last one in dst.
func appendService(dst []types.NamespacedName, obj any) []types.NamespacedName {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return dst
	}
	name := es.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return dst
	}
	svc := types.NamespacedName{Namespace: es.Namespace, Name: name}
	if len(dst) > 0 && dst[len(dst)-1] == svc {
		return dst
	}
	return append(dst, svc)
}

// watchWarnInterval spaces out warnings about one informer failing to list
// or watch: during an outage each reflector retries with backoff, and one
// line per attempt per informer per namespace would bury everything else.
const watchWarnInterval = time.Minute

// watchErrorHandler replaces client-go's default, which logs through klog,
// with one that logs through the source's logger and counts failures.
func (s *Source) watchErrorHandler(k kind, where string) cache.WatchErrorHandlerWithContext {
	var (
		mu       sync.Mutex
		lastWarn time.Time
		missed   int // failures logged at debug level since the last warning
	)
	return func(ctx context.Context, _ *cache.Reflector, err error) {
		switch {
		case ctx.Err() != nil:
			return // shutting down: the watch ended because Run is returning
		case errors.Is(err, io.EOF):
			return // the server closed the watch normally; it is re-opened
		case errors.Is(err, io.ErrUnexpectedEOF), apierrors.IsResourceExpired(err), apierrors.IsGone(err):
			// The watch broke off or fell behind the server's history;
			// the reflector resumes or relists, and relisting unchanged
			// objects causes no call.
			s.log.Debug("Kubernetes watch ended; resuming", "kind", k, "scope", where, "err", err)
			return
		}
		s.mu.Lock()
		s.counts.watchErrors++
		s.mu.Unlock()

		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if now.Sub(lastWarn) < watchWarnInterval {
			missed++
			s.log.Debug("cannot list or watch; keeping the cached objects and retrying", "kind", k, "scope", where, "err", err)
			return
		}
		attrs := []any{"kind", k, "scope", where, "err", err}
		if missed > 0 {
			attrs = append(attrs, "failures_since_last_warning", missed)
		}
		s.log.Warn("cannot list or watch; keeping the cached objects and retrying", attrs...)
		lastWarn, missed = now, 0
	}
}

// scopeName names a namespace scope in logs.
func scopeName(ns string) string {
	if ns == "" {
		return "cluster-wide"
	}
	return "namespace " + ns
}
