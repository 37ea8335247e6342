package dir

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/torii-dev/torii/internal/store"
)

// keys lists every object of objs as "Kind namespace/name", in view order.
func keys(objs *store.Objects) []string {
	var out []string
	each(objs, func(o runtime.Object) { out = append(out, keyOf(o).String()) })
	return out
}

// ignoredStrings renders ignored documents with their String method.
func ignoredStrings(ig []Ignored) []string {
	var out []string
	for _, o := range ig {
		out = append(out, o.String())
	}
	return out
}

func TestDecodeMultiDocument(t *testing.T) {
	const in = `# A leading comment outside any object.
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: torii
  namespace: ignored-for-cluster-scoped
spec:
  controller: torii.dev/ingress-controller
---
# A document holding only a comment.
---
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  creationTimestamp: "2024-05-06T07:08:09Z"
spec:
  ingressClassName: torii
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: web, port: {number: 80}}
--- # the marker may carry a comment
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{port: 80}]
--- {apiVersion: v1, kind: Service, metadata: {name: inline}}
...
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
---
apiVersion: v1
kind: Secret
metadata: {name: tls}
type: kubernetes.io/tls
data:
  tls.crt: Y2VydA==
  tls.key: a2V5
`
	m, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := []string{
		"IngressClass torii",
		"Ingress default/web",
		"Service default/inline",
		"Service shop/web",
		"EndpointSlice default/web-abc",
		"Secret default/tls",
	}
	if got := keys(&m.Objects); !slices.Equal(got, want) {
		t.Errorf("objects\n got %q\nwant %q", got, want)
	}
	if len(m.Ignored) != 0 {
		t.Errorf("Ignored = %q, want none", m.Ignored)
	}
	ing := m.Objects.Ingresses[0]
	if got := ing.Spec.Rules[0].Host; got != "web.example.com" {
		t.Errorf("ingress host = %q", got)
	}
	wantTS := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	if !ing.CreationTimestamp.Time.Equal(wantTS) {
		t.Errorf("creationTimestamp = %v, want it kept as written (%v)", ing.CreationTimestamp, wantTS)
	}
	if ts := m.Objects.Services[0].CreationTimestamp; !ts.IsZero() {
		t.Errorf("absent creationTimestamp = %v, want zero", ts)
	}
	if got := string(m.Objects.Secrets[0].Data["tls.crt"]); got != "cert" {
		t.Errorf("secret data = %q", got)
	}
	if got := m.Objects.EndpointSlices[0].Endpoints[0].Addresses; !slices.Equal(got, []string{"10.0.0.1"}) {
		t.Errorf("endpoint addresses = %q", got)
	}
}

func TestDecodeLists(t *testing.T) {
	const in = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: b, namespace: x}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: api, namespace: shop}
- apiVersion: v1
  kind: ServiceList
  items:
  - metadata: {name: a, namespace: x}
---
apiVersion: networking.k8s.io/v1
kind: IngressList
items:
- metadata: {name: i1}
  spec: {defaultBackend: {service: {name: a, port: {number: 80}}}}
`
	m, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := []string{"Ingress default/i1", "Service x/a", "Service x/b"}
	if got := keys(&m.Objects); !slices.Equal(got, want) {
		t.Errorf("objects\n got %q\nwant %q", got, want)
	}
	if got, want := ignoredStrings(m.Ignored), []string{"apps/v1 Deployment shop/api"}; !slices.Equal(got, want) {
		t.Errorf("Ignored = %q, want %q", got, want)
	}
}

func TestDecodeIgnoresOtherKinds(t *testing.T) {
	const in = `apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
---
apiVersion: example.com/v1alpha1
kind: Widget
metadata: {name: w}
spec: {anything: [goes, here]}
---
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: old}
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {namespace: shop}
`
	m, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	want := []Ignored{
		{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "api"},
		{APIVersion: "v1", Kind: "ConfigMap", Name: "settings"},
		{APIVersion: "example.com/v1alpha1", Kind: "Widget", Name: "w"},
		{APIVersion: "networking.k8s.io/v1beta1", Kind: "Ingress", Name: "old"},
		{APIVersion: "extensions/v1beta1", Kind: "Ingress", Namespace: "shop"},
	}
	if !slices.Equal(m.Ignored, want) {
		t.Errorf("Ignored\n got %+v\nwant %+v", m.Ignored, want)
	}
	wantStrings := []string{
		"apps/v1 Deployment shop/api",
		"v1 ConfigMap settings",
		"example.com/v1alpha1 Widget w",
		"networking.k8s.io/v1beta1 Ingress old",
		"extensions/v1beta1 Ingress shop/(unnamed)",
	}
	if got := ignoredStrings(m.Ignored); !slices.Equal(got, wantStrings) {
		t.Errorf("Ignored strings\n got %q\nwant %q", got, wantStrings)
	}
	if n := count(&m.Objects); n != 0 {
		t.Errorf("got %d objects, want none", n)
	}
}

func TestDecodeSecretStringData(t *testing.T) {
	const in = `apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
