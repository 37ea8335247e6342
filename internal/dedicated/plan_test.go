package dedicated

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/torii-dev/torii/internal/apis/toriiv1alpha1"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

const ctrl = "torii.dev/ingress-controller"

var tcfg = translate.Config{ControllerName: ctrl, IngressClass: "torii"}

func class(name, config string, mods ...func(*networkingv1.IngressClass)) *networkingv1.IngressClass {
	c := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressClassSpec{Controller: ctrl}}
	if config != "" {
		c.Spec.Parameters = &networkingv1.IngressClassParametersReference{
			APIGroup: ptr("torii.dev"), Kind: "IngressClassConfig", Name: config,
		}
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func ingress(ns, name, className, group string) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name)}}
	if className != "" {
		ing.Spec.IngressClassName = ptr(className)
	}
	if group != "" {
		ing.Annotations = map[string]string{AnnotationGroup: group}
	}
	return ing
}

func config(name string, mode toriiv1alpha1.Mode) *toriiv1alpha1.IngressClassConfig {
	c := &toriiv1alpha1.IngressClassConfig{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: toriiv1alpha1.IngressClassConfigSpec{Mode: mode}}
	c.Default()
	return c
}

func configs(cs ...*toriiv1alpha1.IngressClassConfig) Configs {
	out := Configs{Valid: map[string]*toriiv1alpha1.IngressClassConfig{}, Invalid: map[string]error{}}
	for _, c := range cs {
		out.Valid[c.Name] = c
	}
	return out
}

// describe renders a plan as "ns/unit: members" lines plus claimed and
// held names and problem reasons, for table comparisons.
func describe(p *Plan) []string {
	var out []string
	for _, u := range p.Units {
		var names []string
		for _, ing := range u.Ingresses {
			names = append(names, ing.Name)
		}
		out = append(out, "unit "+u.Namespace+"/"+u.Name+" class="+u.Class+" group="+u.Group+": "+strings.Join(names, ","))
	}
	var claimed []string
	for k := range p.Claimed {
		claimed = append(claimed, k.String())
	}
	slices.Sort(claimed)
	if len(claimed) > 0 {
		out = append(out, "claimed "+strings.Join(claimed, ","))
	}
	var held []string
	for k := range p.Held {
		held = append(held, k.String())
	}
	slices.Sort(held)
	if len(held) > 0 {
		out = append(out, "held "+strings.Join(held, ","))
	}
	for _, pr := range p.Problems {
		out = append(out, "problem "+pr.Object.Namespace+"/"+pr.Object.Name+" "+pr.Reason)
	}
	return out
}

