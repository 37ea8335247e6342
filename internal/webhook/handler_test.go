package webhook

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/torii-dev/torii/internal/source/dir"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

var testConfig = translate.Config{ControllerName: "torii.dev/ingress-controller", IngressClass: "torii"}

// baseObjects is a cluster with Torii's class, Service shop/web and an
// Ingress shop/old serving shop.example/api, created long ago.
const baseObjects = `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: torii}
spec: {controller: torii.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  ports: [{name: http, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: old, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: torii
  rules:
    - host: shop.example
      http:
        paths:
          - {path: /api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`

// objects decodes YAML manifests into a store view.
func objects(t testing.TB, yaml string) *store.Objects {
	t.Helper()
	m, err := dir.Decode([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return &m.Objects
}

// ingress decodes one Ingress.
func ingress(t testing.TB, yaml string) *networkingv1.Ingress {
	t.Helper()
	objs := objects(t, yaml)
	if len(objs.Ingresses) != 1 {
		t.Fatalf("want one Ingress in %s", yaml)
	}
	return objs.Ingresses[0]
}

// pathIngress is an Ingress shop/<name> of class torii on shop.example with
// one path.
func pathIngress(name, path, pathType, service string) *networkingv1.Ingress {
	class := "torii"
	pt := networkingv1.PathType(pathType)
	return &networkingv1.Ingress{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "Ingress"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: networkingv1.IngressSpec{
			IngressClassName: &class,
			Rules: []networkingv1.IngressRule{{Host: "shop.example", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
				Paths: []networkingv1.HTTPIngressPath{{Path: path, PathType: &pt, Backend: networkingv1.IngressBackend{
					Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Number: 80}},
				}}},
			}}}},
		},
	}
}

func staticView(objs *store.Objects) View {
	return func() (*store.Objects, bool) { return objs, true }
}

func newTestHandler(t testing.TB, objs *store.Objects) *Handler {
	t.Helper()
	return NewHandler(Config{Translate: testConfig, View: staticView(objs)})
}

