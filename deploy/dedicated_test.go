package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/torii-dev/torii/internal/apis/toriiv1alpha1"
	"github.com/torii-dev/torii/internal/dedicated"
)

const (
	dedFile      = "dedicated.yaml"
	dedCRD       = "crds/ingressclassconfigs.torii.dev.yaml"
	dedChartCRD  = "chart/torii/crds/ingressclassconfigs.torii.dev.yaml"
	dedNamespace = "torii-system"
)

var dedStrict = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

// dedLoad decodes every document of a file strictly with client-go's
// scheme.
func dedLoad(t *testing.T, file string) []runtime.Object {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		if probe == nil || probe["kind"] == "CustomResourceDefinition" {
			continue
		}
		obj, _, err := dedStrict.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: document %d: %v", file, i, err)
		}
		out = append(out, obj)
	}
}

// dedGrants flattens rules into "group/resource" -> sorted verbs.
func dedGrants(rules []rbacv1.PolicyRule) map[string][]string {
	out := map[string][]string{}
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				k := g + "/" + res
				out[k] = append(out[k], r.Verbs...)
				slices.Sort(out[k])
				out[k] = slices.Compact(out[k])
			}
		}
	}
	return out
}

// TestDedicatedManifests: deploy/dedicated.yaml grants the controller's
// service account exactly what dedicated mode needs, and the controller
// already holds every permission the proxies' Roles grant (the API server
// lets no one grant what they do not have).
func TestDedicatedManifests(t *testing.T) {
	var roles []*rbacv1.ClusterRole
	var bindings []*rbacv1.ClusterRoleBinding
	var policies []*admissionregistrationv1.ValidatingAdmissionPolicy
	var policyBindings []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	for _, o := range dedLoad(t, dedFile) {
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			roles = append(roles, o)
		case *rbacv1.ClusterRoleBinding:
			bindings = append(bindings, o)
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			policies = append(policies, o)
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			policyBindings = append(policyBindings, o)
		default:
			t.Fatalf("%s: unexpected %T", dedFile, o)
		}
	}
	if len(roles) != 1 || len(bindings) != 1 {
		t.Fatalf("%s: want one ClusterRole and one ClusterRoleBinding", dedFile)
	}
	dedCheckRules(t, dedFile, roles[0], bindings[0])
	if len(policies) != 1 || len(policyBindings) != 1 {
		t.Fatalf("%s: want one ValidatingAdmissionPolicy and one ValidatingAdmissionPolicyBinding", dedFile)
	}
	dedCheckPolicy(t, dedFile, policies[0], policyBindings[0], "system:serviceaccount:torii-system:torii")

	// The controller's own ClusterRole (torii.yaml) covers the proxies'.
	var torii *rbacv1.ClusterRole
	var sa *corev1.ServiceAccount
	for _, o := range dedLoad(t, manifestFile) {
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			torii = o
		case *corev1.ServiceAccount:
			sa = o
		}
	}
	if s := bindings[0].Subjects; len(s) != 1 || s[0].Kind != "ServiceAccount" || s[0].Name != sa.Name || s[0].Namespace != sa.Namespace {
		t.Errorf("%s: binds %v, not the controller's service account %s/%s", dedFile, s, sa.Namespace, sa.Name)
	}
	dedCheckCovers(t, torii)
}

// dedCheckRules checks a dedicated-mode ClusterRole against
// dedicated.ControllerRules and its binding against the role.
func dedCheckRules(t *testing.T, file string, role *rbacv1.ClusterRole, binding *rbacv1.ClusterRoleBinding) {
	t.Helper()
	got, want := dedGrants(role.Rules), dedGrants(dedicated.ControllerRules())
	if !maps.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Errorf("%s: ClusterRole %s grants\n %v\nwant exactly\n %v", file, role.Name, got, want)
	}
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 || slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") {
			t.Errorf("%s: wildcard or non-resource rule %+v", file, r)
		}
	}
	if binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != role.Name {
		t.Errorf("%s: ClusterRoleBinding %s binds %s %s", file, binding.Name, binding.RoleRef.Kind, binding.RoleRef.Name)
	}
}

