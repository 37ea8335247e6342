package dedicated

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/torii-dev/torii/internal/apis/toriiv1alpha1"
	"github.com/torii-dev/torii/internal/status"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

// FieldManager is the server-side apply field manager of the children.
const FieldManager = "torii-dedicated"

// Retry and resync bounds of the reconcile loop.
const (
	firstRetry = time.Second
	maxRetry   = 30 * time.Second
	// resyncEvery re-checks every child even without an event, as
	// insurance against a missed one.
	resyncEvery = 10 * time.Minute
	// syncReport is how often Run names the caches it still waits for.
	syncReport = 10 * time.Second
)

// Config configures a Reconciler.
type Config struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Namespaces limits the watched namespaces, as for the kube source;
	// empty means cluster-wide.
	Namespaces []string
	// Translate decides ownership, as for the shared proxies.
	Translate translate.Config
	// Image is the proxy image.
	Image string
	// Logger receives changes and failures; nil discards.
	Logger *slog.Logger
	// OnProblems is called from the reconcile loop whenever the set of
	// Problems changes, so that the caller reports it; it must not block.
	OnProblems func()
}

// Reconciler keeps the children of every dedicated unit as desired: it
// creates and repairs them (server-side apply) and deletes those whose unit
// is gone. Every replica runs its informers (Run), so a new leader starts
// with warm caches; only the leader reconciles (Lead).
type Reconciler struct {
	cfg      Config
	log      *slog.Logger
	settings Settings
	selector string

	configs   cache.SharedIndexInformer
	factories []informers.SharedInformerFactory
	kinds     []*kind

	synced atomic.Bool
	kick   chan struct{} // buffered 1

	mu       sync.Mutex
	plan     *Plan
	problems []status.Problem // of the last pass; see Problems

	// Touched only by the reconcile loop (one at a time).
	applied map[string]record
	failed  map[string]string
	// desired caches each unit's apply bodies while its inputs are the
	// same, so a pass over many unchanged units costs map lookups.
	desired map[string]desiredUnit
}

// desiredUnit is one unit's children, ready to apply.
type desiredUnit struct {
	fingerprint string
	items       []applyItem
}

// applyItem is one child and its server-side apply body.
type applyItem struct {
	kind *kind
	obj  Object // the desired object data encodes
	ns   string
	name string
	data []byte
	hash string
}

// record is this process's last apply of one child.
type record struct {
	hash string // of the applied configuration
	// from and to are the object's version token before and after the
	// apply: a cache still showing from has merely not caught up.
	from, to string
}

// New creates the informers; Run starts them.
func New(cfg Config) (*Reconciler, error) {
	if cfg.Client == nil || cfg.Dynamic == nil {
		return nil, errors.New("dedicated: a client and a dynamic client are required")
	}
	if cfg.Image == "" {
		return nil, errors.New("dedicated: no proxy image (--dedicated-image)")
	}
	if cfg.Translate.ControllerName == "" {
		return nil, errors.New("dedicated: no controller name")
	}
	r := &Reconciler{
		cfg:      cfg,
		log:      cfg.Logger,
		settings: Settings{Image: cfg.Image, ControllerName: cfg.Translate.ControllerName},
		kick:     make(chan struct{}, 1),
		applied:  map[string]record{},
		failed:   map[string]string{},
		desired:  map[string]desiredUnit{},
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.selector = labels.SelectorFromSet(labels.Set{
		LabelManagedBy:  managedByValue,
		LabelController: ControllerHash(cfg.Translate.ControllerName),
	}).String()

	r.configs = dynamicinformer.NewFilteredDynamicInformer(cfg.Dynamic, toriiv1alpha1.GroupVersionResource,
		metav1.NamespaceAll, 0, cache.Indexers{}, nil).Informer()
	if err := r.configs.SetTransform(stripManagedFields); err != nil {
		return nil, err
	}

	scopes := cfg.Namespaces
	if len(scopes) == 0 {
		scopes = []string{metav1.NamespaceAll}
	}
	r.kinds = newKinds(cfg.Client)
	for _, ns := range scopes {
		opts := []informers.SharedInformerOption{
			informers.WithTransform(stripManagedFields),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = r.selector }),
		}
		if ns != "" {
			opts = append(opts, informers.WithNamespace(ns))
		}
		f := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, opts...)
		r.factories = append(r.factories, f)
		for _, k := range r.kinds {
			inf := k.informer(f)
			if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
				AddFunc:    func(any) { r.Kick() },
				UpdateFunc: func(any, any) { r.Kick() },
				DeleteFunc: func(any) { r.Kick() },
			}); err != nil {
				return nil, err
			}
			k.informers = append(k.informers, inf)
		}
	}
	return r, nil
}

