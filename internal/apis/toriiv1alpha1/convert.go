package toriiv1alpha1

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Defaults of a Dedicated class, the same as the CRD schema's.
const (
	DefaultReplicas = int32(2)
)

// FromUnstructured reads an IngressClassConfig from the dynamic client's
// representation, applies the defaults and validates it. The result is a
// new object: u is not modified.
func FromUnstructured(u *unstructured.Unstructured) (*IngressClassConfig, error) {
	if u == nil {
		return nil, errors.New("no object")
	}
	if gvk := u.GroupVersionKind(); gvk.Group != Group || gvk.Kind != Kind {
		return nil, fmt.Errorf("%s is not a %s.%s", gvk, Kind, Group)
	}
	c := &IngressClassConfig{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), c); err != nil {
		return nil, fmt.Errorf("IngressClassConfig %s: %w", u.GetName(), err)
	}
	c.Default()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("IngressClassConfig %s: %w", c.Name, err)
	}
	return c, nil
}

// Default fills in what the CRD schema defaults, so that objects written
// before a schema default existed (or built in tests) read the same.
func (c *IngressClassConfig) Default() {
	s := &c.Spec
	if s.Mode == "" {
		s.Mode = ModeShared
	}
	if s.Mode != ModeDedicated {
		return
	}
	if s.Dedicated == nil {
		s.Dedicated = &DedicatedSpec{}
	}
	d := s.Dedicated
	if d.Replicas == nil {
		r := DefaultReplicas
		d.Replicas = &r
	}
	if d.Resources == nil {
		d.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("50m"),
				corev1.ResourceMemory: resource.MustParse("64Mi"),
			},
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		}
	}
	if d.Service.Type == "" {
		d.Service.Type = corev1.ServiceTypeLoadBalancer
	}
	if d.Service.ExternalTrafficPolicy == "" {
		d.Service.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}
	if d.NodeSelector == nil {
		d.NodeSelector = map[string]string{corev1.LabelOSStable: "linux"}
	}
	if d.PodDisruptionBudget.Enabled == nil {
		t := true
		d.PodDisruptionBudget.Enabled = &t
	}
	if d.PodDisruptionBudget.MaxUnavailable == nil {
		one := intstr.FromInt32(1)
		d.PodDisruptionBudget.MaxUnavailable = &one
	}
}