// dedCheckPolicy checks the ValidatingAdmissionPolicy that confines the
// controller's writes: bound with Deny, failing closed, matching the
// controller's service account only, and covering every kind
// dedicated.ControllerRules lets it create, patch or delete, on CREATE,
// UPDATE and DELETE.
func dedCheckPolicy(t *testing.T, file string, p *admissionregistrationv1.ValidatingAdmissionPolicy, b *admissionregistrationv1.ValidatingAdmissionPolicyBinding, username string) {
	t.Helper()
	if b.Spec.PolicyName != p.Name {
		t.Errorf("%s: ValidatingAdmissionPolicyBinding %s binds policy %q, not %q", file, b.Name, b.Spec.PolicyName, p.Name)
	}
	if !slices.Equal(b.Spec.ValidationActions, []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}) {
		t.Errorf("%s: validationActions %v, want [Deny]", file, b.Spec.ValidationActions)
	}
	if b.Spec.ParamRef != nil || b.Spec.MatchResources != nil {
		t.Errorf("%s: the binding narrows the policy (paramRef or matchResources)", file)
	}
	if p.Spec.FailurePolicy == nil || *p.Spec.FailurePolicy != admissionregistrationv1.Fail {
		t.Errorf("%s: failurePolicy %v, want Fail", file, p.Spec.FailurePolicy)
	}
	want := "request.userInfo.username == '" + username + "'"
	if mc := p.Spec.MatchConditions; len(mc) != 1 || mc[0].Expression != want {
		t.Errorf("%s: matchConditions %+v, want the one expression %s", file, mc, want)
	}
	mc := p.Spec.MatchConstraints
	if mc == nil || mc.NamespaceSelector != nil || mc.ObjectSelector != nil || len(mc.ExcludeResourceRules) > 0 {
		t.Fatalf("%s: matchConstraints %+v: want resourceRules only", file, mc)
	}
	covered := map[string]bool{}
	for _, r := range mc.ResourceRules {
		ops := slices.Sorted(slices.Values(r.Operations))
		if !slices.Equal(ops, []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Delete, admissionregistrationv1.Update}) {
			t.Errorf("%s: rule %+v: operations %v, want CREATE, UPDATE, DELETE", file, r, r.Operations)
		}
		if !slices.Equal(r.APIVersions, []string{"*"}) || r.Scope != nil && *r.Scope != admissionregistrationv1.AllScopes {
			t.Errorf("%s: rule %+v: want apiVersions [*] and any scope", file, r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				covered[g+"/"+res] = true
			}
		}
	}
	for k, verbs := range dedGrants(dedicated.ControllerRules()) {
		if slices.ContainsFunc(verbs, func(v string) bool { return v == "create" || v == "patch" || v == "update" || v == "delete" }) &&
			!strings.HasSuffix(k, "/finalizers") && !covered[k] {
			t.Errorf("%s: the policy does not cover %s, which the controller may write", file, k)
		}
	}
	if len(p.Spec.Validations) == 0 {
		t.Fatalf("%s: no validations", file)
	}
	for _, v := range p.Spec.Validations {
		if v.Message == "" {
			t.Errorf("%s: validation %q has no message", file, v.Expression)
		}
	}
}

// dedCheckCovers asserts that role grants every permission of a proxy's
// Role, for any Ingress.
func dedCheckCovers(t *testing.T, role *rbacv1.ClusterRole) {
	t.Helper()
	conf := &toriiv1alpha1.IngressClassConfig{Spec: toriiv1alpha1.IngressClassConfigSpec{Mode: toriiv1alpha1.ModeDedicated}}
	conf.Default()
	u := &dedicated.Unit{Name: "torii-web-00000000", Namespace: "shop", Class: "c", Config: conf,
		Ingresses: []*networkingv1.Ingress{{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}}}
	held := dedGrants(role.Rules)
	for k, verbs := range dedGrants(dedicated.Desired(u, dedicated.Settings{Image: "i", ControllerName: "c"}).Role.Rules) {
		for _, v := range verbs {
			if !slices.Contains(held[k], v) {
				t.Errorf("ClusterRole %s lacks %s on %s, which the proxies' Role grants: the API server would refuse to create it", role.Name, v, k)
			}
		}
	}
}

