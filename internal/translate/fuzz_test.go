package translate

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/tools/txtar"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/store"
)

// FuzzTranslate decodes fuzzed Kubernetes YAML, mutates the objects with a
// second fuzzed byte string, and checks that Build does not panic, does not
// modify its input, returns a snapshot that passes Validate, and returns the
// same result twice and for the input in reverse order.
func FuzzTranslate(f *testing.F) {
	files, _ := filepath.Glob("testdata/golden/*.txtar")
	for _, file := range files {
		ar, err := txtar.ParseFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, s := range ar.Files {
			if s.Name == "input.yaml" {
				f.Add(s.Data, []byte{})
				f.Add(s.Data, []byte{1, 0, 2, 3, 17, 4, 5, 6, 20, 8, 0, 9, 10, 12, 14, 15})
			}
		}
	}
	f.Add([]byte{}, []byte{0, 0, 1, 2, 0, 3, 9, 1, 10, 2, 12, 3, 8, 4, 0, 0, 5, 6})

	f.Fuzz(func(t *testing.T, input, ops []byte) {
		objs, _ := decodeObjects(input, false)
		m := &mutator{ops: ops, objs: objs}
		cfg := testConfig
		cfg.WatchIngressWithoutClass = m.next()&1 == 1
		m.run()

		before := deepCopy(objs)
		res := Build(cfg, objs)
		if !reflect.DeepEqual(before, objs) {
			t.Fatal("Build modified its input")
		}
		if err := res.Snapshot.Validate(); err != nil {
			t.Fatalf("Snapshot.Validate: %v", err)
		}
		checkResult(t, res)
		if again := Build(cfg, objs); !reflect.DeepEqual(res, again) {
			t.Fatal("Build is not deterministic")
		}
		if !hasDuplicates(objs) {
			if rev := Build(cfg, reversed(objs)); !reflect.DeepEqual(res, rev) {
				t.Fatal("Build depends on the order of its input")
			}
		}
	})
}

// checkResult checks the invariants of a Result beyond Snapshot.Validate.
func checkResult(t *testing.T, res Result) {
	t.Helper()
	if !slices.IsSortedFunc(res.Owned, compareRefs) {
		t.Fatalf("Owned not sorted: %v", res.Owned)
	}
	owned := make(map[model.ObjectRef]bool, len(res.Owned))
	for _, r := range res.Owned {
		owned[r] = true
	}
	for i, p := range res.Problems {
		if strings.ContainsAny(p.Message, "\n\r") {
			t.Fatalf("multi-line message: %q", p.Message)
		}
		if !owned[p.Object] {
			t.Fatalf("problem on an object that is not owned: %v", p)
		}
		if p.Reason == "" || p.Severity != SeverityError && p.Severity != SeverityWarning {
			t.Fatalf("problem without reason or severity: %+v", p)
		}
		if i > 0 {
			q := res.Problems[i-1]
			if c := compareRefs(q.Object, p.Object); c > 0 || c == 0 && q.Message > p.Message {
				t.Fatalf("problems not sorted: %v before %v", q, p)
			}
		}
	}
	check := func(r *model.Route) {
		if r != nil && !owned[r.Source] {
			t.Fatalf("route %s from an Ingress that is not owned", r.ID)
		}
	}
	for _, vh := range res.Snapshot.VirtualHosts {
		for i := range vh.Routes {
			check(&vh.Routes[i])
		}
		check(vh.Default)
	}
	check(res.Snapshot.CatchAll)
}

// hasDuplicates reports whether objs holds two objects of one kind with the
// same namespace and name, the one input for which Build's result depends on
// input order.
func hasDuplicates(objs *store.Objects) bool {
	seen := make(map[string]bool)
	dup := func(kind string, m *metav1.ObjectMeta) bool {
		k := kind + "/" + m.Namespace + "/" + m.Name
		if seen[k] {
			return true
		}
		seen[k] = true
		return false
	}
	for _, o := range objs.IngressClasses {
		if o != nil && dup("IngressClass", &o.ObjectMeta) {
			return true
		}
	}
	for _, o := range objs.Ingresses {
		if o != nil && dup("Ingress", &o.ObjectMeta) {
			return true
		}
	}
	for _, o := range objs.Services {
		if o != nil && dup("Service", &o.ObjectMeta) {
			return true
		}
	}
	for _, o := range objs.EndpointSlices {
		if o != nil && dup("EndpointSlice", &o.ObjectMeta) {
			return true
		}
	}
	for _, o := range objs.Secrets {
		if o != nil && dup("Secret", &o.ObjectMeta) {
			return true
		}
	}
	return false
}