data:
  user: b2xk        # "old"
  keep: a2VlcA==    # "keep"
stringData:
  user: new
  extra: plain
`
	m, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	s := m.Objects.Secrets[0]
	want := map[string]string{"user": "new", "keep": "keep", "extra": "plain"}
	if len(s.Data) != len(want) {
		t.Errorf("data has %d keys, want %d", len(s.Data), len(want))
	}
	for k, v := range want {
		if got := string(s.Data[k]); got != v {
			t.Errorf("data[%s] = %q, want %q", k, got, v)
		}
	}
	if s.StringData != nil {
		t.Errorf("stringData = %v, want it merged away", s.StringData)
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("type = %q, want the API server default %q", s.Type, corev1.SecretTypeOpaque)
	}
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{
			name: "one object",
			in: `{
  "apiVersion": "v1",
  "kind": "Service",
  "metadata": {"name": "web"},
  "spec": {"ports": [{"port": 8080}]}
}`,
			want: []string{"Service default/web"},
		},
		{
			name: "stream with byte order mark",
			in: "\xef\xbb\xbf" + `{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}}
{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "c"}}`,
			want: []string{"IngressClass c", "Service default/a"},
		},
		{
			name: "list",
			in:   `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"}}]}`,
			want: []string{"Secret n/s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := keys(&m.Objects); !slices.Equal(got, tt.want) {
				t.Errorf("objects\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "# nothing\n", "---\n---\n", "---\n# c\n...\n", "null"} {
		m, err := Decode([]byte(in))
		if err != nil {
			t.Errorf("Decode(%q): %v", in, err)
			continue
		}
		if count(&m.Objects) != 0 || len(m.Ignored) != 0 {
			t.Errorf("Decode(%q) = %+v, want nothing", in, m)
		}
	}
}

func TestDecodeCRLF(t *testing.T) {
	in := strings.ReplaceAll("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\r\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n", "\n", "\r\n")
	m, err := Decode([]byte(in))
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got, want := keys(&m.Objects), []string{"Service default/a", "Service default/b"}; !slices.Equal(got, want) {
		t.Errorf("objects = %q, want %q", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	const good = "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n"
	tests := []struct {
		name string
		in   string
		want string // substring of the error
	}{
		{"bad YAML", good + "---\nkind: Service\n  bad: indent: here\n", "document 2 (from line 4): invalid YAML"},
		{"duplicate YAML key", "apiVersion: v1\nkind: Service\nkind: Secret\nmetadata: {name: a}\n", "invalid YAML"},
		{"bad JSON", `{"apiVersion": "v1", "kind": "Service",}`, "invalid JSON"},
		{"missing kind", good + "---\napiVersion: v1\nmetadata: {name: a}\n", "kind is missing"},
		{"missing apiVersion", "kind: Service\nmetadata: {name: a}\n", "apiVersion is missing"},
		{"generic list item without kind", "apiVersion: v1\nkind: List\nitems:\n- metadata: {name: a}\n", "List item 0: apiVersion is missing"},
		{"missing name", "apiVersion: v1\nkind: Service\nmetadata: {namespace: a}\n", "metadata.name is missing"},
		{"invalid name", "apiVersion: v1\nkind: Secret\nmetadata: {name: Not_Valid}\n", "invalid metadata.name"},
		{"invalid namespace", "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: a/b}\n", "invalid metadata.namespace"},
		{"wrong field type", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: eighty}]}\n", "decode v1 Service"},
		{"metadata not a mapping", "apiVersion: v1\nkind: Service\nmetadata: oops\n", "metadata"},
		{"scalar document", good + "---\njust a string\n", "document 2 (from line 4): not a Kubernetes object"},
		{"duplicate in file", good + "---\n" + good, "Service default/ok is defined more than once"},
		{"duplicate after defaulting", good + "---\napiVersion: v1\nkind: Service\nmetadata: {name: ok, namespace: default}\n", "more than once"},
		{"nested lists", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: v1\n    kind: List\n    items:\n    - apiVersion: v1\n      kind: List\n      items:\n      - apiVersion: v1\n        kind: List\n", "nested more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode succeeded with %d objects, want an error containing %q", count(&m.Objects), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if count(&m.Objects) != 0 || m.Ignored != nil {
				t.Errorf("a failed decode returned content: %+v", m)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems: []\n"))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"stringData":{"a":"b"}}`))
	f.Add([]byte("--- {a: 1}\n...\n---\n- x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			return
		}
		seen := make(map[string]bool)
		each(&m.Objects, func(o runtime.Object) {
			meta := o.(metav1.Object)
			k := keyOf(o).String()
			if meta.GetName() == "" || seen[k] {
				t.Errorf("bad or repeated object %q", k)
			}
			seen[k] = true
		})
	})
}
