package status

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// revisionLabels are labels a workload controller stamps per revision. They
// are left out of the replica selector so that during a rolling update the
// old and the new pods count as replicas of one another (as in
// ingress-nginx).
var revisionLabels = []string{
	"pod-template-hash",        // Deployment (ReplicaSet)
	"controller-revision-hash", // StatefulSet, DaemonSet
	"pod-template-generation",  // DaemonSet
	"apps.kubernetes.io/pod-index",
	"statefulset.kubernetes.io/pod-name",
}

// replicaSelector is the selector matching every Torii replica: pod's
// labels without the per-revision and per-pod ones. It is empty when pod
// has no other labels, which callers must treat as "cannot tell".
func replicaSelector(pod *corev1.Pod) labels.Selector {
	set := maps.Clone(pod.Labels)
	for _, l := range revisionLabels {
		delete(set, l)
	}
	if len(set) == 0 {
		return labels.Nothing()
	}
	return labels.SelectorFromSet(set)
}

// podReady reports whether pod is running, Ready and not being deleted: a
// replica that serves traffic now and will keep doing so.
func podReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// LastReplica reports whether no other ready Torii pod exists: no pod in
// podNamespace other than podName that matches podName's labels (less the
// per-revision ones), is Running, Ready and not being deleted. Shutdown
// uses it to decide whether clearing the Ingress status is right (nobody
// else will serve) or harmful (DNS would drop a working address).
//
// It errs rather than guess: when the own pod cannot be read or has no
// labels to find its replicas by, it returns an error and the caller should
// keep the status.
func LastReplica(ctx context.Context, c kubernetes.Interface, podNamespace, podName string) (bool, error) {
	if podNamespace == "" || podName == "" {
		return false, fmt.Errorf("last replica: pod name and namespace are required")
	}
	self, err := c.CoreV1().Pods(podNamespace).Get(ctx, podName, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("last replica: read own pod %s/%s: %w", podNamespace, podName, err)
	}
	sel := replicaSelector(self)
	if sel.Empty() || isNothing(sel) {
		return false, fmt.Errorf("last replica: own pod %s/%s has no labels to find its replicas by", podNamespace, podName)
	}
	pods, err := c.CoreV1().Pods(podNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return false, fmt.Errorf("last replica: list pods %q in %s: %w", sel, podNamespace, err)
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Name != podName && podReady(p) {
			return false, nil
		}
	}
	return true, nil
}

// isNothing reports whether sel is labels.Nothing(), which matches no
// object and stringifies as "".
func isNothing(sel labels.Selector) bool {
	_, ok := sel.Requirements()
	return !ok
}
