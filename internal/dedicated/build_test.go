package dedicated

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/torii-dev/torii/internal/apis/toriiv1alpha1"
)

func unit(conf *toriiv1alpha1.IngressClassConfig, group string, members ...string) *Unit {
	u := &Unit{Namespace: "shop", Class: "dedicated", Group: group, Config: conf}
	for _, m := range members {
		u.Ingresses = append(u.Ingresses, ingress("shop", m, "dedicated", group))
	}
	u.Name = unitNameOf("shop", members[0], u.Class, group)
	return u
}

var settings = Settings{Image: "ghcr.io/torii-dev/torii:1.2.3", ControllerName: ctrl}

func TestDesired(t *testing.T) {
	conf := config("ded", toriiv1alpha1.ModeDedicated)
	u := unit(conf, "", "web")
	o := Desired(u, settings)

	// Every child: same name and namespace, labels, owner.
	for _, obj := range o.List() {
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		if kind == "" || obj.GetName() != u.Name || obj.GetNamespace() != "shop" {
			t.Errorf("%s %s/%s: want kind set, name %s in shop", kind, obj.GetNamespace(), obj.GetName(), u.Name)
		}
		if l := obj.GetLabels(); l[LabelManagedBy] != "torii" || l[LabelController] != ControllerHash(ctrl) || l[LabelInstance] != u.Name {
			t.Errorf("%s: labels %v", kind, l)
		}
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != "uid-shop-web" || refs[0].Kind != "Ingress" || !*refs[0].Controller || !*refs[0].BlockOwnerDeletion {
			t.Errorf("%s: owner references %+v", kind, refs)
		}
		if obj.GetAnnotations()[AnnotationIngresses] != "web" || obj.GetAnnotations()[AnnotationClass] != "dedicated" {
			t.Errorf("%s: annotations %v", kind, obj.GetAnnotations())
		}
	}
	if len(o.List()) != 6 {
		t.Errorf("%d children, want 6", len(o.List()))
	}

	d := o.Deployment
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	wantArgs := []string{"serve", "--http-addr=:8080", "--https-addr=:8443", "--admin-addr=:10254",
		"--controller-name=" + ctrl, "--only-ingress-class=dedicated", "--only-ingress=shop/web"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args\n got %q\nwant %q", c.Args, wantArgs)
	}
	if c.Image != settings.Image || *d.Spec.Replicas != 2 || pod.ServiceAccountName != u.Name || !*pod.AutomountServiceAccountToken {
		t.Errorf("image %s replicas %d serviceAccount %s automount %v", c.Image, *d.Spec.Replicas, pod.ServiceAccountName, *pod.AutomountServiceAccountToken)
	}
	for k, v := range d.Spec.Selector.MatchLabels {
		if d.Spec.Template.Labels[k] != v || o.Service.Spec.Selector[k] != v || o.PodDisruptionBudget.Spec.Selector.MatchLabels[k] != v {
			t.Errorf("selectors disagree on %s", k)
		}
	}
	if sc := c.SecurityContext; !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !slices.Contains(sc.Capabilities.Drop, "ALL") ||
		!*pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("not restricted: pod %+v container %+v", pod.SecurityContext, sc)
	}
	if c.Resources.Requests.Cpu().String() != "50m" || c.Resources.Limits.Memory().String() != "256Mi" || !c.Resources.Limits.Cpu().IsZero() {
		t.Errorf("resources %v", c.Resources)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes")
	}
	if pod.NodeSelector[corev1.LabelOSStable] != "linux" {
		t.Errorf("nodeSelector %v", pod.NodeSelector)
	}

	s := o.Service
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal ||
		len(s.Spec.Ports) != 2 || s.Spec.Ports[0].TargetPort != intstr.FromString("http") || s.Spec.LoadBalancerClass != nil {
		t.Errorf("Service spec %+v", s.Spec)
	}
	r := o.Role.Rules
	if len(r) != 4 || !slices.Equal(r[0].ResourceNames, []string{"web"}) || !slices.Equal(r[0].Verbs, []string{"get", "list", "watch"}) {
		t.Errorf("Role rules %+v", r)
	}
	for _, rule := range r[1:] {
		if len(rule.ResourceNames) > 0 || slices.ContainsFunc(rule.Verbs, func(v string) bool { return v != "list" && v != "watch" }) {
			t.Errorf("Role rule %+v: want list/watch only", rule)
		}
	}
	if b := o.RoleBinding; b.RoleRef.Name != u.Name || b.Subjects[0].Name != u.Name || b.Subjects[0].Namespace != "shop" {
		t.Errorf("RoleBinding %+v", b)
	}
	if p := o.PodDisruptionBudget; p.Spec.MaxUnavailable.IntValue() != 1 || *p.Spec.UnhealthyPodEvictionPolicy != "AlwaysAllow" {
		t.Errorf("PDB %+v", p.Spec)
	}

	// Pure: the same input gives equal objects, and the config is not
	// modified (no shared maps or slices).
	again := Desired(unit(config("ded", toriiv1alpha1.ModeDedicated), "", "web"), settings)
	for i, obj := range again.List() {
		if !equality.Semantic.DeepEqual(obj, o.List()[i]) {
			t.Errorf("Desired is not deterministic for %s", obj.GetObjectKind().GroupVersionKind().Kind)
		}
	}
	o.Deployment.Spec.Template.Spec.NodeSelector["x"] = "y"
	if _, ok := conf.Spec.Dedicated.NodeSelector["x"]; ok {
		t.Errorf("the Deployment shares the config's nodeSelector map")
	}
}

