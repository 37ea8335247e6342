package status

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Bounds on one object's write. A conflict means someone wrote in between;
// a handful of fresh reads resolves any realistic race, and the next Sync
// retries whatever is left, so there is no point in waiting longer here.
const (
	maxAttempts  = 5
	firstBackoff = 10 * time.Millisecond
	// defaultWorkers bounds concurrent writes: enough to converge 1k
	// Ingresses in seconds, few enough not to crowd the client's rate
	// limit that the informers share.
	defaultWorkers = 8
)

// WriterConfig configures a Writer.
type WriterConfig struct {
	Client kubernetes.Interface
	// Logger receives one line per object whose write starts failing (and
	// one when it recovers), never one per Sync; nil discards.
	Logger *slog.Logger
	// Workers bounds concurrent writes; 0 means 8.
	Workers int
}

// Writer applies the desired load-balancer status to Ingresses. Only the
// elected leader should call it. Sync and Clear are serialised; a Writer is
// safe for concurrent use.
type Writer struct {
	client  kubernetes.Interface
	log     *slog.Logger
	workers int

	mu sync.Mutex // serialises Sync and Clear

	stateMu sync.Mutex
	// written remembers this writer's last write per object. When the
	// cached copy still shows the version the write replaced, the cache
	// is merely behind and the write must not be repeated; and an Ingress
	// that leaves Torii can be cleared of what Torii wrote even if the
	// addresses changed since.
	written map[types.UID]writeRecord
	// failed holds the last error logged per object, so a write that keeps
	// failing is logged once, not on every Sync.
	failed map[types.UID]string

	writes, conflicts atomic.Uint64
}

// writeRecord is one successful status write.
type writeRecord struct {
	from, to string // resourceVersion before and after
	addrs    []networkingv1.IngressLoadBalancerIngress
}

// WriterStats counts API writes, for metrics and tests.
type WriterStats struct {
	// Writes is the number of successful status updates.
	Writes uint64
	// Conflicts is the number of updates refused because the object had
	// changed since it was read.
	Conflicts uint64
}

// NewWriter creates a Writer.
func NewWriter(cfg WriterConfig) *Writer {
	w := &Writer{
		client:  cfg.Client,
		log:     cfg.Logger,
		workers: cfg.Workers,
		written: map[types.UID]writeRecord{},
		failed:  map[types.UID]string{},
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.workers <= 0 {
		w.workers = defaultWorkers
	}
	return w
}

// Stats returns the write counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{Writes: w.writes.Load(), Conflicts: w.conflicts.Load()}
}

// decideFunc returns the status list an object should carry and whether
// that needs a write, given the object as last read.
type decideFunc func(ing *networkingv1.Ingress) ([]networkingv1.IngressLoadBalancerIngress, bool)

// job is one object that needs a write.
type job struct {
	ing    *networkingv1.Ingress // a private copy, as last known
	decide decideFunc
}

// Sync makes every owned Ingress carry exactly addrs in
// status.loadBalancer.ingress, and clears the status of Ingresses in others
// (cached Ingresses Torii no longer owns) when it is still what Torii
// wrote: equal to addrs or to this writer's last write to that object. A
// status written by another controller is never touched.
//
// Objects are typically informer cache entries; they are not modified.
// Writes that would change nothing (compared order-insensitively) are
// skipped, so Torii's own writes cannot cause a write loop. A conflict is
// retried on a fresh read, a few times with backoff. Ingresses that no
// longer exist are ignored. Per-object failures are logged once and
// returned joined.
func (w *Writer) Sync(ctx context.Context, owned, others []*networkingv1.Ingress, addrs []networkingv1.IngressLoadBalancerIngress) error {
	targets := make([]Target, len(owned))
	for i, ing := range owned {
		targets[i] = Target{Ingress: ing, Addresses: addrs}
	}
	return w.SyncTargets(ctx, targets, others, addrs)
}

// Target is an owned Ingress and the addresses it should carry.
type Target struct {
	Ingress   *networkingv1.Ingress
	Addresses []networkingv1.IngressLoadBalancerIngress
}

