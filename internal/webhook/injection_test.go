package webhook

import (
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/torii-dev/torii/internal/dataplane"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

// injection is a published ingress-nginx configuration-injection payload,
// replayed as an Ingress.
type injection struct {
	name string
	// annotations and path carry the payload; an empty path means "/".
	annotations map[string]string
	path        string
	pathType    string
	host        string
	// reason is the reason the webhook must deny with; empty means the
	// payload must be admitted and proven inert.
	reason string
	// requests are paths that must reach the backend exactly as sent;
	// notFound are paths nothing may answer but a 404.
	requests, notFound []string
}

// nginx prefixes an ingress-nginx annotation.
func nginx(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m["nginx.ingress.kubernetes.io/"+kv[i]] = kv[i+1]
	}
	return m
}

// injections replays the payloads of the ingress-nginx advisories
// (CVE-2021-25742 snippets, CVE-2021-25745 and CVE-2022-4886 path,
// CVE-2023-5043/5044 annotations, CVE-2025-1097, -1098 and -24514 of
// "IngressNightmare") and variants of them. In nginx each turned text of an
// object into configuration; here each is rejected with a reason or has no
// effect at all.
var injections = []injection{
	// Annotations: ingress-nginx's are not interpreted, so their values
	// cannot reach anything; the webhook warns that they are ignored, or,
	// for access control Torii cannot enforce yet, denies.
	{name: "CVE-2025-24514 auth-url", annotations: nginx("auth-url", "http://example.com/#;\n}\n}\nload_module /tmp/evil.so;\n#"),
		reason: "UnsupportedAccessControlAnnotation"},
	{name: "CVE-2025-1097 auth-tls-match-cn", annotations: nginx("auth-tls-secret", "shop/ca", "auth-tls-match-cn", "CN=abc #(\n){}\n }}\nssl_engine ../../../../../../proc/1/fd/10;\n#"),
		reason: "UnsupportedAccessControlAnnotation"},
	{name: "CVE-2025-1098 mirror-target", annotations: nginx("mirror-target", "https://x/#;\n}\n}\nlocation /evil { return 200 'evil'; }\n#", "mirror-host", "x\"; }\n"),
		requests: []string{"/", "/evil"}},
	{name: "CVE-2023-5044 permanent-redirect", annotations: nginx("permanent-redirect", "https://x;\n}\nlocation ~ /leak { alias /var/run/secrets/kubernetes.io/serviceaccount/; }\n#"),
		requests: []string{"/", "/leak/token"}},
	{name: "CVE-2021-25742 configuration-snippet", annotations: nginx("configuration-snippet", "more_set_headers \"X-Evil: 1\";\ncontent_by_lua_block { os.execute('id') }"),
		requests: []string{"/"}},
	{name: "server-snippet", annotations: nginx("server-snippet", "location /evil { return 200 'evil'; }"),
		requests: []string{"/evil"}},
	{name: "rewrite-target quote", annotations: nginx("rewrite-target", "/$1\";\n}\nlocation /evil { return 200 'evil'; }\n#", "use-regex", "true"),
		requests: []string{"/", "/evil", "/a/b"}},
	{name: "auth-snippet", annotations: nginx("auth-url", "http://auth/", "auth-snippet", "proxy_pass http://169.254.169.254/;"),
		reason: "UnsupportedAccessControlAnnotation"},
	{name: "satisfy", annotations: nginx("satisfy", "any\";\n}\n#"), reason: "UnsupportedAccessControlAnnotation"},
	{name: "source range", annotations: nginx("whitelist-source-range", "10.0.0.0/8;\nallow all;"), reason: "UnsupportedAccessControlAnnotation"},
	{name: "modsecurity", annotations: nginx("modsecurity-snippet", "SecRuleEngine Off"), reason: "UnsupportedAccessControlAnnotation"},
	// Rate limits protect capacity, not access: ignored with a warning,
	// like any other ingress-nginx annotation, and inert.
	{name: "rate limits", annotations: nginx("limit-rps", "10", "limit-rpm", "600", "limit-connections", "5;\n}\nlocation /evil { return 200 'evil'; }\n#"),
		requests: []string{"/", "/evil"}},

	// Torii's own annotations must be known: an unknown one denies.
	{name: "torii annotation", annotations: map[string]string{"torii.dev/rewrite-target": "/$1\";\n}\nlocation /evil {"}, reason: "UnknownAnnotation"},

	// Paths: anything outside the URL path characters is refused.
	{name: "CVE-2021-25745 path alias", path: "/x/ { alias /var/run/secrets/kubernetes.io/serviceaccount/; } location ~* ^/aaa", pathType: "ImplementationSpecific", reason: "InvalidPath"},
	{name: "CVE-2022-4886 path log_format", path: "/x;\n}\nlog_format evil '$http_authorization';\n#", pathType: "ImplementationSpecific", reason: "InvalidPath"},
	{name: "path newline", path: "/x\nlocation /evil {", pathType: "Prefix", reason: "InvalidPath"},
	{name: "path quote", path: "/x\" || true; \"", pathType: "Exact", reason: "InvalidPath"},
	{name: "path escaped quote", path: `/x\"`, pathType: "Prefix", reason: "InvalidPath"},
	{name: "path CRLF", path: "/x\r\nSet-Cookie: a=b", pathType: "Prefix", reason: "InvalidPath"},
	{name: "path brace", path: "/{{ .Values.evil }}", pathType: "Prefix", reason: "InvalidPath"},
	{name: "path NUL", path: "/x\x00y", pathType: "Prefix", reason: "InvalidPath"},
	{name: "path encoded NUL", path: "/x%00y", pathType: "Prefix", reason: "InvalidPath"},
	{name: "path traversal", path: "/../../etc/passwd", pathType: "Prefix", reason: "InvalidPath"},
	{name: "path encoded traversal", path: "/%2e%2e/secret", pathType: "Prefix", reason: "InvalidPath"},
	// Characters that are legal in a URL path are just that: the route
	// matches the literal path and nothing else.
	{name: "path semicolon directive", path: "/x;proxy_pass=http:evil", pathType: "Exact",
		requests: []string{"/x;proxy_pass=http:evil"}, notFound: []string{"/x", "/evil", "/x;proxy_pass=http:evil/more"}},
	{name: "path regex is literal", path: "/(.*)", pathType: "ImplementationSpecific", annotations: nginx("use-regex", "true"),
		requests: []string{"/(.*)", "/(.*)/x"}, notFound: []string{"/", "/anything"}},
	{name: "path dollar", path: "/$1$host", pathType: "Prefix",
		requests: []string{"/$1$host", "/$1$host/x"}, notFound: []string{"/", "/$1"}},

	// Hosts and backends.
	{name: "host newline", host: "shop.example\n}", reason: "InvalidHost"},
	{name: "host semicolon", host: "shop.example;", reason: "InvalidHost"},
}

