package translate

import (
	"reflect"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/store"
)

func TestProblemString(t *testing.T) {
	p := Problem{
		Object:   model.ObjectRef{Kind: "Ingress", Namespace: "default", Name: "web"},
		Severity: SeverityError,
		Reason:   "InvalidPath",
		Message:  `spec.rules[0].http.paths[1].path "/a/../b": dot segment ".." is not allowed`,
	}
	want := `Ingress default/web: spec.rules[0].http.paths[1].path "/a/../b": dot segment ".." is not allowed`
	if got := p.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestHasErrors(t *testing.T) {
	warn := Problem{Severity: SeverityWarning}
	fail := Problem{Severity: SeverityError}
	for _, tt := range []struct {
		problems []Problem
		want     bool
	}{
		{nil, false},
		{[]Problem{warn}, false},
		{[]Problem{warn, fail}, true},
	} {
		if got := (Result{Problems: tt.problems}).HasErrors(); got != tt.want {
			t.Errorf("HasErrors(%v) = %v, want %v", tt.problems, got, tt.want)
		}
	}
}

func TestBuildEmpty(t *testing.T) {
	for name, objs := range map[string]*store.Objects{
		"nil":       nil,
		"empty":     {},
		"nil items": {IngressClasses: []*networkingv1.IngressClass{nil}, Ingresses: []*networkingv1.Ingress{nil}},
	} {
		t.Run(name, func(t *testing.T) {
			res := Build(testConfig, objs)
			want := Result{
				Snapshot: &model.Snapshot{
					VirtualHosts: []model.VirtualHost{},
					Backends:     []model.Backend{},
					Certificates: []model.Certificate{},
				},
				Problems: []Problem{},
				Owned:    []model.ObjectRef{},
			}
			if !reflect.DeepEqual(res, want) {
				t.Errorf("Build = %+v, want %+v", res, want)
			}
			if err := res.Snapshot.Validate(); err != nil {
				t.Error(err)
			}
		})
	}
}

// ingressFor builds a minimal owned Ingress with one Prefix "/" rule.
func ingressFor(ns, name, host string) *networkingv1.Ingress {
	class := "torii"
	prefix := networkingv1.PathTypePrefix
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{
				Host: host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
					Paths: []networkingv1.HTTPIngressPath{{
						Path:     "/",
						PathType: &prefix,
						Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
							Name: "web",
							Port: networkingv1.ServiceBackendPort{Number: 80},
						}},
					}},
				}},
			}},
		},
	}
}

func toriiClass(controller string) *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: "torii"},
		Spec:       networkingv1.IngressClassSpec{Controller: controller},
	}
}

// TestDuplicateObjects pins that a malformed view holding one name twice
// serves the first object only, so route IDs stay unique.
func TestDuplicateObjects(t *testing.T) {
	first := ingressFor("default", "web", "a.example.com")
	second := ingressFor("default", "web", "b.example.com")
	res := Build(testConfig, &store.Objects{
		IngressClasses: []*networkingv1.IngressClass{toriiClass(testConfig.ControllerName)},
		Ingresses:      []*networkingv1.Ingress{first, second},
	})
	if err := res.Snapshot.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(res.Owned) != 1 || len(res.Snapshot.VirtualHosts) != 1 || res.Snapshot.VirtualHosts[0].Host != "a.example.com" {
		t.Errorf("got owned %v, virtual hosts %+v; want only the first object", res.Owned, res.Snapshot.VirtualHosts)
	}
}

// TestEmptyNamesNeverMatch pins that an empty controller name or legacy
// class setting does not own classes or annotations that are empty too.
func TestEmptyNamesNeverMatch(t *testing.T) {
	ing := ingressFor("default", "web", "a.example.com")
	empty := ""
	ing.Spec.IngressClassName = nil
	ing.Annotations = map[string]string{annotationIngressClass: ""}
	withField := ingressFor("default", "field", "b.example.com")
	withField.Spec.IngressClassName = &empty
	res := Build(Config{}, &store.Objects{
		IngressClasses: []*networkingv1.IngressClass{toriiClass("")},
		Ingresses:      []*networkingv1.Ingress{ing, withField},
	})
	if len(res.Owned) != 0 {
		t.Errorf("owned %v, want none", res.Owned)
	}
}