// fuzzStrings are values the mutator favours: valid and invalid hosts,
// paths, names and keywords that steer into each branch of Build.
var fuzzStrings = []string{
	"", "/", "/a", "/a/", "/a/../b", "//", "/%2e%2E", "/%00", "/fo%6F", "/a b", "/a%2Fb", "a", "/\n", "/é",
	"a.example.com", "*.example.com", "*", "A.example.com", "10.0.0.1", "::1", "a.example.com:80", "x.y.example.com",
	"default", "other", "web", "api", "torii", "nginx", "http", "https", "HTTP_x", "a/b", "a-tls", "b-tls",
	"Exact", "Prefix", "ImplementationSpecific", "Regex", "ExternalName", "api.example.org", "bad name.",
	"10.0.0.2", "2001:DB8::1", "0.0.0.0", "fe80::1%eth0", "true", "false", "UDP", "TCP",
}

// mutator edits decoded objects as a stream of fuzzed opcodes directs.
type mutator struct {
	ops  []byte
	objs *store.Objects
}

func (m *mutator) next() byte {
	if len(m.ops) == 0 {
		return 0
	}
	b := m.ops[0]
	m.ops = m.ops[1:]
	return b
}

func (m *mutator) intn(n int) int { return int(m.next()) % n }

// str returns a favoured string, or a short raw slice of the stream.
func (m *mutator) str() string {
	b := m.next()
	if b < 224 {
		return fuzzStrings[int(b)%len(fuzzStrings)]
	}
	n := min(int(m.next())%24, len(m.ops))
	s := string(m.ops[:n])
	m.ops = m.ops[n:]
	return s
}

func (m *mutator) boolPtr() *bool {
	switch m.intn(3) {
	case 0:
		return nil
	case 1:
		return new(true)
	}
	return new(false)
}

// ingress picks an Ingress to edit, never nil, adding one if needed.
func (m *mutator) ingress() *networkingv1.Ingress {
	if n := len(m.objs.Ingresses); n > 0 {
		if ing := m.objs.Ingresses[m.intn(n)]; ing != nil {
			return ing
		}
	}
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "fuzz"},
		Spec:       networkingv1.IngressSpec{IngressClassName: new("torii")},
	}
	m.objs.Ingresses = append(m.objs.Ingresses, ing)
	return ing
}

func (m *mutator) rule(ing *networkingv1.Ingress) *networkingv1.IngressRule {
	if len(ing.Spec.Rules) == 0 || m.intn(4) == 0 {
		ing.Spec.Rules = append(ing.Spec.Rules, networkingv1.IngressRule{Host: m.str()})
	}
	return &ing.Spec.Rules[m.intn(len(ing.Spec.Rules))]
}

func (m *mutator) path(ing *networkingv1.Ingress) *networkingv1.HTTPIngressPath {
	r := m.rule(ing)
	if r.HTTP == nil {
		r.HTTP = &networkingv1.HTTPIngressRuleValue{}
	}
	if len(r.HTTP.Paths) == 0 || m.intn(3) == 0 {
		r.HTTP.Paths = append(r.HTTP.Paths, networkingv1.HTTPIngressPath{
			Path:     m.str(),
			PathType: new(networkingv1.PathTypePrefix),
			Backend:  networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: "web", Port: networkingv1.ServiceBackendPort{Number: 80}}},
		})
	}
	return &r.HTTP.Paths[m.intn(len(r.HTTP.Paths))]
}

func (m *mutator) backend() networkingv1.IngressBackend {
	var b networkingv1.IngressBackend
	if m.intn(4) != 0 {
		b.Service = &networkingv1.IngressServiceBackend{Name: m.str()}
		if m.intn(2) == 0 {
			b.Service.Port.Number = int32(m.intn(256)) - 8 + int32(m.intn(2))*65400
		} else {
			b.Service.Port.Name = m.str()
		}
	}
	if m.intn(5) == 0 {
		b.Resource = &corev1.TypedLocalObjectReference{Kind: m.str(), Name: m.str()}
	}
	return b
}