func (in injection) ingress() *networkingv1.Ingress {
	path, pathType := cmpStr(in.path, "/"), cmpStr(in.pathType, "Prefix")
	ing := pathIngress("payload", path, pathType, "web")
	ing.Annotations = maps.Clone(in.annotations)
	if in.host != "" {
		ing.Spec.Rules[0].Host = in.host
	}
	return ing
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestInjectionPayloads replays each payload through the webhook. A denied
// payload must be denied for the expected reason. An admitted one must be
// inert: its snapshot is the snapshot of the same Ingress without the
// payload annotations, no fragment of the payload appears anywhere in it,
// and real requests through the data plane reach the backend unchanged,
// while nothing answers for a path the payload tried to add.
func TestInjectionPayloads(t *testing.T) {
	backendPort := echoPathBackend(t)
	objs := objects(t, `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: torii}
spec: {controller: torii.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
`)
	objs.EndpointSlices = append(objs.EndpointSlices, loopbackSlice(backendPort))
	h := newTestHandler(t, objs)

	for _, in := range injections {
		t.Run(in.name, func(t *testing.T) {
			ing := in.ingress()
			resp := decodeResponse(t, post(h, reviewBody(t, admissionv1.Create, ing, nil)))
			if in.reason != "" {
				if resp.Allowed {
					t.Fatalf("admitted; want a denial for %s", in.reason)
				}
				msg := resp.Result.Message
				if !strings.Contains(msg, in.reason+": ") {
					t.Fatalf("denied with %q, want reason %s", msg, in.reason)
				}
				checkLine(t, "denial", msg) // the payload's newlines are quoted
				return
			}
			if !resp.Allowed {
				t.Fatalf("denied: %s", resp.Result.Message)
			}
			if len(in.annotations) > 0 && (len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], "UnsupportedAnnotation: ")) {
				t.Errorf("warnings %q, want one saying the annotations are ignored", resp.Warnings)
			}
			proveInert(t, objs, in, ing)
		})
	}
}

// proveInert checks that an admitted payload changes nothing Torii serves.
func proveInert(t *testing.T, objs *store.Objects, in injection, ing *networkingv1.Ingress) {
	t.Helper()
	res := translate.Build(testConfig, WithIngress(objs, ing))
	plain := ing.DeepCopy()
	plain.Annotations = nil
	if want := translate.Build(testConfig, WithIngress(objs, plain)); !reflect.DeepEqual(res.Snapshot, want.Snapshot) {
		t.Fatal("the payload annotations changed the snapshot")
	}
	model, err := json.Marshal(res.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range in.annotations {
		for _, frag := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == ' ' }) {
			if len(frag) >= 6 && strings.Contains(string(model), frag) {
				t.Errorf("payload fragment %q reached the model", frag)
			}
		}
	}

	dp := dataplane.New(dataplane.Config{})
	t.Cleanup(dp.Close)
	if errs := dp.Apply(res.Snapshot); len(errs) > 0 {
		t.Fatal(errs)
	}
	srv := httptest.NewServer(dp.Handler())
	t.Cleanup(srv.Close)
	host := ing.Spec.Rules[0].Host
	for _, p := range in.requests {
		code, body := getPath(t, srv.URL, host, p)
		if code != http.StatusOK || body != "backend "+p {
			t.Errorf("GET %s: %d %q; want the backend to see %s unchanged", p, code, body, p)
		}
	}
	for _, p := range in.notFound {
		if code, body := getPath(t, srv.URL, host, p); code != http.StatusNotFound {
			t.Errorf("GET %s: %d %q; want 404", p, code, body)
		}
	}
}

// echoPathBackend answers "backend <path as received>".
func echoPathBackend(t *testing.T) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "backend "+r.URL.EscapedPath())
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// loopbackSlice is the EndpointSlice of Service shop/web: 127.0.0.1:port.
func loopbackSlice(port int) *discoveryv1.EndpointSlice {
	name, p, proto, ready := "http", int32(port), corev1.ProtocolTCP, true
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &p, Protocol: &proto}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
}

// getPath sends GET <path> with a Host header, the path as given (not
// re-encoded), and returns status and body.
func getPath(t *testing.T, base, host, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = path
	req.Host = host
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", strconv.Quote(path), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