func TestInvalidObjectNames(t *testing.T) {
	res := Build(testConfig, &store.Objects{
		IngressClasses: []*networkingv1.IngressClass{toriiClass(testConfig.ControllerName)},
		Ingresses: []*networkingv1.Ingress{
			ingressFor("default", "a/rule/0/path/0", "a.example.com"),
			ingressFor("Bad NS", "web", "a.example.com"),
			ingressFor("default", "", "a.example.com"),
		},
	})
	if len(res.Snapshot.VirtualHosts) != 0 {
		t.Errorf("virtual hosts %+v, want none", res.Snapshot.VirtualHosts)
	}
	if len(res.Problems) != 3 {
		t.Fatalf("problems %v, want 3", res.Problems)
	}
	for _, p := range res.Problems {
		if p.Severity != SeverityError || p.Reason != reasonInvalidIngress || !strings.HasPrefix(p.Message, "metadata.") {
			t.Errorf("problem %+v, want an InvalidIngress Error on metadata", p)
		}
	}
}

func TestQuoteTruncates(t *testing.T) {
	long := "/" + strings.Repeat("a", 1000)
	got := quote(long)
	if len(got) > maxQuoted+8 || !strings.HasSuffix(got, `"...`) {
		t.Errorf("quote(1001 bytes) = %q, want at most %d quoted bytes and an ellipsis", got, maxQuoted)
	}
	if got := quote("a\nb\"c"); got != `"a\nb\"c"` {
		t.Errorf("quote = %s, want escapes", got)
	}
}

func TestCheckPath(t *testing.T) {
	for _, tt := range []struct {
		in, want, msg string
	}{
		{in: "/", want: "/"},
		{in: "/a/", want: "/a/"},
		{in: "/fo%6F", want: "/foo"},
		{in: "/a%2fb", want: "/a%2Fb"},
		{in: "/...", want: "/..."},
		{in: "/a/.b/..c/", want: "/a/.b/..c/"},
		{in: "", msg: "required"},
		{in: "a", msg: "must start with '/'"},
		{in: "/a b", msg: `character ' '`},
		{in: "/\xff", msg: "byte 0xff"},
		{in: "/é", msg: `character 'é'`},
		{in: "//", msg: "duplicate slashes"},
		{in: "/a/%2E", msg: `dot segment "%2E"`},
		{in: "/%2e%2E", msg: `dot segment "%2e%2E"`},
		{in: "/.%2e.", want: "/..."},
		{in: "/%00", msg: "NUL"},
		{in: "/%g0", msg: "invalid percent-encoding"},
	} {
		got, msg := checkPath(tt.in)
		if got != tt.want || !strings.Contains(msg, tt.msg) || (tt.msg == "") != (msg == "") {
			t.Errorf("checkPath(%q) = %q, %q; want %q, message containing %q", tt.in, got, msg, tt.want, tt.msg)
		}
	}
}

func TestCheckHost(t *testing.T) {
	for _, tt := range []struct {
		in  string
		msg string
	}{
		{in: "example.com"},
		{in: "*.example.com"},
		{in: "a-b.c1.example"},
		{in: "localhost"},
		{in: "*", msg: "alone"},
		{in: "*.", msg: "DNS name"},
		{in: "Example.com", msg: "lower-case"},
		{in: "10.0.0.1", msg: "IP address"},
		{in: "::1", msg: "IP address"},
		{in: "example.com:443", msg: "port"},
		{in: "-a.example.com", msg: "DNS name"},
		{in: "a.example.com.", msg: "DNS name"},
		{in: "*.*.example.com", msg: "first label"},
		{in: "foo*.example.com", msg: "first label"},
		{in: strings.Repeat("a.", 127) + "com", msg: "at most 253"},
	} {
		msg := checkHost(tt.in)
		if !strings.Contains(msg, tt.msg) || (tt.msg == "") != (msg == "") {
			t.Errorf("checkHost(%q) = %q, want a message containing %q", tt.in, msg, tt.msg)
		}
	}
}