// Validate checks what the CRD's OpenAPI schema and CEL rules check, so an
// object that somehow bypassed them (an older CRD) is refused here too.
// Call it after Default.
func (c *IngressClassConfig) Validate() error {
	s := c.Spec
	var errs []error
	switch s.Mode {
	case ModeShared:
		if s.Dedicated != nil {
			errs = append(errs, errors.New("spec.dedicated: only allowed with mode Dedicated"))
		}
		return errors.Join(errs...)
	case ModeDedicated:
	default:
		return fmt.Errorf("spec.mode %q: want Shared or Dedicated", s.Mode)
	}
	d := s.Dedicated
	if d == nil {
		return nil // Default fills it in
	}
	if d.Replicas != nil && (*d.Replicas < 1 || *d.Replicas > 100) {
		errs = append(errs, fmt.Errorf("spec.dedicated.replicas %d: want 1 to 100", *d.Replicas))
	}
	sv := d.Service
	lb := sv.Type == "" || sv.Type == corev1.ServiceTypeLoadBalancer
	switch sv.Type {
	case "", corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
	default:
		errs = append(errs, fmt.Errorf("spec.dedicated.service.type %q: want LoadBalancer or NodePort", sv.Type))
	}
	switch sv.ExternalTrafficPolicy {
	case "", corev1.ServiceExternalTrafficPolicyLocal, corev1.ServiceExternalTrafficPolicyCluster:
	default:
		errs = append(errs, fmt.Errorf("spec.dedicated.service.externalTrafficPolicy %q: want Local or Cluster", sv.ExternalTrafficPolicy))
	}
	if sv.LoadBalancerClass != nil && !lb {
		errs = append(errs, errors.New("spec.dedicated.service.loadBalancerClass: only with type LoadBalancer"))
	}
	if len(sv.LoadBalancerSourceRanges) > 0 && !lb {
		errs = append(errs, errors.New("spec.dedicated.service.loadBalancerSourceRanges: only with type LoadBalancer"))
	}
	for i, r := range sv.LoadBalancerSourceRanges {
		if _, err := netip.ParsePrefix(strings.TrimSpace(r)); err != nil {
			errs = append(errs, fmt.Errorf("spec.dedicated.service.loadBalancerSourceRanges[%d] %q: not a CIDR", i, r))
		}
	}
	// What the API server would refuse on the children: caught here, so
	// the class is invalid (its units held) instead of every apply failing.
	for _, e := range apivalidation.ValidateAnnotations(sv.Annotations, field.NewPath("spec", "dedicated", "service", "annotations")) {
		errs = append(errs, e)
	}
	if r := d.Resources; r != nil {
		for _, name := range slices.Sorted(maps.Keys(r.Requests)) {
			req := r.Requests[name]
			if lim, ok := r.Limits[name]; ok && req.Cmp(lim) > 0 {
				errs = append(errs, fmt.Errorf("spec.dedicated.resources.requests[%s] %s: more than the limit %s", name, req.String(), lim.String()))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(d.NodeSelector)) {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("spec.dedicated.nodeSelector key %q: %s", k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(d.NodeSelector[k]) {
			errs = append(errs, fmt.Errorf("spec.dedicated.nodeSelector[%s] %q: %s", k, d.NodeSelector[k], msg))
		}
	}
	for i, t := range d.Tolerations {
		if err := validToleration(t); err != nil {
			errs = append(errs, fmt.Errorf("spec.dedicated.tolerations[%d]: %w", i, err))
		}
	}
	if mu := d.PodDisruptionBudget.MaxUnavailable; mu != nil {
		if err := validMaxUnavailable(*mu); err != nil {
			errs = append(errs, fmt.Errorf("spec.dedicated.podDisruptionBudget.maxUnavailable: %w", err))
		}
	}
	return errors.Join(errs...)
}

// validToleration checks what the API server checks of a pod's
// toleration.
func validToleration(t corev1.Toleration) error {
	var errs []error
	if t.Key != "" {
		for _, msg := range validation.IsQualifiedName(t.Key) {
			errs = append(errs, fmt.Errorf("key %q: %s", t.Key, msg))
		}
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		if t.Key == "" {
			errs = append(errs, errors.New("operator Equal (the default) needs a key; an empty key tolerates everything only with operator Exists"))
		}
		for _, msg := range validation.IsValidLabelValue(t.Value) {
			errs = append(errs, fmt.Errorf("value %q: %s", t.Value, msg))
		}
	case corev1.TolerationOpExists:
		if t.Value != "" {
			errs = append(errs, fmt.Errorf("value %q: must be empty with operator Exists", t.Value))
		}
	default:
		errs = append(errs, fmt.Errorf("operator %q: want Exists or Equal", t.Operator))
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		errs = append(errs, fmt.Errorf("effect %q: want NoSchedule, PreferNoSchedule or NoExecute", t.Effect))
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		errs = append(errs, errors.New("tolerationSeconds: only with effect NoExecute"))
	}
	return errors.Join(errs...)
}

// validMaxUnavailable accepts a count of at least 1 or a percentage from
// 1% to 100%: 0 would block every node drain.
func validMaxUnavailable(v intstr.IntOrString) error {
	if v.Type == intstr.Int {
		if v.IntVal < 1 {
			return fmt.Errorf("%d: want at least 1", v.IntVal)
		}
		return nil
	}
	p, ok := strings.CutSuffix(v.StrVal, "%")
	n := 0
	if ok && p != "" && len(p) <= 3 {
		for _, ch := range p {
			if ch < '0' || ch > '9' {
				ok = false
				break
			}
			n = n*10 + int(ch-'0')
		}
	}
	if !ok || n < 1 || n > 100 || p[0] == '0' {
		return fmt.Errorf("%q: want a count or a percentage from 1%% to 100%%", v.StrVal)
	}
	return nil
}
