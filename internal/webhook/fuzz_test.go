package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime/metrics"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Bounds FuzzAdmissionReview holds every answer to.
const (
	// maxResponseBytes bounds an encoded answer: at most maxListed
	// problems plus as many warnings, each quoting at most 128 bytes of a
	// user value.
	maxResponseBytes = 96 << 10
	// allocBase and allocPerByte bound the bytes one review allocates.
	allocBase    = 16 << 20
	allocPerByte = 1024
)

// FuzzAdmissionReview sends arbitrary bytes to the handler, as the body of
// a POST /validate/ingress, and checks that it never panics, always answers
// with a known status, answers a review it accepts with a well-formed
// AdmissionReview of the same uid, keeps every message on one printable
// line, and allocates memory in proportion to the input. The seed corpus is
// testdata/fuzz/FuzzAdmissionReview plus the reviews below.
func FuzzAdmissionReview(f *testing.F) {
	base := objects(f, baseObjects)
	tls := pathIngress("secure", "/s", "Prefix", "web")
	tls.Spec.TLS = []networkingv1.IngressTLS{{SecretName: "nope"}}
	for _, body := range [][]byte{
		reviewBody(f, admissionv1.Create, pathIngress("new", "/new", "Prefix", "web"), nil),
		reviewBody(f, admissionv1.Create, pathIngress("bad", "/a/../b", "Exact", "nope"), nil),
		reviewBody(f, admissionv1.Create, pathIngress("new", "/api", "ImplementationSpecific", "web"), nil),
		reviewBody(f, admissionv1.Update, pathIngress("old", "/api", "Prefix", "web"), base.Ingresses[0]),
		reviewBody(f, admissionv1.Create, tls, nil),
		reviewBody(f, admissionv1.Delete, nil, base.Ingresses[0]),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"group":"networking.k8s.io","version":"v1","kind":"Ingress"},"resource":{"group":"networking.k8s.io","version":"v1","resource":"ingresses"},"operation":"CREATE","object":{"metadata":{"name":"x","namespace":"shop","annotations":{"torii.dev/x":"y","nginx.ingress.kubernetes.io/auth-url":"http://a/#;\n}"}},"spec":{"ingressClassName":"torii","defaultBackend":{"service":{"name":"web","port":{"name":"http"}}}}}}}`),
		[]byte(`{}`),
		[]byte(`[`),
	} {
		f.Add(body)
	}

	h := newTestHandler(f, base)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := allocated()
		resp, herr := h.answer(body)
		used := allocated() - before
		if limit := uint64(allocBase + allocPerByte*len(body)); used > limit {
			t.Fatalf("a review of %d bytes allocated %d bytes (limit %d)", len(body), used, limit)
		}
		if herr != nil {
			switch herr.code {
			case http.StatusBadRequest, http.StatusServiceUnavailable:
			default:
				t.Fatalf("unexpected status %d: %s", herr.code, herr.msg)
			}
			checkLine(t, "error", herr.msg)
		} else {
			checkReview(t, body, resp)
		}

		// The same bytes through the HTTP layer.
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			checkReview(t, body, rec.Body.Bytes())
		case http.StatusBadRequest, http.StatusServiceUnavailable:
		default:
			t.Fatalf("HTTP status %d: %s", rec.Code, rec.Body.String())
		}
	})
}

// checkReview checks an encoded answer to the review in body.
func checkReview(t *testing.T, body, resp []byte) {
	t.Helper()
	if len(resp) > maxResponseBytes {
		t.Fatalf("answer of %d bytes", len(resp))
	}
	var in, out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &in); err != nil {
		// The handler decodes case-sensitively, encoding/json does not:
		// only a review both accept has a uid to compare.
		in.Request = nil
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		t.Fatalf("answer does not decode: %v", err)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil || out.Request != nil {
		t.Fatalf("malformed answer %s", resp)
	}
	r := out.Response
	if in.Request != nil && r.UID != in.Request.UID {
		t.Fatalf("answer uid %q, request uid %q", r.UID, in.Request.UID)
	}
	if r.Allowed != (r.Result == nil) {
		t.Fatalf("allowed %v with result %+v", r.Allowed, r.Result)
	}
	if r.Result != nil {
		checkLine(t, "denial", r.Result.Message)
		if r.Result.Code != http.StatusForbidden && r.Result.Code != http.StatusBadRequest {
			t.Fatalf("denial code %d", r.Result.Code)
		}
	}
	if len(r.Warnings) > maxListed+1 {
		t.Fatalf("%d warnings", len(r.Warnings))
	}
	for _, w := range r.Warnings {
		checkLine(t, "warning", w)
	}
}

// checkLine fails unless s is one non-empty line of printable ASCII.
func checkLine(t *testing.T, what, s string) {
	t.Helper()
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
		t.Fatalf("%s is not one line of printable ASCII: %q", what, s)
	}
}

// allocated returns the bytes allocated on the heap so far.
func allocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