// reviewBody encodes an AdmissionReview of obj (and old, for UPDATE).
func reviewBody(t testing.TB, op admissionv1.Operation, obj, old *networkingv1.Ingress) []byte {
	t.Helper()
	req := &admissionv1.AdmissionRequest{
		UID:       types.UID("uid-" + string(op)),
		Kind:      ingressKind,
		Resource:  ingressResource,
		Operation: op,
	}
	if obj != nil {
		req.Namespace, req.Name = obj.Namespace, obj.Name
		req.Object = runtime.RawExtension{Raw: mustJSON(t, obj)}
	}
	if old != nil {
		req.OldObject = runtime.RawExtension{Raw: mustJSON(t, old)}
	}
	return mustJSON(t, admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request:  req,
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body to h and returns the recorded response.
func post(h http.Handler, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// decodeResponse decodes a 200 answer into its AdmissionResponse.
func decodeResponse(t testing.TB, rec *httptest.ResponseRecorder) *admissionv1.AdmissionResponse {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, body %q; want 200", rec.Code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &review); err != nil {
		t.Fatalf("response: %v\n%s", err, rec.Body.String())
	}
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" || review.Response == nil {
		t.Fatalf("response is not an AdmissionReview with a response: %s", rec.Body.String())
	}
	return review.Response
}

func TestHandlerRefusesWhatIsNotAReview(t *testing.T) {
	h := newTestHandler(t, objects(t, baseObjects))
	valid := reviewBody(t, admissionv1.Create, pathIngress("new", "/new", "Prefix", "web"), nil)
	for _, tt := range []struct {
		name        string
		method      string
		contentType string
		body        io.Reader
		length      int64 // -1: unknown (chunked)
		want        int
		wantMsg     string
	}{
		{"GET", http.MethodGet, "application/json", nil, 0, http.StatusMethodNotAllowed, "POST"},
		{"PUT", http.MethodPut, "application/json", bytes.NewReader(valid), int64(len(valid)), http.StatusMethodNotAllowed, "POST"},
		{"no content type", http.MethodPost, "", bytes.NewReader(valid), int64(len(valid)), http.StatusUnsupportedMediaType, "application/json"},
		{"yaml", http.MethodPost, "application/yaml", bytes.NewReader(valid), int64(len(valid)), http.StatusUnsupportedMediaType, "application/json"},
		{"declared too big", http.MethodPost, "application/json", strings.NewReader("{}"), MaxBodyBytes + 1, http.StatusRequestEntityTooLarge, "limit"},
		{"chunked too big", http.MethodPost, "application/json", io.LimitReader(zeros{}, MaxBodyBytes+1), -1, http.StatusRequestEntityTooLarge, "limit"},
		{"not JSON", http.MethodPost, "application/json", strings.NewReader("apiVersion: v1"), 14, http.StatusBadRequest, "decoding the AdmissionReview"},
		{"truncated", http.MethodPost, "application/json", bytes.NewReader(valid[:len(valid)/2]), int64(len(valid) / 2), http.StatusBadRequest, "decoding"},
		{"v1beta1 review", http.MethodPost, "application/json", strings.NewReader(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), -1, http.StatusBadRequest, "admission.k8s.io/v1 AdmissionReview"},
		{"case-folded fields", http.MethodPost, "application/json", strings.NewReader(`{"APIVERSION":"admission.k8s.io/v1","Kind":"AdmissionReview","request":{"uid":"x"}}`), -1, http.StatusBadRequest, "admission.k8s.io/v1 AdmissionReview"},
		{"no request", http.MethodPost, "application/json", strings.NewReader(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), -1, http.StatusBadRequest, "no request"},
		{"no uid", http.MethodPost, "application/json", strings.NewReader(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`), -1, http.StatusBadRequest, "uid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, Path, tt.body)
			req.ContentLength = tt.length
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantMsg) {
				t.Errorf("status %d, body %q; want %d mentioning %q", rec.Code, rec.Body.String(), tt.want, tt.wantMsg)
			}
		})
	}
}

// zeros reads as endless '0' bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

func TestHandlerVerdicts(t *testing.T) {
	base := objects(t, baseObjects)
	withAnnotations := func(ing *networkingv1.Ingress, kv ...string) *networkingv1.Ingress {
		ing.Annotations = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			ing.Annotations[kv[i]] = kv[i+1]
		}
		return ing
	}
	foreign := pathIngress("theirs", "/a/../b", "Exact", "nope")
	other := "nginx"
	foreign.Spec.IngressClassName = &other
	tls := pathIngress("secure", "/secure", "Prefix", "web")
	tls.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"shop.example"}, SecretName: "missing-cert"}}

	for _, tt := range []struct {
		name      string
		obj       *networkingv1.Ingress
		allowed   bool
		denials   []string // substrings of the status message, in order
		warnings  []string // one substring per warning, in order
		wantCode  int32
		noWarning bool
	}{
		{name: "valid", obj: pathIngress("new", "/new", "Prefix", "web"), allowed: true, noWarning: true},
		{name: "dot segment", obj: pathIngress("bad", "/a/../b", "Exact", "web"), denials: []string{`Ingress shop/bad: InvalidPath: spec.rules[0].http.paths[0].path "/a/../b": dot segment ".." is not allowed`}, wantCode: 403},
		{name: "newline in path", obj: pathIngress("bad", "/x\n}", "Prefix", "web"), denials: []string{`InvalidPath: spec.rules[0].http.paths[0].path "/x\n}": character '\n' is not allowed`}},
		{name: "relative path", obj: pathIngress("bad", "api", "Prefix", "web"), denials: []string{`must start with '/'`}},
		{name: "bad path type", obj: pathIngress("bad", "/", "Regex", "web"), denials: []string{"InvalidPathType"}},
		{name: "invalid host", obj: func() *networkingv1.Ingress {
			ing := pathIngress("bad", "/", "Prefix", "web")
			ing.Spec.Rules[0].Host = "Shop.Example"
			return ing
		}(), denials: []string{`InvalidHost: spec.rules[0].host "Shop.Example": must be lower-case`}},
		{name: "all problems at once", obj: func() *networkingv1.Ingress {
			ing := pathIngress("bad", "/a//b", "Prefix", "web")
			ing.Spec.Rules[0].Host = "*"
			return ing
		}(), denials: []string{"InvalidHost", "InvalidPath"}},
		{name: "conflict with an older Ingress", obj: pathIngress("new", "/api", "Prefix", "web"),
			denials: []string{`RuleConflict: spec.rules[0].http.paths[0]: Prefix path "/api" on host "shop.example" is already served by Ingress shop/old`}},
		{name: "ImplementationSpecific conflicts with Prefix", obj: pathIngress("new", "/api", "ImplementationSpecific", "web"),
			denials: []string{"RuleConflict", "matched alike"}},
		{name: "Exact does not conflict with Prefix", obj: pathIngress("new", "/api", "Exact", "web"), allowed: true, noWarning: true},
		{name: "missing Service warns", obj: pathIngress("new", "/new", "Prefix", "nope"), allowed: true,
			warnings: []string{`ServiceNotFound: spec.rules[0].http.paths[0].backend.service.name "nope": Service shop/nope not found`}},
		{name: "missing TLS Secret warns", obj: tls, allowed: true, warnings: []string{`SecretNotFound: spec.tls[0].secretName "missing-cert": Secret shop/missing-cert not found`}},
		{name: "unknown Torii annotation", obj: withAnnotations(pathIngress("new", "/new", "Prefix", "web"), "torii.dev/rewrite-target", "/"),
			denials: []string{`UnknownAnnotation: metadata.annotations["torii.dev/rewrite-target"]: unknown Torii annotation`}},
		{name: "nginx annotations warn", obj: withAnnotations(pathIngress("new", "/new", "Prefix", "web"), "nginx.ingress.kubernetes.io/rewrite-target", "/$1", "nginx.ingress.kubernetes.io/ssl-redirect", "true"),
			allowed: true, warnings: []string{`UnsupportedAnnotation: metadata.annotations: nginx.ingress.kubernetes.io annotations are not supported yet and are ignored: "rewrite-target", "ssl-redirect"`}},
		{name: "denial carries warnings", obj: withAnnotations(pathIngress("new", "/a/../b", "Prefix", "nope"), "nginx.ingress.kubernetes.io/x", "y"),
			denials: []string{"InvalidPath"}, warnings: []string{"UnsupportedAnnotation"}},
		{name: "foreign class untouched", obj: foreign, allowed: true, noWarning: true},
		{name: "no class, not owned", obj: func() *networkingv1.Ingress {
			ing := pathIngress("plain", "/a/../b", "Exact", "web")
			ing.Spec.IngressClassName = nil
			return ing
		}(), allowed: true, noWarning: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler(t, base)
			resp := decodeResponse(t, post(h, reviewBody(t, admissionv1.Create, tt.obj, nil)))
			if resp.UID != "uid-CREATE" {
				t.Errorf("uid %q, want the request's", resp.UID)
			}
			if resp.Allowed != tt.allowed {
				t.Fatalf("allowed = %v, want %v; response %+v", resp.Allowed, tt.allowed, resp)
			}
			if !tt.allowed {
				if resp.Result == nil {
					t.Fatal("a denial without a status")
				}
				msg := resp.Result.Message
				if strings.ContainsAny(msg, "\n\r") {
					t.Errorf("multi-line message %q", msg)
				}
				rest := msg
				for _, d := range tt.denials {
					i := strings.Index(rest, d)
					if i < 0 {
						t.Fatalf("message %q lacks %q (in order)", msg, d)
					}
					rest = rest[i+len(d):]
				}
				if code := cmpOr(tt.wantCode, 403); resp.Result.Code != code {
					t.Errorf("code %d, want %d", resp.Result.Code, code)
				}
			}
			if tt.noWarning && len(resp.Warnings) > 0 {
				t.Errorf("warnings %q, want none", resp.Warnings)
			}
			if tt.warnings != nil {
				if len(resp.Warnings) != len(tt.warnings) {
					t.Fatalf("warnings %q, want %d", resp.Warnings, len(tt.warnings))
				}
				for i, w := range tt.warnings {
					if !strings.Contains(resp.Warnings[i], w) {
						t.Errorf("warning %d = %q, want it to contain %q", i, resp.Warnings[i], w)
					}
				}
			}
		})
	}
}

func cmpOr(a, b int32) int32 {
	if a != 0 {
		return a
	}
	return b
}

func TestHandlerCreateIsNewest(t *testing.T) {
	// The candidate claims to be older than shop/old: a create is judged
	// as the newest Ingress whatever its body says, so it still loses.
	cand := pathIngress("new", "/api", "Prefix", "web")
	cand.CreationTimestamp = metav1.NewTime(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	resp := decodeResponse(t, post(newTestHandler(t, objects(t, baseObjects)), reviewBody(t, admissionv1.Create, cand, nil)))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "RuleConflict") {
		t.Fatalf("create of a conflicting Ingress: %+v", resp)
	}
	// Same name, same namespace, as an update of the existing object with
	// its own timestamp: it keeps its route.
	again := pathIngress("old", "/api", "Prefix", "web")
	again.CreationTimestamp = metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	old := ingress(t, baseObjects[strings.LastIndex(baseObjects, "---"):])
	resp = decodeResponse(t, post(newTestHandler(t, objects(t, baseObjects)), reviewBody(t, admissionv1.Update, again, old)))
	if !resp.Allowed {
		t.Fatalf("update of the owner of the path: %+v", resp.Result)
	}
}

func TestHandlerUpdateTakingOverWarns(t *testing.T) {
	// shop/old (2024) gains /new, which the newer shop/young (2025) serves:
	// the oldest wins, so the update is allowed, and says who loses.
	objs := objects(t, baseObjects+`---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: young, namespace: shop, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  ingressClassName: torii
  rules:
    - host: shop.example
      http:
        paths:
          - {path: /new, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`)
	var old *networkingv1.Ingress
	for _, ing := range objs.Ingresses {
		if ing.Name == "old" {
			old = ing
		}
	}
	upd := old.DeepCopy()
	upd.Spec.Rules[0].HTTP.Paths = append(upd.Spec.Rules[0].HTTP.Paths, upd.Spec.Rules[0].HTTP.Paths[0])
	upd.Spec.Rules[0].HTTP.Paths[1].Path = "/new"
	resp := decodeResponse(t, post(newTestHandler(t, objs), reviewBody(t, admissionv1.Update, upd, old)))
	if !resp.Allowed {
		t.Fatalf("denied: %+v", resp.Result)
	}
	if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], "Ingress shop/young loses to this change: RuleConflict: ") {
		t.Errorf("warnings %q, want one naming shop/young", resp.Warnings)
	}
	// The loser in another namespace: denied.
	other := objects(t, baseObjects+`---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: young, namespace: elsewhere, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  ingressClassName: torii
  rules:
    - host: shop.example
      http:
        paths:
          - {path: /new, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`)
	resp = decodeResponse(t, post(newTestHandler(t, other), reviewBody(t, admissionv1.Update, upd, old)))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "CrossNamespaceTakeover: this update takes what Ingress elsewhere/young serves in another namespace (RuleConflict: ") {
		t.Errorf("cross-namespace takeover: allowed %v, %+v; want a denial naming elsewhere/young", resp.Allowed, resp.Result)
	}
	// An update that leaves the other namespace's path alone passes.
	relabel := old.DeepCopy()
	relabel.Labels = map[string]string{"team": "shop"}
	if resp = decodeResponse(t, post(newTestHandler(t, other), reviewBody(t, admissionv1.Update, relabel, old))); !resp.Allowed {
		t.Errorf("relabel: %+v", resp.Result)
	}

	// The same objects as a create of a new Ingress: it is the one that
	// loses, and is denied.
	fresh := upd.DeepCopy()
	fresh.Name, fresh.CreationTimestamp = "fresh", metav1.Time{}
	fresh.Spec.Rules[0].HTTP.Paths = fresh.Spec.Rules[0].HTTP.Paths[1:]
	resp = decodeResponse(t, post(newTestHandler(t, objs), reviewBody(t, admissionv1.Create, fresh, nil)))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "shop/young") {
		t.Errorf("create: %+v, want a denial naming shop/young", resp.Result)
	}
}

func TestHandlerUpdateDeniesOnlyNewProblems(t *testing.T) {
	// An Ingress stored before the webhook existed is invalid. Updates
	// that leave its problems as they are (a label, a finalizer, kubectl's
	// last-applied annotation, a Helm or Argo CD annotation, a new valid
	// path) go through, with the problems as warnings; an update that adds
	// a problem is denied, for that problem only.
	bad := pathIngress("bad", "/a/../b", "Exact", "web")
	objs := objects(t, baseObjects)
	objs.Ingresses = append(objs.Ingresses, bad)
	update := func(mutate func(*networkingv1.Ingress)) *admissionv1.AdmissionResponse {
		t.Helper()
		upd := bad.DeepCopy()
		mutate(upd)
		return decodeResponse(t, post(newTestHandler(t, objs), reviewBody(t, admissionv1.Update, upd, bad)))
	}
	for name, mutate := range map[string]func(*networkingv1.Ingress){
		"labels and finalizers": func(ing *networkingv1.Ingress) {
			ing.Labels = map[string]string{"team": "a"}
			ing.Finalizers = []string{"example.com/x"}
		},
		"kubectl last-applied": func(ing *networkingv1.Ingress) {
			ing.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": `{"kind":"Ingress"}`}
		},
		"helm and argo annotations": func(ing *networkingv1.Ingress) {
			ing.Annotations = map[string]string{"meta.helm.sh/release-name": "shop", "argocd.argoproj.io/tracking-id": "shop:networking.k8s.io/Ingress:shop/bad"}
		},
		"an unrelated valid path": func(ing *networkingv1.Ingress) {
			p := ing.Spec.Rules[0].HTTP.Paths[0]
			p.Path, p.PathType = "/ok", ptrTo(networkingv1.PathTypePrefix)
			ing.Spec.Rules[0].HTTP.Paths = append(ing.Spec.Rules[0].HTTP.Paths, p)
		},
	} {
		t.Run(name, func(t *testing.T) {
			resp := update(mutate)
			if !resp.Allowed || len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], "predates this update: InvalidPath: ") {
				t.Fatalf("allowed %v, warnings %q; want allowed with the old problem as a warning", resp.Allowed, resp.Warnings)
			}
		})
	}
	t.Run("a new problem", func(t *testing.T) {
		resp := update(func(ing *networkingv1.Ingress) {
			ing.Spec.Rules[0].HTTP.Paths[0].Path = "/c/../d"
		})
		if resp.Allowed || !strings.Contains(resp.Result.Message, `"/c/../d"`) || strings.Contains(resp.Result.Message, `"/a/../b"`) {
			t.Fatalf("allowed %v, %+v; want a denial for the new path only", resp.Allowed, resp.Result)
		}
	})
	t.Run("a new problem next to the old one", func(t *testing.T) {
		resp := update(func(ing *networkingv1.Ingress) {
			ing.Annotations = map[string]string{"torii.dev/rewrite-target": "/"}
		})
		if resp.Allowed || !strings.Contains(resp.Result.Message, "UnknownAnnotation") || strings.Contains(resp.Result.Message, "InvalidPath") {
			t.Fatalf("allowed %v, %+v; want a denial for the annotation only", resp.Allowed, resp.Result)
		}
		if len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], "predates this update: InvalidPath: ") {
			t.Errorf("warnings %q, want the old problem", resp.Warnings)
		}
	})
}

func ptrTo[T any](v T) *T { return &v }

func TestHandlerUpdateOfAConflictLoser(t *testing.T) {
	// shop/late lost /api to shop/old before the webhook existed; a label
	// or annotation update of it goes through.
	objs := objects(t, baseObjects)
	late := pathIngress("late", "/api", "Prefix", "web")
	late.CreationTimestamp = metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	objs.Ingresses = append(objs.Ingresses, late)
	upd := late.DeepCopy()
	upd.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}
	resp := decodeResponse(t, post(newTestHandler(t, objs), reviewBody(t, admissionv1.Update, upd, late)))
	if !resp.Allowed || len(resp.Warnings) != 1 || !strings.HasPrefix(resp.Warnings[0], "predates this update: RuleConflict: ") {
		t.Fatalf("allowed %v, warnings %q", resp.Allowed, resp.Warnings)
	}
}

func TestHandlerAllowsUntouched(t *testing.T) {
	bad := pathIngress("bad", "/a/../b", "Exact", "web")
	deleting := bad.DeepCopy()
	now := metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	deleting.DeletionTimestamp = &now

	t.Run("delete", func(t *testing.T) {
		resp := decodeResponse(t, post(newTestHandler(t, objects(t, baseObjects)), reviewBody(t, admissionv1.Delete, nil, bad)))
		if !resp.Allowed || resp.UID != "uid-DELETE" {
			t.Errorf("%+v", resp)
		}
	})
	t.Run("being deleted", func(t *testing.T) {
		resp := decodeResponse(t, post(newTestHandler(t, objects(t, baseObjects)), reviewBody(t, admissionv1.Update, deleting, bad)))
		if !resp.Allowed {
			t.Errorf("%+v", resp.Result)
		}
	})
	t.Run("unwatched namespace", func(t *testing.T) {
		h := NewHandler(Config{Translate: testConfig, View: staticView(objects(t, baseObjects)), Namespaces: []string{"team-a"}})
		resp := decodeResponse(t, post(h, reviewBody(t, admissionv1.Create, bad, nil)))
		if !resp.Allowed || len(resp.Warnings) > 0 {
			t.Errorf("%+v", resp)
		}
	})
}

func TestHandlerWrongKind(t *testing.T) {
	body := reviewBody(t, admissionv1.Create, pathIngress("new", "/new", "Prefix", "web"), nil)
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*admissionv1.AdmissionRequest){
		"service": func(r *admissionv1.AdmissionRequest) {
			r.Kind.Kind, r.Kind.Group, r.Resource.Resource = "Service", "", "services"
		},
		"v1beta1":       func(r *admissionv1.AdmissionRequest) { r.Kind.Version, r.Resource.Version = "v1beta1", "v1beta1" },
		"status":        func(r *admissionv1.AdmissionRequest) { r.SubResource = "status" },
		"object kind":   func(r *admissionv1.AdmissionRequest) { r.Object.Raw = []byte(`{"apiVersion":"v1","kind":"Service"}`) },
		"object broken": func(r *admissionv1.AdmissionRequest) { r.Object.Raw = []byte(`{"spec":{"rules":7}}`) },
		"no object":     func(r *admissionv1.AdmissionRequest) { r.Object.Raw = nil },
	} {
		t.Run(name, func(t *testing.T) {
			r := review
			req := *review.Request
			mutate(&req)
			r.Request = &req
			resp := decodeResponse(t, post(newTestHandler(t, objects(t, baseObjects)), mustJSON(t, r)))
			if resp.Allowed || resp.Result == nil || resp.Result.Code != 400 || resp.UID != req.UID {
				t.Fatalf("%+v", resp)
			}
			t.Log(resp.Result.Message)
		})
	}
}

func TestHandlerNotSynced(t *testing.T) {
	h := NewHandler(Config{Translate: testConfig, View: func() (*store.Objects, bool) { return &store.Objects{}, false }})
	rec := post(h, reviewBody(t, admissionv1.Create, pathIngress("new", "/new", "Prefix", "web"), nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "synced") {
		t.Errorf("status %d, body %q; want 503 (the failurePolicy decides)", rec.Code, rec.Body.String())
	}
}

func TestHandlerTimeoutAndConcurrency(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	slow := func() (*store.Objects, bool) {
		entered <- struct{}{}
		<-release
		return &store.Objects{}, true
	}
	h := NewHandler(Config{Translate: testConfig, View: slow, ReviewTimeout: 100 * time.Millisecond, MaxConcurrent: 1})
	body := reviewBody(t, admissionv1.Create, pathIngress("new", "/new", "Prefix", "web"), nil)
	rec := post(h, body)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "did not finish") {
		t.Fatalf("slow review: status %d, body %q; want 503", rec.Code, rec.Body.String())
	}
	// The overrunning review still holds the only slot.
	rec = post(h, body)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "too many") {
		t.Fatalf("second review: status %d, body %q; want 503 busy", rec.Code, rec.Body.String())
	}
	close(release)
	// Once it ends the slot is free again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rec = post(h, body); rec.Code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !decodeResponse(t, rec).Allowed {
		t.Error("not allowed after the slot freed")
	}
}

func TestHandlerBoundsTheResponse(t *testing.T) {
	t.Run("denials", func(t *testing.T) {
		// 200 invalid paths: at most maxListed problems are named, and
		// the message stays small.
		ing := pathIngress("huge", "/", "Prefix", "nope")
		paths := &ing.Spec.Rules[0].HTTP.Paths
		for i := range 200 {
			p := (*paths)[0]
			p.Path = "/x/../" + strings.Repeat("y", 1000) + string(rune('a'+i%26))
			*paths = append(*paths, p)
		}
		resp := decodeResponse(t, post(newTestHandler(t, objects(t, baseObjects)), reviewBody(t, admissionv1.Create, ing, nil)))
		if resp.Allowed {
			t.Fatal("allowed")
		}
		if n := strings.Count(resp.Result.Message, "InvalidPath"); n != maxListed {
			t.Errorf("message names %d problems, want %d", n, maxListed)
		}
		if !strings.HasSuffix(resp.Result.Message, "; and 180 more") {
			t.Errorf("message does not end with the count of the rest: ...%s", resp.Result.Message[len(resp.Result.Message)-40:])
		}
		if len(resp.Result.Message) > 8<<10 {
			t.Errorf("message of %d bytes", len(resp.Result.Message))
		}
	})

	t.Run("warnings", func(t *testing.T) {
		// shop/old takes 30 long hosts from 30 younger Ingresses (30 long
		// "loses to this change" warnings), routes 30 paths to missing
		// Services (30 warnings) and carries 300 ingress-nginx annotations
		// (one warning).
		const n = 30
		long := strings.Repeat("h", 55)
		var yaml strings.Builder
		yaml.WriteString(baseObjects)
		old := ingress(t, baseObjects[strings.LastIndex(baseObjects, "---"):])
		upd := old.DeepCopy()
		upd.Annotations = map[string]string{}
		for i := range 300 {
			upd.Annotations[fmt.Sprintf("nginx.ingress.kubernetes.io/annotation-%03d", i)] = "x"
		}
		for i := range n {
			host := fmt.Sprintf("%s%02d.example", long, i)
			fmt.Fprintf(&yaml, `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: young-%02d, namespace: shop, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  ingressClassName: torii
  rules:
    - host: %s
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
`, i, host)
			r := *upd.Spec.Rules[0].DeepCopy()
			r.Host = host
			r.HTTP.Paths[0].Path = "/"
			r.HTTP.Paths[0].Backend.Service.Name = fmt.Sprintf("missing-%02d", i)
			upd.Spec.Rules = append(upd.Spec.Rules, r)
		}
		objs := objects(t, yaml.String())
		resp := decodeResponse(t, post(newTestHandler(t, objs), reviewBody(t, admissionv1.Update, upd, old)))
		if !resp.Allowed {
			t.Fatalf("denied: %+v", resp.Result)
		}
		ws := resp.Warnings
		if len(ws) < 10 || len(ws) > maxListed+1 {
			t.Fatalf("%d warnings, want at most %d and a count of the rest: %q", len(ws), maxListed+1, ws)
		}
		if last := ws[len(ws)-1]; last != fmt.Sprintf("and %d more warnings", 2*n+1-(len(ws)-1)) {
			t.Errorf("last warning %q, want the count of the %d left out", last, 2*n+1-(len(ws)-1))
		}
		total, cut := 0, 0
		for _, w := range ws {
			total += len(w)
			if len(w) > maxWarningBytes || len(w) > 256 {
				t.Errorf("warning of %d bytes: %q", len(w), w)
			}
			if strings.HasSuffix(w, "...") {
				cut++
			}
		}
		if total >= 4096 || total > maxWarningsBytes {
			t.Errorf("warnings of %d bytes in all", total)
		}
		if cut == 0 || !strings.HasPrefix(ws[0], "Ingress shop/young-00 loses to this change: RuleConflict: ") {
			t.Errorf("want the long conflict warnings first, and cut: %q", ws)
		}
	})

	t.Run("bytes", func(t *testing.T) {
		// Many warnings of the longest length stop at the byte budget
		// before the count limit.
		var ws []string
		for range 40 {
			ws = append(ws, strings.Repeat("w", 1000))
		}
		got := boundWarnings(ws)
		total := 0
		for _, w := range got {
			total += len(w)
		}
		if total > maxWarningsBytes || len(got) > maxListed+1 || !strings.HasPrefix(got[len(got)-1], "and ") {
			t.Errorf("%d warnings, %d bytes: %q", len(got), total, got[len(got)-1])
		}
		if got := boundWarnings([]string{"a", "b"}); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("short list: %q", got)
		}
	})
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"tab\there":        `tab\u0009here`,
		"caf\u00e9":        `caf\u00e9`,
		"bad \xff byte":    `bad \ufffd byte`,
		`already "quoted"`: `already "quoted"`,
	} {
		if got := sanitizeOne(in); got != want {
			t.Errorf("sanitizeOne(%q) = %q, want %q", in, got, want)
		}
	}
	if got := boundWarnings([]string{"a\nb"}); !slices.Equal(got, []string{`a\u000ab`}) {
		t.Errorf("boundWarnings = %q", got)
	}
}

func TestNewHandlerRequiresAView(t *testing.T) {
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), "View is required") {
			t.Errorf("NewHandler without a View: panic %v, want one naming View", p)
		}
	}()
	NewHandler(Config{Translate: testConfig})
}

// TestHandlerRecoversFromPanic makes the view panic: the review is
// answered 500 with no detail, the panic is logged, and the slot and the
// body's bytes are given back.
func TestHandlerRecoversFromPanic(t *testing.T) {
	var logs bytes.Buffer
	h := NewHandler(Config{
		Translate:     testConfig,
		View:          func() (*store.Objects, bool) { panic("view exploded") },
		MaxConcurrent: 1,
		Logger:        slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	body := reviewBody(t, admissionv1.Create, pathIngress("new", "/new", "Prefix", "web"), nil)
	for range 3 { // the only slot comes back each time
		rec := post(h, body)
		if rec.Code != http.StatusInternalServerError || rec.Body.String() != "torii webhook: internal error\n" {
			t.Fatalf("status %d, body %q; want 500 internal error", rec.Code, rec.Body.String())
		}
	}
	waitFor(t, "the slot and the body's bytes back", func() bool { return len(h.slots) == 0 && h.bodies.used.Load() == 0 })
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "view exploded") {
		t.Errorf("log %q lacks the panic", logs.String())
	}
}

// syncWriter serializes writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHandlerSlowBodiesHoldNoSlot connects twice as many clients as there
// are slots, each sending its headers and one byte of its body, then
// nothing. A review sent whole meanwhile is answered at once; the slow
// ones are cut off by the body deadline (2 s), not the review's (4 s).
func TestHandlerSlowBodiesHoldNoSlot(t *testing.T) {
	h := newTestHandler(t, objects(t, baseObjects))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	const slow = 2 * DefaultMaxConcurrent
	conns := make([]net.Conn, slow)
	start := time.Now()
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
		if _, err := io.WriteString(c, "POST "+Path+" HTTP/1.1\r\nHost: torii\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
	}
	// Every slow client is in the handler, reading its body.
	waitFor(t, "the slow clients to be read", func() bool { return h.bodies.used.Load() == slow*1001 })

	body := reviewBody(t, admissionv1.Create, pathIngress("new", "/new", "Prefix", "web"), nil)
	began := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Post(srv.URL+Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	review := decodeHTTPReview(t, resp)
	// Queued behind the slow ones, it would be answered only once the body
	// deadline had cut them off, bodyTimeout after they began.
	if took := time.Since(began); time.Since(start) >= bodyTimeout || !review.Response.Allowed {
		t.Fatalf("a whole review next to %d slow ones took %v (allowed %v); want an answer before the slow ones are cut off", slow, took, review.Response.Allowed)
	}

	// The slow clients get 408 from the body deadline.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("slow client %d: status %d, want 408", i, resp.StatusCode)
		}
	}
	if took := time.Since(start); took < bodyTimeout || took > DefaultReviewTimeout {
		t.Errorf("the slow clients were answered after %v, want the body deadline (%v)", took, bodyTimeout)
	}
	if n := h.bodies.used.Load(); n != 0 {
		t.Errorf("%d bytes still held", n)
	}
}

// TestHandlerBodyBudget answers 503 when the bodies held would exceed the
// budget, and gives every byte back.
func TestHandlerBodyBudget(t *testing.T) {
	h := newTestHandler(t, objects(t, baseObjects))
	body := reviewBody(t, admissionv1.Create, pathIngress("new", "/new", "Prefix", "web"), nil)
	if want := int64(DefaultMaxConcurrent) * (MaxBodyBytes + bodyChunk); h.bodies.limit != want {
		t.Errorf("budget %d, want %d", h.bodies.limit, want)
	}
	h.bodies.limit = int64(len(body)) // one byte short: a body is held with room for its end
	rec := post(h, body)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "too many request bodies in flight") {
		t.Fatalf("status %d, body %q; want 503", rec.Code, rec.Body.String())
	}
	h.bodies.limit++
	if !decodeResponse(t, post(h, body)).Allowed {
		t.Error("not allowed within the budget")
	}
	// Unknown length: read in growing chunks, each taken from the budget.
	h.bodies.limit = bodyChunk
	req := httptest.NewRequest(http.MethodPost, Path, io.MultiReader(bytes.NewReader(body), strings.NewReader(strings.Repeat(" ", bodyChunk))))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a chunked body over the budget: status %d, want 503", rec.Code)
	}
	waitFor(t, "every byte back", func() bool { return h.bodies.used.Load() == 0 })
}
