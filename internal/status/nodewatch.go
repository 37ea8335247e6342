package status

import (
	"cmp"
	"context"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// nodeWatch keeps one informer per node that runs a Torii pod, each limited
// to its node by a field selector. A cluster-wide Node informer would send
// Torii every status update of every node for the sake of two or three
// addresses.
type nodeWatch struct {
	ctx     context.Context
	client  kubernetes.Interface
	onEvent func() // called on any node event and when a node's cache syncs

	mu    sync.Mutex
	nodes map[string]*nodeInformer
}

type nodeInformer struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
	done   chan struct{}
}

func newNodeWatch(ctx context.Context, c kubernetes.Interface) *nodeWatch {
	return &nodeWatch{ctx: ctx, client: c, nodes: map[string]*nodeInformer{}}
}

// track makes the set of watched nodes exactly want: informers start for
// new names and stop for names no longer wanted.
func (w *nodeWatch) track(want map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, n := range w.nodes {
		if !want[name] {
			n.cancel()
			delete(w.nodes, name)
		}
	}
	for name := range want {
		if _, ok := w.nodes[name]; !ok && w.ctx.Err() == nil {
			w.nodes[name] = w.start(name)
		}
	}
}

func (w *nodeWatch) start(name string) *nodeInformer {
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	nodes := w.client.CoreV1().Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return nodes.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return nodes.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, w.client), &corev1.Node{}, 0, cache.Indexers{})
	_ = inf.SetTransform(trimNode) // cannot fail before Run
	kick := func() {
		if w.onEvent != nil {
			w.onEvent()
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { kick() },
		UpdateFunc: func(any, any) { kick() },
		DeleteFunc: func(any) { kick() },
	})
	ctx, cancel := context.WithCancel(w.ctx)
	n := &nodeInformer{inf: inf, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		inf.RunWithContext(ctx)
	}()
	go func() {
		// A node that does not exist produces no event; the sync itself is
		// what tells the publisher this node's addresses (or their absence)
		// are now known.
		if cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			kick()
		}
	}()
	return n
}

// get returns the cached node (nil when it does not exist) and whether its
// informer has synced, i.e. whether the answer is known.
func (w *nodeWatch) get(name string) (*corev1.Node, bool) {
	w.mu.Lock()
	n, ok := w.nodes[name]
	w.mu.Unlock()
	if !ok || !n.inf.HasSynced() {
		return nil, false
	}
	obj, exists, err := n.inf.GetStore().GetByKey(name)
	if err != nil || !exists {
		return nil, true
	}
	return obj.(*corev1.Node), true
}

// stopAll stops every node informer and waits for their goroutines.
func (w *nodeWatch) stopAll() {
	w.mu.Lock()
	nodes := w.nodes
	w.nodes = map[string]*nodeInformer{}
	w.mu.Unlock()
	for _, n := range nodes {
		n.cancel()
		<-n.done
	}
}

// sortAddresses orders status entries by IP, then hostname, so the node
// mode publishes the same list whatever order the caches return.
func sortAddresses(list []networkingv1.IngressLoadBalancerIngress) {
	slices.SortFunc(list, func(a, b networkingv1.IngressLoadBalancerIngress) int {
		return cmp.Or(cmp.Compare(a.IP, b.IP), cmp.Compare(a.Hostname, b.Hostname))
	})
}
