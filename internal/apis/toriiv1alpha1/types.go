package toriiv1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// API coordinates.
const (
	Group    = "torii.dev"
	Version  = "v1alpha1"
	Kind     = "IngressClassConfig"
	Resource = "ingressclassconfigs"
)

// GroupVersionResource is the resource the dynamic client reads.
var GroupVersionResource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: Resource}

// Mode selects how Ingresses of a class are served.
type Mode string

const (
	// ModeShared serves the class's Ingresses from the controller's own
	// proxies behind one shared load balancer (the default).
	ModeShared Mode = "Shared"
	// ModeDedicated gives every Ingress (or group of Ingresses) a proxy
	// Deployment and load-balancer Service of its own.
	ModeDedicated Mode = "Dedicated"
)

// IngressClassConfig parameterises an IngressClass whose spec.parameters
// name it (apiGroup torii.dev, kind IngressClassConfig; cluster-scoped).
type IngressClassConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec IngressClassConfigSpec `json:"spec"`
}

// IngressClassConfigSpec is the desired behaviour of the class.
type IngressClassConfigSpec struct {
	// Mode is Shared (default) or Dedicated.
	Mode Mode `json:"mode,omitempty"`
	// Dedicated configures the per-Ingress proxies; only with mode
	// Dedicated.
	Dedicated *DedicatedSpec `json:"dedicated,omitempty"`
}

// DedicatedSpec configures the proxy Deployment, Service and
// PodDisruptionBudget created for each Ingress of a Dedicated class.
type DedicatedSpec struct {
	// Replicas of the proxy Deployment; at least 1, default 2.
	Replicas *int32 `json:"replicas,omitempty"`
	// Resources of the proxy container; default requests 50m CPU and
	// 64Mi memory, limit 256Mi memory (no CPU limit).
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	// Service configures the load-balancer Service.
	Service ServiceSpec `json:"service,omitempty"`
	// NodeSelector of the proxy pods; default kubernetes.io/os: linux.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of the proxy pods.
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// PodDisruptionBudget of the proxy pods.
	PodDisruptionBudget PodDisruptionBudgetSpec `json:"podDisruptionBudget,omitempty"`
}

// ServiceSpec configures the Service in front of the proxy pods.
type ServiceSpec struct {
	// Type is LoadBalancer (default) or NodePort.
	Type corev1.ServiceType `json:"type,omitempty"`
	// Annotations on the Service, e.g. for MetalLB address pools or a
	// cloud provider's load-balancer options.
	Annotations map[string]string `json:"annotations,omitempty"`
	// LoadBalancerClass selects the load-balancer implementation; only
	// with type LoadBalancer.
	LoadBalancerClass *string `json:"loadBalancerClass,omitempty"`
	// ExternalTrafficPolicy is Local (default: client source IP kept, no
	// second hop) or Cluster.
	ExternalTrafficPolicy corev1.ServiceExternalTrafficPolicy `json:"externalTrafficPolicy,omitempty"`
	// LoadBalancerSourceRanges limits the clients the load balancer
	// accepts (CIDRs); only with type LoadBalancer.
	LoadBalancerSourceRanges []string `json:"loadBalancerSourceRanges,omitempty"`
}

// PodDisruptionBudgetSpec configures the proxies' PodDisruptionBudget.
type PodDisruptionBudgetSpec struct {
	// Enabled creates the budget; default true.
	Enabled *bool `json:"enabled,omitempty"`
	// MaxUnavailable pods during voluntary disruptions; default 1.
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
}
