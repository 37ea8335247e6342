package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/torii-dev/torii/internal/source/dir"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
	"github.com/torii-dev/torii/internal/webhook"
)

// verdictCluster is what the cluster holds before each candidate arrives:
// Torii's class, Service shop/web, TLS-less Ingress shop/old (2024) serving
// shop.example/api, and shop/fallback holding the catch-all default backend.
var verdictCluster = checkClass + "---\n" + checkService + "---\n" +
	checkIngress("old", "2024-01-01T00:00:00Z", "/api", "Prefix", "web") + `---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: fallback, namespace: shop, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  ingressClassName: torii
  defaultBackend: {service: {name: web, port: {number: 80}}}
`

// candidate is an Ingress shop/<name>, newer than everything in
// verdictCluster (so that a create, judged as the newest, and `torii check`,
// which reads timestamps, see the same order), with a path on shop.example.
func candidate(name, path, pathType, service string, edit ...func(string) string) string {
	y := checkIngress(name, "2025-06-01T00:00:00Z", path, pathType, service)
	for _, e := range edit {
		y = e(y)
	}
	return y
}

func replace(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

func annotate(kv string) func(string) string {
	return replace("  namespace: shop\n", "  namespace: shop\n  annotations:\n    "+kv+"\n")
}

// verdictCases is the one table both `torii check` and the admission
// webhook are held to: for each candidate, the same verdict, the same
// denials and the same warnings.
var verdictCases = []struct {
	name      string
	candidate string
	allowed   bool
	// reasons must each appear in the webhook's answer (check prints no
	// reasons); messages must each appear in both.
	reasons, messages []string
}{
	{name: "valid", candidate: candidate("new", "/new", "Prefix", "web"), allowed: true},
	{name: "bad path for its type", candidate: candidate("new", "/a/../b", "Exact", "web"),
		reasons: []string{"InvalidPath"}, messages: []string{`spec.rules[0].http.paths[0].path "/a/../b": dot segment ".." is not allowed`}},
	{name: "relative path", candidate: candidate("new", "api", "Prefix", "web"), reasons: []string{"InvalidPath"}, messages: []string{`must start with '/'`}},
	{name: "no path type", candidate: candidate("new", "/x", "Prefix", "web", replace("            pathType: Prefix\n", "")),
		reasons: []string{"InvalidPathType"}, messages: []string{"spec.rules[0].http.paths[0].pathType: required"}},
	{name: "invalid host", candidate: candidate("new", "/x", "Prefix", "web", replace("host: shop.example", "host: Shop.Example")),
		reasons: []string{"InvalidHost"}, messages: []string{`spec.rules[0].host "Shop.Example": must be lower-case`}},
	{name: "resource backend", candidate: candidate("new", "/x", "Prefix", "web", replace(`              service:
                name: web
                port:
                  number: 80`, `              resource: {apiGroup: example.com, kind: Bucket, name: b}`)),
		reasons: []string{"UnsupportedBackend"}},
	{name: "unknown Torii annotation", candidate: candidate("new", "/x", "Prefix", "web", annotate(`torii.dev/ssl-redirect: "true"`)),
		reasons: []string{"UnknownAnnotation"}, messages: []string{`metadata.annotations["torii.dev/ssl-redirect"]: unknown Torii annotation`}},
	{name: "nginx annotation warns", candidate: candidate("new", "/x", "Prefix", "web", annotate(`nginx.ingress.kubernetes.io/rewrite-target: /`)),
		allowed: true, reasons: []string{"UnsupportedAnnotation"}, messages: []string{`ignored: "rewrite-target"`}},
	{name: "missing Service warns", candidate: candidate("new", "/x", "Prefix", "nope"),
		allowed: true, reasons: []string{"ServiceNotFound"}, messages: []string{"Service shop/nope not found"}},
	{name: "missing TLS Secret warns", candidate: candidate("new", "/x", "Prefix", "web", replace("  rules:\n", "  tls: [{secretName: shop-tls}]\n  rules:\n")),
		allowed: true, reasons: []string{"SecretNotFound"}, messages: []string{`spec.tls[0].secretName "shop-tls": Secret shop/shop-tls not found`}},
	{name: "host and path owned by an older Ingress", candidate: candidate("new", "/api", "Prefix", "web"),
		reasons: []string{"RuleConflict"}, messages: []string{`Prefix path "/api" on host "shop.example" is already served by Ingress shop/old`}},
	{name: "ImplementationSpecific against an older Prefix", candidate: candidate("new", "/api", "ImplementationSpecific", "web"),
		reasons: []string{"RuleConflict"}, messages: []string{"ImplementationSpecific and Prefix paths are matched alike"}},
	{name: "Exact next to an older Prefix", candidate: candidate("new", "/api", "Exact", "web"), allowed: true},
	{name: "catch-all held by an older Ingress", candidate: candidate("new", "/x", "Prefix", "web", replace("  rules:\n", "  defaultBackend: {service: {name: web, port: {number: 80}}}\n  rules:\n"), replace("host: shop.example", "host: \"\"")),
		reasons: []string{"DefaultBackendConflict"}, messages: []string{"already served by Ingress shop/fallback"}},
	{name: "denial and warning at once", candidate: candidate("new", "/a//b", "Prefix", "web", annotate(`nginx.ingress.kubernetes.io/ssl-redirect: "false"`)),
		reasons: []string{"InvalidPath", "UnsupportedAnnotation"}},
	{name: "another controller's Ingress", candidate: candidate("new", "/a/../b", "Exact", "nope", replace("ingressClassName: torii", "ingressClassName: nginx")), allowed: true},
}

// TestCheckAndWebhookAgree runs every case through `torii check` (the
// cluster's manifests plus the candidate in a directory) and through the
// admission webhook (a CREATE of the candidate against the cluster), and
// requires the same verdict, denials and warnings from both.
func TestCheckAndWebhookAgree(t *testing.T) {
	m, err := dir.Decode([]byte(verdictCluster))
	if err != nil {
		t.Fatal(err)
	}
	clusterObjs := &m.Objects
	h := webhook.NewHandler(webhook.Config{
		// The flag defaults `torii check` runs with.
		Translate: translate.Config{ControllerName: "torii.dev/ingress-controller", IngressClass: "torii"},
		View:      func() (*store.Objects, bool) { return clusterObjs, true },
	})

	for _, tt := range verdictCases {
		t.Run(tt.name, func(t *testing.T) {
			checked := runCheck(t, tt.candidate)
			hooked := runWebhook(t, h, tt.candidate)

			t.Logf("check: denials %q, warnings %q", checked.denials, checked.warnings)
			if checked.allowed != tt.allowed || hooked.allowed != tt.allowed {
				t.Fatalf("allowed: check %v, webhook %v, want %v\ncheck: %+v\nwebhook: %+v", checked.allowed, hooked.allowed, tt.allowed, checked, hooked)
			}
			if !slices.Equal(checked.denials, hooked.denials) {
				t.Errorf("denials differ\n  check   %q\n  webhook %q", checked.denials, hooked.denials)
			}
			if !slices.Equal(checked.warnings, hooked.warnings) {
				t.Errorf("warnings differ\n  check   %q\n  webhook %q", checked.warnings, hooked.warnings)
			}
			for _, r := range tt.reasons {
				if !strings.Contains(hooked.raw, r+": ") {
					t.Errorf("the webhook's answer lacks reason %s: %s", r, hooked.raw)
				}
			}
			all := strings.Join(append(append([]string(nil), checked.denials...), checked.warnings...), "\n")
			for _, msg := range tt.messages {
				if !strings.Contains(all, msg) {
					t.Errorf("check output lacks %q:\n%s", msg, all)
				}
			}
			if !tt.allowed && len(checked.denials) == 0 {
				t.Error("denied without a reason")
			}
		})
	}
}

// judged is one side's verdict on the candidate, as messages.
type judged struct {
	allowed           bool
	denials, warnings []string
	raw               string
}

// runCheck runs `torii check` on the cluster plus the candidate and keeps
// what it says about the candidate.
func runCheck(t *testing.T, cand string) judged {
	t.Helper()
	d := writeManifests(t, map[string]string{"cluster.yaml": verdictCluster, "candidate.yaml": cand})
	code, stdout, stderr := runCLI("check", d)
	if code != 0 && code != 1 {
		t.Fatalf("check: exit %d, stderr %s", code, stderr)
	}
	j := judged{allowed: code == 0, raw: stdout}
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		rest, ok := strings.CutPrefix(line, "Ingress shop/new: ")
		if !ok {
			if line != "" {
				t.Fatalf("check reported on another object: %q", line)
			}
			continue
		}
		if w, ok := strings.CutPrefix(rest, "warning: "); ok {
			j.warnings = append(j.warnings, w)
		} else {
			j.denials = append(j.denials, rest)
		}
	}
	return j
}