// ConfigInformer is the informer on IngressClassConfigs. The caller runs
// it (the kube source does, so that its first view waits for it and every
// change starts a rebuild); the reconciler only reads its cache.
func (r *Reconciler) ConfigInformer() cache.SharedIndexInformer { return r.configs }

// Configs returns the cached IngressClassConfigs, each defaulted and
// validated.
func (r *Reconciler) Configs() Configs {
	c := Configs{Valid: map[string]*toriiv1alpha1.IngressClassConfig{}, Invalid: map[string]error{}}
	for _, obj := range r.configs.GetStore().List() {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		conf, err := toriiv1alpha1.FromUnstructured(u)
		if err != nil {
			c.Invalid[u.GetName()] = err
			continue
		}
		c.Valid[conf.Name] = conf
	}
	return c
}

// Plan builds the plan of a view from the cached IngressClassConfigs.
// Held units whose Ingress names a missing class get their Warning only
// when the cache shows children of theirs.
func (r *Reconciler) Plan(view *store.Objects) *Plan {
	p := BuildPlan(r.cfg.Translate, view, r.Configs())
	for _, w := range p.heldQuiet {
		for _, k := range r.kinds {
			if k.get(w.unit.Namespace, w.unit.Name) != nil {
				p.Problems = append(p.Problems, w.problem)
				break
			}
		}
	}
	return p
}

// SetPlan hands the reconciler the plan to converge to.
func (r *Reconciler) SetPlan(p *Plan) {
	r.mu.Lock()
	r.plan = p
	r.mu.Unlock()
	r.Kick()
}

// Kick asks the leader's loop for a pass. It never blocks.
func (r *Reconciler) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run runs the children's informers until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	for _, f := range r.factories {
		f.StartWithContext(ctx)
	}
	defer func() {
		for _, f := range r.factories {
			f.Shutdown()
		}
	}()
	var synced []cache.InformerSynced
	for _, k := range r.kinds {
		for _, inf := range k.informers {
			synced = append(synced, inf.HasSynced)
		}
	}
	t0 := time.Now()
	for !cache.WaitForCacheSync(timeoutDone(ctx, syncReport), synced...) {
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("dedicated mode: still waiting for the caches of Deployments, Services, ServiceAccounts, Roles, RoleBindings and PodDisruptionBudgets",
			"waiting", time.Since(t0).Round(time.Second))
	}
	r.synced.Store(true)
	r.Kick()
	<-ctx.Done()
	return nil
}

// timeoutDone returns a channel closed when ctx ends or d passes.
func timeoutDone(ctx context.Context, d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		close(ch)
	}()
	return ch
}

// Lead reconciles until ctx ends: on every plan and child change, and
// after failures with backoff. Call it only while leading.
func (r *Reconciler) Lead(ctx context.Context) {
	retry := time.NewTimer(resyncEvery)
	defer retry.Stop()
	backoff := firstRetry
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-retry.C:
		}
		err := r.Reconcile(ctx)
		if ctx.Err() != nil {
			return
		}
		next := resyncEvery
		if err != nil {
			next, backoff = backoff, min(2*backoff, maxRetry)
		} else {
			backoff = firstRetry
		}
		retry.Reset(next)
	}
}