func TestBuildPlan(t *testing.T) {
	dedicatedConf := config("ded", toriiv1alpha1.ModeDedicated)
	sharedConf := config("shr", toriiv1alpha1.ModeShared)
	other := func(c *networkingv1.IngressClass) { c.Spec.Parameters.APIGroup = ptr("example.com") }
	namespaced := func(c *networkingv1.IngressClass) {
		c.Spec.Parameters.Scope = ptr(networkingv1.IngressClassParametersReferenceScopeNamespace)
		c.Spec.Parameters.Namespace = ptr("x")
	}
	isDefault := func(c *networkingv1.IngressClass) {
		c.Annotations = map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}
	}
	foreign := func(c *networkingv1.IngressClass) { c.Spec.Controller = "example.com/other" }
	wrongKind := func(c *networkingv1.IngressClass) { c.Spec.Parameters.Kind = "IngressClassConfigs" }
	invalid := configs(dedicatedConf)
	invalid.Invalid["bad"] = errors.New("spec.mode \"X\": want Shared or Dedicated")

	tests := []struct {
		name    string
		classes []*networkingv1.IngressClass
		ings    []*networkingv1.Ingress
		configs Configs
		want    []string
	}{
		{
			name:    "class without parameters is shared",
			classes: []*networkingv1.IngressClass{class("torii", "")},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "torii", "")},
			configs: configs(dedicatedConf),
		},
		{
			name:    "Shared config is shared",
			classes: []*networkingv1.IngressClass{class("c", "shr")},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "c", "")},
			configs: configs(sharedConf),
		},
		{
			// A typo in apiGroup must not delete the load balancer: held.
			name:    "parameters of another API group: claimed, held, warned",
			classes: []*networkingv1.IngressClass{class("c", "ded", other)},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "c", "")},
			configs: configs(dedicatedConf),
			want:    []string{"claimed a/web", "held a/" + IngressUnitName("a", "web"), "problem a/web InvalidIngressClassParameters"},
		},
		{
			name:    "parameters of another kind: claimed, held, warned",
			classes: []*networkingv1.IngressClass{class("c", "ded", wrongKind)},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "c", "g")},
			configs: configs(dedicatedConf),
			want:    []string{"claimed a/web", "held a/" + GroupUnitName("a", "c", "g"), "problem a/web InvalidIngressClassParameters"},
		},
		{
			// Deleted or being recreated: whose it is cannot be told.
			name:    "named class missing: held, warning deferred",
			classes: []*networkingv1.IngressClass{class("d", "ded")},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "c", ""), ingress("a", "x", "c", "g")},
			configs: configs(dedicatedConf),
			want:    []string{"held a/" + GroupUnitName("a", "c", "g") + ",a/" + IngressUnitName("a", "web")},
		},
		{
			name:    "another controller's class",
			classes: []*networkingv1.IngressClass{class("c", "ded", foreign)},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "c", "")},
			configs: configs(dedicatedConf),
		},
		{
			name:    "one unit per dedicated Ingress",
			classes: []*networkingv1.IngressClass{class("c", "ded"), class("torii", "")},
			ings:    []*networkingv1.Ingress{ingress("b", "web", "c", ""), ingress("a", "web", "c", ""), ingress("a", "shared", "torii", "")},
			configs: configs(dedicatedConf),
			want: []string{
				"unit a/" + IngressUnitName("a", "web") + " class=c group=: web",
				"unit b/" + IngressUnitName("b", "web") + " class=c group=: web",
				"claimed a/web,b/web",
			},
		},
		{
			name:    "groups per namespace and class",
			classes: []*networkingv1.IngressClass{class("c", "ded"), class("d", "ded")},
			ings: []*networkingv1.Ingress{
				ingress("a", "y", "c", "g"), ingress("a", "x", "c", "g"), ingress("a", "z", "d", "g"), ingress("b", "w", "c", "g"),
				ingress("a", "solo", "c", " "),
			},
			configs: configs(dedicatedConf),
			want: []string{
				"unit a/" + GroupUnitName("a", "c", "g") + " class=c group=g: x,y",
				"unit a/" + GroupUnitName("a", "d", "g") + " class=d group=g: z",
				"unit a/" + IngressUnitName("a", "solo") + " class=c group=: solo",
				"unit b/" + GroupUnitName("b", "c", "g") + " class=c group=g: w",
				"claimed a/solo,a/x,a/y,a/z,b/w",
			},
		},
		{
			name:    "class-less Ingress of a dedicated default class",
			classes: []*networkingv1.IngressClass{class("c", "ded", isDefault)},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "", "")},
			configs: configs(dedicatedConf),
			want:    []string{"unit a/" + IngressUnitName("a", "web") + " class=c group=: web", "claimed a/web"},
		},
		{
			name:    "missing config: claimed, held, warned",
			classes: []*networkingv1.IngressClass{class("c", "gone")},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "c", "")},
			configs: configs(dedicatedConf),
			want:    []string{"claimed a/web", "held a/" + IngressUnitName("a", "web"), "problem a/web IngressClassConfigNotFound"},
		},
		{
			name:    "invalid config",
			classes: []*networkingv1.IngressClass{class("c", "bad")},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "c", "g")},
			configs: invalid,
			want:    []string{"claimed a/web", "held a/" + GroupUnitName("a", "c", "g"), "problem a/web InvalidIngressClassConfig"},
		},
		{
			name:    "namespaced parameters",
			classes: []*networkingv1.IngressClass{class("c", "ded", namespaced)},
			ings:    []*networkingv1.Ingress{ingress("a", "web", "c", "")},
			configs: configs(dedicatedConf),
			want:    []string{"claimed a/web", "held a/" + IngressUnitName("a", "web"), "problem a/web InvalidIngressClassParameters"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			view := &store.Objects{IngressClasses: tc.classes, Ingresses: tc.ings}
			got := describe(BuildPlan(tcfg, view, tc.configs))
			if !slices.Equal(got, tc.want) {
				t.Errorf("plan\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestSharedView(t *testing.T) {
	view := &store.Objects{
		IngressClasses: []*networkingv1.IngressClass{class("c", "ded"), class("torii", "")},
		Ingresses:      []*networkingv1.Ingress{ingress("a", "d", "c", ""), ingress("a", "s", "torii", "")},
		Services:       []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "svc"}}},
	}
	p := BuildPlan(tcfg, view, configs(config("ded", toriiv1alpha1.ModeDedicated)))
	shared := p.SharedView(view)
	if len(shared.Ingresses) != 1 || shared.Ingresses[0].Name != "s" {
		t.Fatalf("shared view Ingresses: %v", shared.Ingresses)
	}
	if len(view.Ingresses) != 2 || len(shared.Services) != 1 || len(shared.IngressClasses) != 2 {
		t.Fatalf("the view was modified, or the shared view lost other objects")
	}
	// With nothing claimed, the view itself.
	empty := BuildPlan(tcfg, &store.Objects{Ingresses: view.Ingresses[1:], IngressClasses: view.IngressClasses}, configs())
	if v := (&store.Objects{}); empty.SharedView(v) != v {
		t.Errorf("a plan claiming nothing copied the view")
	}
}