// TestDedicatedCRD: the CRD shipped in deploy/crds and the chart's crds/
// are the same file, and it defines the API the Go types read.
func TestDedicatedCRD(t *testing.T) {
	a, err := os.ReadFile(dedCRD)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dedChartCRD)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("%s and %s differ: copy the first over the second", dedCRD, dedChartCRD)
	}
	var crd struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Group string `json:"group"`
			Scope string `json:"scope"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(a, &crd); err != nil {
		t.Fatal(err)
	}
	if crd.APIVersion != "apiextensions.k8s.io/v1" || crd.Kind != "CustomResourceDefinition" ||
		crd.Metadata.Name != toriiv1alpha1.Resource+"."+toriiv1alpha1.Group || crd.Spec.Scope != "Cluster" {
		t.Errorf("%s: %+v", dedCRD, crd)
	}
	if !strings.Contains(string(a), "x-kubernetes-validations") {
		t.Errorf("%s: no CEL rules", dedCRD)
	}
}

// TestChartDedicated: with dedicated.enabled the chart renders the same
// dedicated-mode RBAC as deploy/dedicated.yaml and passes the flags; by
// default it renders none of it.
func TestChartDedicated(t *testing.T) {
	const rendering = "testdata/chart-dedicated.yaml"
	var dedRole, torii *rbacv1.ClusterRole
	var dedBinding *rbacv1.ClusterRoleBinding
	var policy *admissionregistrationv1.ValidatingAdmissionPolicy
	var policyBinding *admissionregistrationv1.ValidatingAdmissionPolicyBinding
	var args []string
	for _, o := range dedLoad(t, rendering) {
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			if strings.HasSuffix(o.Name, "-dedicated") {
				dedRole = o
			} else {
				torii = o
			}
		case *rbacv1.ClusterRoleBinding:
			if strings.HasSuffix(o.Name, "-dedicated") {
				dedBinding = o
			}
		case *admissionregistrationv1.ValidatingAdmissionPolicy:
			policy = o
		case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
			policyBinding = o
		case *appsv1.Deployment:
			args = o.Spec.Template.Spec.Containers[0].Args
		}
	}
	if policy == nil || policyBinding == nil {
		t.Fatalf("%s: no ValidatingAdmissionPolicy/Binding", rendering)
	}
	dedCheckPolicy(t, rendering, policy, policyBinding, "system:serviceaccount:"+dedNamespace+":torii")
	// The same policy as deploy/dedicated.yaml.
	for _, o := range dedLoad(t, dedFile) {
		if p, ok := o.(*admissionregistrationv1.ValidatingAdmissionPolicy); ok && !equality.Semantic.DeepEqual(p.Spec, policy.Spec) {
			t.Errorf("%s and %s: the ValidatingAdmissionPolicy specs differ", dedFile, rendering)
		}
	}
	if dedRole == nil || dedBinding == nil || torii == nil {
		t.Fatalf("%s: no dedicated ClusterRole/ClusterRoleBinding, or no controller ClusterRole", rendering)
	}
	dedCheckRules(t, rendering, dedRole, dedBinding)
	if s := dedBinding.Subjects; len(s) != 1 || s[0].Name != "torii" || s[0].Namespace != dedNamespace {
		t.Errorf("%s: dedicated binding subjects %v", rendering, s)
	}
	dedCheckCovers(t, torii)
	for _, a := range []string{"--enable-dedicated", "--dedicated-image=registry.example.com/torii:proxy", "--publish-cluster-ip"} {
		if !slices.Contains(args, a) {
			t.Errorf("%s: args %q lack %s", rendering, args, a)
		}
	}

	for _, o := range dedLoad(t, chartDefault) {
		if m, ok := o.(metav1.Object); ok && strings.HasSuffix(m.GetName(), "-dedicated") {
			t.Errorf("%s: renders %s with dedicated mode off", chartDefault, m.GetName())
		}
		if d, ok := o.(*appsv1.Deployment); ok && slices.ContainsFunc(d.Spec.Template.Spec.Containers[0].Args, func(a string) bool {
			return strings.Contains(a, "dedicated")
		}) {
			t.Errorf("%s: dedicated flags with dedicated mode off", chartDefault)
		}
	}
}