// SyncTargets is Sync with addresses per Ingress (dedicated mode: each
// Ingress carries the address of its own load balancer). Every target
// carries exactly its addresses; an Ingress in others is cleared when its
// status is still shared (when non-nil: the shared addresses, which an
// Ingress may carry from before it became someone else's) or this writer's
// last write to it.
func (w *Writer) SyncTargets(ctx context.Context, targets []Target, others []*networkingv1.Ingress, shared []networkingv1.IngressLoadBalancerIngress) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := make(map[types.UID]bool, len(targets)+len(others))
	var jobs []job
	for _, t := range targets {
		want := cloneAddresses(t.Addresses)
		if want == nil {
			want = []networkingv1.IngressLoadBalancerIngress{}
		}
		seen[t.Ingress.UID] = true
		if j, ok := w.plan(t.Ingress, func(cur *networkingv1.Ingress) ([]networkingv1.IngressLoadBalancerIngress, bool) {
			return want, !SameAddresses(cur.Status.LoadBalancer.Ingress, want)
		}); ok {
			jobs = append(jobs, j)
		}
	}
	shared = cloneAddresses(shared)
	for _, ing := range others {
		seen[ing.UID] = true
		prev := w.lastWritten(ing.UID)
		if j, ok := w.plan(ing, func(cur *networkingv1.Ingress) ([]networkingv1.IngressLoadBalancerIngress, bool) {
			s := cur.Status.LoadBalancer.Ingress
			ours := len(s) > 0 && ((shared != nil && SameAddresses(s, shared)) || (len(prev) > 0 && SameAddresses(s, prev)))
			return []networkingv1.IngressLoadBalancerIngress{}, ours
		}); ok {
			jobs = append(jobs, j)
		}
	}
	w.forget(seen)
	return w.run(ctx, jobs)
}

// Clear removes Torii's addresses (addrs, and whatever this writer last
// wrote to each object) from the owned Ingresses, keeping any other entry.
// It is meant for shutdown when this is the last replica
// (--update-status-on-shutdown), so DNS stops pointing at an address
// nothing serves.
func (w *Writer) Clear(ctx context.Context, owned []*networkingv1.Ingress, addrs []networkingv1.IngressLoadBalancerIngress) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var jobs []job
	for _, ing := range owned {
		drop := map[string]bool{}
		for _, a := range addrs {
			drop[entryKey(a)] = true
		}
		for _, a := range w.lastWritten(ing.UID) {
			drop[entryKey(a)] = true
		}
		if j, ok := w.plan(ing, func(cur *networkingv1.Ingress) ([]networkingv1.IngressLoadBalancerIngress, bool) {
			rest, removed := withoutEntries(cur.Status.LoadBalancer.Ingress, drop)
			if rest == nil {
				rest = []networkingv1.IngressLoadBalancerIngress{}
			}
			return rest, removed
		}); ok {
			jobs = append(jobs, j)
		}
	}
	return w.run(ctx, jobs)
}

// plan decides, without I/O, whether ing needs a write. It looks at ing as
// this writer last left it when the cache has not caught up with that
// write yet, so a stale cache never causes a repeated write.
func (w *Writer) plan(ing *networkingv1.Ingress, decide decideFunc) (job, bool) {
	cur := ing.DeepCopy()
	w.stateMu.Lock()
	rec, ok := w.written[ing.UID]
	w.stateMu.Unlock()
	if ok && rec.from == cur.ResourceVersion {
		cur.ResourceVersion = rec.to
		cur.Status.LoadBalancer.Ingress = cloneAddresses(rec.addrs)
	}
	if _, write := decide(cur); !write {
		w.succeeded(cur)
		return job{}, false
	}
	return job{ing: cur, decide: decide}, true
}

// lastWritten returns what this writer last wrote to the object, if any.
func (w *Writer) lastWritten(uid types.UID) []networkingv1.IngressLoadBalancerIngress {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	return w.written[uid].addrs
}

// forget drops the memory of objects absent from a full Sync (deleted), so
// the maps stay as large as the set of Ingresses.
func (w *Writer) forget(seen map[types.UID]bool) {
	w.stateMu.Lock()
	defer w.stateMu.Unlock()
	for uid := range w.written {
		if !seen[uid] {
			delete(w.written, uid)
		}
	}
	for uid := range w.failed {
		if !seen[uid] {
			delete(w.failed, uid)
		}
	}
}