// Reconcile makes one pass: apply every desired child that differs from
// this process's last apply (or was changed by someone else since), then
// delete the children no unit wants. Nothing happens before the caches
// synced and a plan arrived, since an empty cache would look like a
// cluster with nothing to delete.
func (r *Reconciler) Reconcile(ctx context.Context) error {
	r.mu.Lock()
	plan := r.plan
	r.mu.Unlock()
	if plan == nil || !r.synced.Load() || !r.configs.HasSynced() {
		return nil
	}
	want := map[string]bool{}
	var errs []error
	var problems []status.Problem
	keepAll := false
	units := make(map[string]bool, len(plan.Units))
	for _, u := range plan.Units {
		uk := u.Namespace + "/" + u.Name
		units[uk] = true
		fp := fingerprint(u)
		du, ok := r.desired[uk]
		if !ok || du.fingerprint != fp {
			items, err := r.items(u)
			if err != nil {
				// Cannot tell this unit's children from orphans: delete
				// nothing this pass.
				errs = append(errs, err)
				keepAll = true
				continue
			}
			du = desiredUnit{fingerprint: fp, items: items}
			r.desired[uk] = du
		}
		for _, it := range du.items {
			want[it.kind.key(it.ns, it.name)] = true
			if err := r.apply(ctx, it); err != nil {
				errs = append(errs, err)
				if !errors.As(err, new(*replacingError)) {
					problems = append(problems, applyProblems(u, err)...)
				}
			}
		}
	}
	for uk := range r.desired {
		if !units[uk] {
			delete(r.desired, uk)
		}
	}
	for _, k := range r.kinds {
		for _, obj := range k.cached() {
			if keepAll || want[k.key(obj.GetNamespace(), obj.GetName())] || plan.holds(obj.GetNamespace(), obj.GetName()) {
				continue
			}
			if err := r.remove(ctx, k, obj); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if ctx.Err() == nil {
		// Failures of a pass cut short by a lost lease are not the
		// children's: keep the last complete pass's.
		r.setProblems(problems)
	}
	return errors.Join(errs...)
}

// replacingError is the failed apply of a child just deleted to be created
// anew (an immutable field changed): the next pass creates it, so it is
// retried but reported to nobody.
type replacingError struct{ error }

func (e *replacingError) Unwrap() error { return e.error }

// ReasonApplyFailed is the Warning on an Ingress whose dedicated proxy's
// children the API server refuses (a ResourceQuota, an admission policy,
// missing permissions).
const ReasonApplyFailed = "DedicatedApplyFailed"

// applyProblems is the Warning, on each Ingress of u, that one of its
// children could not be applied.
func applyProblems(u *Unit, err error) []status.Problem {
	msg := "cannot create or update this Ingress's dedicated proxy; retrying with backoff: " + err.Error()
	out := make([]status.Problem, 0, len(u.Ingresses))
	for _, ing := range u.Ingresses {
		out = append(out, status.Problem{Object: ingressRef(ing), Reason: ReasonApplyFailed, Message: msg})
	}
	return out
}

// Problems returns the Warnings of the last reconcile pass: the Ingresses
// whose dedicated proxy could not be applied, and why. Only the leader
// reconciles, so only its Problems are current.
func (r *Reconciler) Problems() []status.Problem {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.problems)
}

// setProblems records a pass's Problems and tells OnProblems when they
// changed.
func (r *Reconciler) setProblems(problems []status.Problem) {
	r.mu.Lock()
	changed := !slices.Equal(r.problems, problems)
	if changed {
		r.problems = problems
	}
	r.mu.Unlock()
	if changed && r.cfg.OnProblems != nil {
		r.cfg.OnProblems()
	}
}

// items builds the apply bodies of a unit's children.
func (r *Reconciler) items(u *Unit) ([]applyItem, error) {
	var out []applyItem
	for _, obj := range Desired(u, r.settings).List() {
		data, err := applyConfiguration(obj)
		if err != nil {
			return nil, fmt.Errorf("dedicated: %s %s/%s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName(), err)
		}
		sum := sha256.Sum256(data)
		out = append(out, applyItem{
			kind: kindOfObject(r.kinds, obj), obj: obj, ns: obj.GetNamespace(), name: obj.GetName(),
			data: data, hash: hex.EncodeToString(sum[:8]),
		})
	}
	return out, nil
}

// fingerprint covers every input of Desired besides the Settings, which
// are fixed for the reconciler's life.
func fingerprint(u *Unit) string {
	spec, _ := json.Marshal(u.Config.Spec)
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s\x00%s\x00%s\x00%s", u.Namespace, u.Name, u.Class, u.Group, spec)
	for _, ing := range u.Ingresses {
		fmt.Fprintf(&b, "\x00%s/%s", ing.Name, ing.UID)
	}
	return b.String()
}

// apply server-side-applies a child unless the cache shows it as this
// process last applied it.
func (r *Reconciler) apply(ctx context.Context, it applyItem) error {
	k, ns, name, data, hash := it.kind, it.ns, it.name, it.data, it.hash
	key := k.key(ns, name)
	existing := k.get(ns, name)
	rec, known := r.applied[key]
	from := ""
	if existing != nil {
		from = token(existing)
		if known && rec.hash == hash && (from == rec.to || from == rec.from) {
			return nil
		}
	}
	got, err := k.patch(ctx, ns, name, data)
	if err != nil {
		if apierrors.IsInvalid(err) && existing != nil && immutableChanged(existing, it.obj) {
			// An immutable field changed (a Service's loadBalancerClass):
			// replace the object; the next pass creates it anew. Any other
			// refusal keeps the object as it is (a mistake in the config
			// must not cost a load balancer its address) and is retried
			// with backoff.
			r.log.Warn("dedicated: cannot update in place, replacing", "kind", k.name, "object", ns+"/"+name, "error", err)
			if rmErr := r.remove(ctx, k, existing); rmErr != nil {
				return rmErr
			}
			return r.fail(ctx, key, &replacingError{fmt.Errorf("apply %s %s/%s: %w", k.name, ns, name, err)})
		}
		return r.fail(ctx, key, fmt.Errorf("apply %s %s/%s: %w", k.name, ns, name, err))
	}
	r.ok(key)
	to := token(got)
	r.applied[key] = record{hash: hash, from: from, to: to}
	switch {
	case known && rec.hash == hash && to == rec.to:
		// What this process applied last, still there: the cache had
		// not caught up yet.
	case existing == nil:
		// Or restored: deleted, or its labels removed, by someone else.
		r.log.Info("dedicated: created", "kind", k.name, "object", ns+"/"+name)
	case to != from:
		r.log.Info("dedicated: updated (desired state changed, or repaired after an edit)", "kind", k.name, "object", ns+"/"+name)
	}
	return nil
}

// remove deletes a child no unit wants any more (its Ingress was deleted,
// moved to another class or group, or its class is no longer Dedicated).
func (r *Reconciler) remove(ctx context.Context, k *kind, obj metav1.Object) error {
	ns, name, uid := obj.GetNamespace(), obj.GetName(), obj.GetUID()
	key := k.key(ns, name)
	err := k.delete(ctx, ns, name, metav1.DeleteOptions{
		Preconditions:     &metav1.Preconditions{UID: &uid},
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return r.fail(ctx, key, fmt.Errorf("delete %s %s/%s: %w", k.name, ns, name, err))
	}
	r.ok(key)
	delete(r.applied, key)
	if err == nil {
		r.log.Info("dedicated: deleted", "kind", k.name, "object", ns+"/"+name)
	}
	return nil
}

// fail logs err once per object until it changes or the object recovers;
// not at all when the pass was cut short (leadership lost, shutdown).
func (r *Reconciler) fail(ctx context.Context, key string, err error) error {
	if ctx.Err() != nil {
		return err
	}
	if msg := err.Error(); r.failed[key] != msg {
		r.failed[key] = msg
		r.log.Warn("dedicated: reconcile failed; retrying", "error", err)
	}
	return err
}

func (r *Reconciler) ok(key string) {
	if _, had := r.failed[key]; had {
		delete(r.failed, key)
		r.log.Info("dedicated: reconcile recovered", "object", key)
	}
}

// token identifies the state of an object that matters for drift: the
// spec generation plus metadata for kinds with a generation (so status
// updates do not count), else the resourceVersion.
func token(obj metav1.Object) string {
	if g := obj.GetGeneration(); g > 0 {
		h := sha256.New()
		for _, m := range []map[string]string{obj.GetLabels(), obj.GetAnnotations()} {
			for _, k := range slices.Sorted(maps.Keys(m)) {
				fmt.Fprintf(h, "%s=%s\x00", k, m[k])
			}
			h.Write([]byte{1})
		}
		for _, o := range obj.GetOwnerReferences() {
			fmt.Fprintf(h, "%s/%s/%t/%t\x00", o.UID, o.Name, o.Controller != nil && *o.Controller, o.BlockOwnerDeletion != nil && *o.BlockOwnerDeletion)
		}
		return fmt.Sprintf("g%d/%x", g, h.Sum(nil)[:8])
	}
	return "r" + obj.GetResourceVersion()
}

// applyConfiguration is obj as a server-side apply body: JSON without the
// status and without the null and empty values a typed object marshals
// (creationTimestamp: null, resources: {}), which would otherwise be
// claimed as fields set by Torii.
func applyConfiguration(obj Object) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	prune(m)
	return json.Marshal(m)
}

// prune removes nulls and empty objects, recursively.
func prune(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case map[string]any:
		for k, e := range t {
			if prune(e) {
				delete(t, k)
			}
		}
		return len(t) == 0
	case []any:
		for _, e := range t {
			prune(e)
		}
	}
	return false
}

func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// holds reports whether the plan keeps the children named name in ns
// although no unit wants them: they belong to an Ingress whose class
// cannot be resolved (class missing, parameters or IngressClassConfig
// missing or invalid), and an edit mistake must not cost the load balancer
// its address.
func (p *Plan) holds(ns, name string) bool {
	return p.Held[types.NamespacedName{Namespace: ns, Name: name}]
}

// unitNameOf is the unit an Ingress of class would belong to.
func unitNameOf(ns, name, class, group string) string {
	if group = strings.TrimSpace(group); group != "" {
		return GroupUnitName(ns, class, group)
	}
	return IngressUnitName(ns, name)
}

// immutableChanged reports whether desired differs from existing in a field
// the API server refuses to update, so that only deleting and recreating
// the object converges: a Service's loadBalancerClass, a Deployment's
// selector, a RoleBinding's roleRef. (A PodDisruptionBudget's selector is
// mutable in policy/v1; the Services set no clusterIP or IP families.)
func immutableChanged(existing metav1.Object, desired Object) bool {
	switch want := desired.(type) {
	case *corev1.Service:
		have, ok := existing.(*corev1.Service)
		return ok && deref(have.Spec.LoadBalancerClass) != deref(want.Spec.LoadBalancerClass)
	case *appsv1.Deployment:
		have, ok := existing.(*appsv1.Deployment)
		return ok && !apiequality.Semantic.DeepEqual(have.Spec.Selector, want.Spec.Selector)
	case *rbacv1.RoleBinding:
		have, ok := existing.(*rbacv1.RoleBinding)
		return ok && have.RoleRef != want.RoleRef
	}
	return false
}
