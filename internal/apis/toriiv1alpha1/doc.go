// Package toriiv1alpha1 holds the torii.dev/v1alpha1 API: IngressClassConfig,
// the cluster-scoped resource an IngressClass names in spec.parameters to
// choose between the shared load balancer and a dedicated one per Ingress.
//
// The types are plain Go structs read from the dynamic client's unstructured
// objects (FromUnstructured); no generated clientset. The CustomResource
// Definition, with the same schema plus CEL rules, is
// deploy/crds/ingressclassconfigs.torii.dev.yaml.
package toriiv1alpha1