// run performs the writes on a bounded pool of workers and joins their
// errors in job order.
func (w *Writer) run(ctx context.Context, jobs []job) error {
	if len(jobs) == 0 {
		return nil
	}
	errs := make([]error, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(w.workers, len(jobs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) || ctx.Err() != nil {
					return
				}
				errs[i] = w.apply(ctx, jobs[i])
			}
		})
	}
	wg.Wait()
	var out []error
	for _, err := range errs {
		if err != nil && ctx.Err() == nil {
			out = append(out, err)
		}
	}
	if err := ctx.Err(); err != nil {
		// One error for the whole call: objects not attempted, or cut
		// short, are not failures of their own.
		out = append(out, fmt.Errorf("status sync interrupted: %w", err))
	}
	return errors.Join(out...)
}

// apply writes one object's status, retrying conflicts on a fresh read.
func (w *Writer) apply(ctx context.Context, j job) error {
	obj := j.ing
	ingresses := w.client.NetworkingV1().Ingresses(obj.Namespace)
	for attempt := 1; ; attempt++ {
		list, write := j.decide(obj)
		if !write {
			w.succeeded(obj)
			return nil
		}
		from := obj.ResourceVersion
		obj.Status.LoadBalancer.Ingress = cloneAddresses(list)
		updated, err := ingresses.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		switch {
		case err == nil:
			w.writes.Add(1)
			w.stateMu.Lock()
			w.written[obj.UID] = writeRecord{from: from, to: updated.ResourceVersion, addrs: cloneAddresses(list)}
			w.stateMu.Unlock()
			w.log.Debug("ingress status written", "ingress", obj.Namespace+"/"+obj.Name, "addresses", addressStrings(list))
			w.succeeded(obj)
			return nil
		case apierrors.IsNotFound(err):
			w.succeeded(obj)
			return nil
		case apierrors.IsConflict(err):
			w.conflicts.Add(1)
		}
		if !apierrors.IsConflict(err) || attempt == maxAttempts {
			return w.failedWrite(ctx, obj, err)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return err
		}
		fresh, err := ingresses.Get(ctx, obj.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && fresh.UID != obj.UID) {
			// Deleted, or deleted and recreated: a different object
			// that the next Sync will see for itself.
			w.succeeded(obj)
			return nil
		}
		if err != nil {
			return w.failedWrite(ctx, obj, err)
		}
		obj = fresh
	}
}

// succeeded notes that obj is as desired, logging a recovery once.
func (w *Writer) succeeded(obj *networkingv1.Ingress) {
	w.stateMu.Lock()
	_, had := w.failed[obj.UID]
	delete(w.failed, obj.UID)
	w.stateMu.Unlock()
	if had {
		w.log.Info("ingress status write recovered", "ingress", obj.Namespace+"/"+obj.Name)
	}
}

// failedWrite wraps err and logs it unless the same error was logged for
// this object last time, or the caller's context ended (not the object's
// fault).
func (w *Writer) failedWrite(ctx context.Context, obj *networkingv1.Ingress, err error) error {
	err = fmt.Errorf("update status of ingress %s/%s: %w", obj.Namespace, obj.Name, err)
	if ctx.Err() != nil {
		return err
	}
	msg := err.Error()
	w.stateMu.Lock()
	repeat := w.failed[obj.UID] == msg
	w.failed[obj.UID] = msg
	w.stateMu.Unlock()
	if !repeat {
		w.log.Warn("ingress status write failed", "ingress", obj.Namespace+"/"+obj.Name, "error", err)
	}
	return err
}

// backoff is the wait before retry attempt+1: exponential with jitter, so
// two writers that conflicted do not collide again in lockstep.
func backoff(attempt int) time.Duration {
	d := firstBackoff << (attempt - 1)
	return d + rand.N(d/2+1)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// addressStrings renders status entries for logs.
func addressStrings(list []networkingv1.IngressLoadBalancerIngress) []string {
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.IP + a.Hostname
	}
	return out
}