func TestDesiredOptions(t *testing.T) {
	conf := config("ded", toriiv1alpha1.ModeDedicated)
	d := conf.Spec.Dedicated
	d.Replicas = ptr(int32(3))
	d.Service.Annotations = map[string]string{"metallb.io/address-pool": "pool-a", AnnotationClass: "ignored"}
	d.Service.LoadBalancerClass = ptr("example.com/lb")
	d.Service.LoadBalancerSourceRanges = []string{"203.0.113.0/24"}
	d.Service.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	d.Tolerations = []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}}
	d.PodDisruptionBudget.MaxUnavailable = ptr(intstr.FromString("50%"))
	u := unit(conf, "storefront", "b", "a")
	slices.Reverse(u.Ingresses) // as BuildPlan sorts them: a, b
	o := Desired(u, settings)

	if !strings.HasPrefix(u.Name, "torii-storefront-") {
		t.Errorf("group unit name %s", u.Name)
	}
	args := o.Deployment.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--only-ingress=shop/a") || !slices.Contains(args, "--only-ingress=shop/b") {
		t.Errorf("args %q", args)
	}
	refs := o.Service.OwnerReferences
	if len(refs) != 2 || refs[0].Name != "a" || !*refs[0].Controller || *refs[1].Controller {
		t.Errorf("owner references %+v: want a (controller) and b", refs)
	}
	if !slices.Equal(o.Role.Rules[0].ResourceNames, []string{"a", "b"}) {
		t.Errorf("Role resourceNames %v", o.Role.Rules[0].ResourceNames)
	}
	s := o.Service
	if s.Annotations["metallb.io/address-pool"] != "pool-a" || s.Annotations[AnnotationClass] != "dedicated" ||
		*s.Spec.LoadBalancerClass != "example.com/lb" || !slices.Equal(s.Spec.LoadBalancerSourceRanges, []string{"203.0.113.0/24"}) ||
		s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
		t.Errorf("Service %+v %+v", s.Annotations, s.Spec)
	}
	if *o.Deployment.Spec.Replicas != 3 || len(o.Deployment.Spec.Template.Spec.Tolerations) != 1 {
		t.Errorf("replicas/tolerations")
	}
	if o.PodDisruptionBudget.Spec.MaxUnavailable.String() != "50%" {
		t.Errorf("PDB maxUnavailable %v", o.PodDisruptionBudget.Spec.MaxUnavailable)
	}

	// NodePort: no load-balancer fields; a disabled budget is not built.
	d.Service.Type = corev1.ServiceTypeNodePort
	d.PodDisruptionBudget.Enabled = ptr(false)
	o = Desired(u, settings)
	if o.Service.Spec.LoadBalancerClass != nil || len(o.Service.Spec.LoadBalancerSourceRanges) > 0 || o.Service.Spec.Type != corev1.ServiceTypeNodePort {
		t.Errorf("NodePort Service %+v", o.Service.Spec)
	}
	if o.PodDisruptionBudget != nil || len(o.List()) != 5 {
		t.Errorf("disabled PodDisruptionBudget still built")
	}
}

func TestApplyConfiguration(t *testing.T) {
	o := Desired(unit(config("ded", toriiv1alpha1.ModeDedicated), "", "web"), settings)
	for _, obj := range o.List() {
		data, err := applyConfiguration(obj)
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, bad := range []string{"null", `"status"`, `"creationTimestamp"`, "{}"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s: apply body contains %s: %s", obj.GetObjectKind().GroupVersionKind().Kind, bad, s)
			}
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil || m["kind"] == "" || m["apiVersion"] == "" {
			t.Errorf("apply body without kind/apiVersion: %s", s)
		}
	}
	// false booleans survive pruning.
	data, _ := applyConfiguration(o.ServiceAccount)
	if !strings.Contains(string(data), `"automountServiceAccountToken":false`) {
		t.Errorf("ServiceAccount body lost automountServiceAccountToken: %s", data)
	}
	if errs := validation.IsDNS1035Label(o.Service.Name); len(errs) > 0 {
		t.Errorf("Service name %q: %v", o.Service.Name, errs)
	}
}