func TestPlanStatus(t *testing.T) {
	nodePort := config("np", toriiv1alpha1.ModeDedicated)
	nodePort.Spec.Dedicated.Service.Type = corev1.ServiceTypeNodePort
	classes := []*networkingv1.IngressClass{class("c", "ded"), class("np", "np")}
	ings := []*networkingv1.Ingress{ingress("a", "new", "c", ""), ingress("a", "pending", "c", ""), ingress("a", "up", "c", ""), ingress("a", "node", "np", "")}
	p := BuildPlan(tcfg, &store.Objects{IngressClasses: classes, Ingresses: ings}, configs(config("ded", toriiv1alpha1.ModeDedicated), nodePort))
	svc := func(ing string, clusterIP string, lb ...corev1.LoadBalancerIngress) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: IngressUnitName("a", ing)}, Spec: corev1.ServiceSpec{ClusterIP: clusterIP}}
		s.Status.LoadBalancer.Ingress = lb
		return s
	}
	services := []*corev1.Service{
		svc("pending", "10.96.0.2"),
		svc("up", "10.96.0.3", corev1.LoadBalancerIngress{IP: "198.51.100.1"}, corev1.LoadBalancerIngress{Hostname: "lb.example"}),
		svc("node", "10.96.0.4"),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "unrelated"}},
	}
	render := func(ts []Target) map[string]string {
		out := map[string]string{}
		for _, tg := range ts {
			var s []string
			for _, a := range tg.Addresses {
				s = append(s, a.IP+a.Hostname)
			}
			out[tg.Ingress.Name] = strings.Join(s, " ")
		}
		return out
	}
	targets, waiting := p.Status(services, false)
	want := map[string]string{"new": "", "pending": "", "up": "198.51.100.1 lb.example", "node": ""}
	if got := render(targets); !mapsEqual(got, want) {
		t.Errorf("targets %v, want %v", got, want)
	}
	var reasons []string
	for _, w := range waiting {
		if w.Type != corev1.EventTypeNormal || w.Reason != "WaitingForLoadBalancer" || w.Object.UID == "" {
			t.Errorf("waiting problem %+v", w)
		}
		reasons = append(reasons, w.Object.Name+": "+w.Message)
	}
	if len(waiting) != 2 || !strings.Contains(reasons[0], "new: Dedicated load balancer: creating Service") ||
		!strings.Contains(reasons[1], "pending: Dedicated load balancer: waiting for the cluster's load-balancer implementation") {
		t.Errorf("waiting events:\n%s", strings.Join(reasons, "\n"))
	}

	targets, _ = p.Status(services, true)
	want = map[string]string{"new": "", "pending": "10.96.0.2", "up": "198.51.100.1 lb.example 10.96.0.3", "node": "10.96.0.4"}
	if got := render(targets); !mapsEqual(got, want) {
		t.Errorf("with the ClusterIP: targets %v, want %v", got, want)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
