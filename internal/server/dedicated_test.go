package server

import (
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
)

func TestOnlyConfig(t *testing.T) {
	only, err := onlyConfig([]string{"shop/web", "shop/api.v2"}, "dedicated", "torii.dev/ingress-controller")
	if err != nil {
		t.Fatal(err)
	}
	if len(only.Ingresses) != 2 || only.Ingresses[1].Namespace != "shop" || only.Ingresses[1].Name != "api.v2" {
		t.Errorf("Ingresses %v", only.Ingresses)
	}
	c := only.Class
	if c.Name != "dedicated" || c.Spec.Controller != "torii.dev/ingress-controller" || c.Annotations[networkingv1.AnnotationIsDefaultIngressClass] != "true" {
		t.Errorf("class %+v", c)
	}
	for _, tc := range []struct {
		ingresses []string
		class     string
		want      string
	}{
		{nil, "dedicated", "needs --only-ingress"},
		{[]string{"shop/web"}, "", "needs --only-ingress-class"},
		{[]string{"web"}, "dedicated", "want namespace/name"},
		{[]string{"shop/a/b"}, "dedicated", "want namespace/name"},
		{[]string{"shop/Web"}, "dedicated", "--only-ingress"},
		{[]string{"shop/a", "other/b"}, "dedicated", "different namespaces"},
		{[]string{"shop/a"}, "Bad_Class", "--only-ingress-class"},
	} {
		if _, err := onlyConfig(tc.ingresses, tc.class, "c"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("onlyConfig(%q, %q): got %v, want %q", tc.ingresses, tc.class, err, tc.want)
		}
	}
}

func TestReferences(t *testing.T) {
	prefix := networkingv1.PathTypePrefix
	backend := func(name string) networkingv1.IngressBackend {
		return networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: name}}
	}
	def := backend("default")
	ing := &networkingv1.Ingress{Spec: networkingv1.IngressSpec{
		DefaultBackend: &def,
		TLS:            []networkingv1.IngressTLS{{SecretName: "cert"}, {}},
		Rules: []networkingv1.IngressRule{
			{Host: "a"},
			{Host: "b", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{
				{Path: "/", PathType: &prefix, Backend: backend("web")},
				{Path: "/r", PathType: &prefix, Backend: networkingv1.IngressBackend{}},
			}}}},
		},
	}}
	svcs, secrets := references([]*networkingv1.Ingress{ing})
	if strings.Join(svcs, ",") != "default,web" || strings.Join(secrets, ",") != "cert" {
		t.Errorf("services %q secrets %q", svcs, secrets)
	}
}