// fuzzPEM holds the test certificates and keys, read once.
var fuzzPEM = sync.OnceValue(func() [][]byte {
	var out [][]byte
	for _, name := range []string{"a.crt", "a.key", "b.crt", "b.key", "wildcard.crt", "wildcard.key"} {
		b, err := os.ReadFile(filepath.Join("testdata/certs", name))
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	return out
})

// pem returns a fixture certificate or key, or garbage.
func (m *mutator) pem() []byte {
	pems := fuzzPEM()
	if i := m.intn(len(pems) + 1); i < len(pems) {
		return pems[i]
	}
	return []byte(m.str())
}

// run applies the opcodes until the stream ends.
func (m *mutator) run() {
	for steps := 0; len(m.ops) > 0 && steps < 64; steps++ {
		switch m.next() % 16 {
		case 0:
			m.objs.Ingresses = append(m.objs.Ingresses, &networkingv1.Ingress{
				ObjectMeta: metav1.ObjectMeta{Namespace: m.str(), Name: m.str()},
				Spec:       networkingv1.IngressSpec{IngressClassName: new("torii")},
			})
		case 1:
			m.rule(m.ingress()).Host = m.str()
		case 2:
			m.path(m.ingress()).Path = m.str()
		case 3:
			p := m.path(m.ingress())
			if m.intn(5) == 0 {
				p.PathType = nil
			} else {
				p.PathType = new(networkingv1.PathType(m.str()))
			}
		case 4:
			m.path(m.ingress()).Backend = m.backend()
		case 5:
			ing := m.ingress()
			if m.intn(3) == 0 {
				ing.Spec.DefaultBackend = nil
			} else {
				b := m.backend()
				ing.Spec.DefaultBackend = &b
			}
		case 6:
			m.ingress().CreationTimestamp = metav1.NewTime(time.Unix(int64(m.intn(4))*3600, 0).UTC())
		case 7:
			ing := m.ingress()
			switch m.intn(3) {
			case 0:
				ing.Spec.IngressClassName = nil
			case 1:
				ing.Spec.IngressClassName = new(m.str())
			default:
				ing.Annotations = map[string]string{annotationIngressClass: m.str()}
			}
		case 8:
			ing := m.ingress()
			ing.Spec.TLS = append(ing.Spec.TLS, networkingv1.IngressTLS{SecretName: m.str()})
			for range m.intn(3) {
				tls := &ing.Spec.TLS[len(ing.Spec.TLS)-1]
				tls.Hosts = append(tls.Hosts, m.str())
			}
		case 9:
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: m.str(), Name: m.str()}}
			if m.intn(3) == 0 {
				svc.Spec.Type = corev1.ServiceTypeExternalName
				svc.Spec.ExternalName = m.str()
			}
			for range m.intn(3) {
				sp := corev1.ServicePort{Name: m.str(), Port: int32(m.intn(100)), Protocol: corev1.Protocol(m.str())}
				switch m.intn(4) {
				case 1:
					sp.TargetPort = intstr.FromInt32(int32(m.intn(256)) - 8 + int32(m.intn(2))*65400)
				case 2:
					sp.TargetPort = intstr.FromString(m.str())
				}
				svc.Spec.Ports = append(svc.Spec.Ports, sp)
			}
			m.objs.Services = append(m.objs.Services, svc)
		case 10:
			s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{
				Namespace: m.str(), Name: m.str(), Labels: map[string]string{labelServiceName: m.str()},
			}}
			for range m.intn(3) {
				s.Ports = append(s.Ports, discoveryv1.EndpointPort{Name: new(m.str()), Port: new(int32(m.intn(100)))})
			}
			m.objs.EndpointSlices = append(m.objs.EndpointSlices, s)
		case 11:
			if len(m.objs.EndpointSlices) == 0 {
				break
			}
			s := m.objs.EndpointSlices[m.intn(len(m.objs.EndpointSlices))]
			if s == nil {
				break
			}
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
				Addresses:  []string{m.str(), m.str()},
				Conditions: discoveryv1.EndpointConditions{Ready: m.boolPtr(), Terminating: m.boolPtr()},
			})
		case 12:
			m.objs.Secrets = append(m.objs.Secrets, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: m.str(), Name: m.str()},
				Data:       map[string][]byte{corev1.TLSCertKey: m.pem(), corev1.TLSPrivateKeyKey: m.pem()},
			})
		case 13:
			c := &networkingv1.IngressClass{
				ObjectMeta: metav1.ObjectMeta{Name: m.str()},
				Spec:       networkingv1.IngressClassSpec{Controller: testConfig.ControllerName},
			}
			if m.intn(2) == 0 {
				c.Annotations = map[string]string{annotationDefaultClass: m.str()}
			}
			m.objs.IngressClasses = append(m.objs.IngressClasses, c)
		case 14:
			if m.intn(2) == 0 {
				m.objs.Ingresses = append(m.objs.Ingresses, nil)
			} else {
				m.objs.Ingresses = append(m.objs.Ingresses, m.ingress())
			}
		case 15:
			ing := m.ingress()
			if m.intn(2) == 0 {
				ing.Spec.Rules = nil
			} else {
				m.rule(ing).HTTP = nil
			}
		}
	}
}