// reasonPrefix is the "<Reason>: " the webhook puts before each message.
var reasonPrefix = regexp.MustCompile(`^[A-Z][A-Za-z]*: `)

// runWebhook sends a CREATE of the candidate to the handler.
func runWebhook(t *testing.T, h http.Handler, cand string) judged {
	t.Helper()
	m, err := dir.Decode([]byte(cand))
	if err != nil || len(m.Objects.Ingresses) != 1 {
		t.Fatalf("candidate: %v", err)
	}
	obj, err := json.Marshal(m.Objects.Ingresses[0])
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "u",
			Kind:      metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"},
			Resource:  metav1.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"},
			Namespace: "shop", Name: "new", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: obj},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var review admissionv1.AdmissionReview
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &review) != nil || review.Response == nil {
		t.Fatalf("webhook: status %d, body %s", rec.Code, rec.Body.String())
	}
	r := review.Response
	j := judged{allowed: r.Allowed, raw: rec.Body.String()}
	for _, w := range r.Warnings {
		j.warnings = append(j.warnings, reasonPrefix.ReplaceAllString(w, ""))
	}
	if r.Result != nil {
		// "Ingress shop/new: <Reason>: <message>; <Reason>: <message>"
		rest, ok := strings.CutPrefix(r.Result.Message, "Ingress shop/new: ")
		if !ok {
			t.Fatalf("denial %q does not name the Ingress", r.Result.Message)
		}
		for rest != "" {
			loc := reasonPrefix.FindStringIndex(rest)
			if loc == nil {
				t.Fatalf("denial %q: no reason before %q", r.Result.Message, rest)
			}
			rest = rest[loc[1]:]
			// The message runs to the next "; <Reason>: " or the end.
			next := regexp.MustCompile(`; [A-Z][A-Za-z]*: `).FindStringIndex(rest)
			if next == nil {
				j.denials = append(j.denials, rest)
				break
			}
			j.denials = append(j.denials, rest[:next[0]])
			rest = rest[next[0]+2:]
		}
	}
	return j
}
