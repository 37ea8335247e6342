package toriiv1alpha1

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

const crdFile = "../../../deploy/crds/ingressclassconfigs.torii.dev.yaml"

func obj(spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "torii.dev/v1alpha1", "kind": "IngressClassConfig",
		"metadata": map[string]any{"name": "c", "resourceVersion": "7"},
		"spec":     spec,
	}}
}

func TestFromUnstructuredDefaults(t *testing.T) {
	c, err := FromUnstructured(obj(map[string]any{}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Spec.Mode != ModeShared || c.Spec.Dedicated != nil || c.Name != "c" || c.ResourceVersion != "7" {
		t.Errorf("empty spec: %+v", c)
	}
	c, err = FromUnstructured(obj(map[string]any{"mode": "Dedicated"}))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Spec.Dedicated
	if *d.Replicas != 2 || d.Service.Type != corev1.ServiceTypeLoadBalancer || d.Service.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
		!*d.PodDisruptionBudget.Enabled || d.PodDisruptionBudget.MaxUnavailable.IntValue() != 1 || d.NodeSelector[corev1.LabelOSStable] != "linux" ||
		d.Resources.Requests.Memory().String() != "64Mi" {
		t.Errorf("defaults: %+v", d)
	}
	c, err = FromUnstructured(obj(map[string]any{"mode": "Dedicated", "dedicated": map[string]any{
		"replicas":            int64(3),
		"resources":           map[string]any{"requests": map[string]any{"cpu": "1", "memory": int64(1 << 30)}},
		"service":             map[string]any{"type": "NodePort", "externalTrafficPolicy": "Cluster", "annotations": map[string]any{"a": "b"}},
		"tolerations":         []any{map[string]any{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": int64(5)}},
		"podDisruptionBudget": map[string]any{"enabled": false, "maxUnavailable": "25%"},
		"nodeSelector":        map[string]any{},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	d = c.Spec.Dedicated
	if *d.Replicas != 3 || d.Resources.Requests.Cpu().String() != "1" || d.Resources.Requests.Memory().Value() != 1<<30 ||
		d.Service.Type != corev1.ServiceTypeNodePort || d.Service.Annotations["a"] != "b" || *d.Tolerations[0].TolerationSeconds != 5 ||
		*d.PodDisruptionBudget.Enabled || d.PodDisruptionBudget.MaxUnavailable.String() != "25%" || len(d.NodeSelector) != 0 {
		t.Errorf("explicit values: %+v", d)
	}
	if _, err := FromUnstructured(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}}); err == nil {
		t.Errorf("a ConfigMap was read as an IngressClassConfig")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		spec map[string]any
		want string // "" for valid
	}{
		{"shared", map[string]any{"mode": "Shared"}, ""},
		{"bad mode", map[string]any{"mode": "Exclusive"}, `spec.mode "Exclusive"`},
		{"dedicated with shared", map[string]any{"mode": "Shared", "dedicated": map[string]any{}}, "only allowed with mode Dedicated"},
		{"replicas 0", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"replicas": int64(0)}}, "replicas 0"},
		{"ClusterIP", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"type": "ClusterIP"}}}, "want LoadBalancer or NodePort"},
		{"policy", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"externalTrafficPolicy": "Nearest"}}}, "want Local or Cluster"},
		{"class with NodePort", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"type": "NodePort", "loadBalancerClass": "x"}}}, "only with type LoadBalancer"},
		{"ranges with NodePort", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"type": "NodePort", "loadBalancerSourceRanges": []any{"10.0.0.0/8"}}}}, "only with type LoadBalancer"},
		{"bad CIDR", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"loadBalancerSourceRanges": []any{"10.0.0.300/8"}}}}, "not a CIDR"},
		{"ranges", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"loadBalancerClass": "x", "loadBalancerSourceRanges": []any{"10.0.0.0/8", "2001:db8::/32"}}}}, ""},
		{"pdb 0", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": int64(0)}}}, "want at least 1"},
		{"pdb 0%", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "0%"}}}, "percentage"},
		{"pdb 101%", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "101%"}}}, "percentage"},
		{"pdb 05%", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "05%"}}}, "percentage"},
		{"pdb %", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "%"}}}, "percentage"},
		{"pdb 100%", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"podDisruptionBudget": map[string]any{"maxUnavailable": "100%"}}}, ""},
		// What the API server would refuse on the children.
		{"annotation key", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"annotations": map[string]any{"metallb.universe.tf/address pool": "x"}}}}, "spec.dedicated.service.annotations"},
		{"annotation keys", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"service": map[string]any{"annotations": map[string]any{"metallb.universe.tf/address-pool": "x", "a": ""}}}}, ""},
		{"requests over limits", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"resources": map[string]any{"requests": map[string]any{"memory": "512Mi", "cpu": "2"}, "limits": map[string]any{"memory": "256Mi"}}}}, "requests[memory] 512Mi: more than the limit 256Mi"},
		{"requests at limits", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"resources": map[string]any{"requests": map[string]any{"memory": "256Mi", "cpu": "2"}, "limits": map[string]any{"memory": "256Mi", "cpu": "2000m"}}}}, ""},
		{"nodeSelector key", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"nodeSelector": map[string]any{"node role": "x"}}}, "nodeSelector key"},
		{"nodeSelector value", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"nodeSelector": map[string]any{"node-role.kubernetes.io/edge": "yes please"}}}, "nodeSelector[node-role.kubernetes.io/edge]"},
		{"nodeSelector", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"nodeSelector": map[string]any{"node-role.kubernetes.io/edge": ""}}}, ""},
		{"toleration operator", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"tolerations": []any{map[string]any{"key": "k", "operator": "In"}}}}, `operator "In"`},
		{"toleration Exists with value", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"tolerations": []any{map[string]any{"key": "k", "operator": "Exists", "value": "v"}}}}, "must be empty with operator Exists"},
		{"toleration effect", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"tolerations": []any{map[string]any{"key": "k", "value": "v", "effect": "NoScheduling"}}}}, `effect "NoScheduling"`},
		{"toleration Equal without key", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"tolerations": []any{map[string]any{"operator": "Equal", "value": "v"}}}}, "needs a key"},
		{"tolerations", map[string]any{"mode": "Dedicated", "dedicated": map[string]any{"tolerations": []any{
			map[string]any{"operator": "Exists"},
			map[string]any{"key": "dedicated", "value": "edge", "effect": "NoSchedule"},
			map[string]any{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": int64(30)},
		}}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromUnstructured(obj(tc.spec))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	if err := validMaxUnavailable(intstr.FromInt32(2)); err != nil {
		t.Error(err)
	}
}

// TestSchemaMatchesTypes keeps the CRD's schema and the Go types in step:
// every JSON field of a Torii type has a schema property and the other way
// round, so a field added on one side only fails here.
func TestSchemaMatchesTypes(t *testing.T) {
	data, err := os.ReadFile(crdFile)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Group string `json:"group"`
			Scope string `json:"scope"`
			Names struct {
				Kind   string `json:"kind"`
				Plural string `json:"plural"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	s := crd.Spec
	if s.Group != Group || s.Scope != "Cluster" || s.Names.Kind != Kind || s.Names.Plural != Resource || len(s.Versions) != 1 || s.Versions[0].Name != Version {
		t.Fatalf("CRD names/scope/version: %+v", s)
	}
	root := s.Versions[0].Schema.OpenAPIV3Schema
	spec := props(t, root)["spec"].(map[string]any)
	compare(t, "spec", reflect.TypeFor[IngressClassConfigSpec](), spec)
}

func props(t *testing.T, schema map[string]any) map[string]any {
	t.Helper()
	p, _ := schema["properties"].(map[string]any)
	return p
}

// compare walks a Torii struct type and its schema together; Kubernetes
// types (corev1) are compared at their top level only.
func compare(t *testing.T, path string, typ reflect.Type, schema map[string]any) {
	t.Helper()
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
		if typ.Kind() == reflect.Struct {
			if items, ok := schema["items"].(map[string]any); ok {
				schema = items
			}
		}
	}
	if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[intstr.IntOrString]() {
		return
	}
	p := props(t, schema)
	var fields []string
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || typ == reflect.TypeFor[corev1.ResourceRequirements]() && name == "claims" {
			continue // dynamic resource claims make no sense for a proxy
		}
		fields = append(fields, name)
		sub, ok := p[name].(map[string]any)
		if !ok {
			t.Errorf("%s.%s: in the Go type, not in the CRD schema", path, name)
			continue
		}
		if strings.HasPrefix(typ.PkgPath(), "github.com/torii-dev/") {
			compare(t, path+"."+name, f.Type, sub)
		}
	}
	for name := range p {
		if !slices.Contains(fields, name) {
			t.Errorf("%s.%s: in the CRD schema, not in the Go type", path, name)
		}
	}
}
