package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/translate"
)

// Path is where the webhook serves Ingress reviews.
const Path = "/validate/ingress"

// MaxBodyBytes bounds an AdmissionReview request body; a larger one is
// answered 413 without being read. The API server accepts requests of up to
// 3 MiB, and a review of an update carries the object twice, plus its
// envelope.
const MaxBodyBytes = 9 << 20

const (
	// DefaultReviewTimeout bounds one review, from the moment its headers
	// are read to the answer. It is below the 5 s timeout of the
	// ValidatingWebhookConfiguration, so the API server hears why a review
	// gave up.
	DefaultReviewTimeout = 4 * time.Second
	// DefaultMaxConcurrent bounds the reviews being judged.
	DefaultMaxConcurrent = 4
	// bodyTimeout bounds reading the request body, from the moment the
	// headers are read (or the review timeout, if shorter). The API server
	// sends a review in one write; a client that trickles its body is cut
	// off here, and never holds a judging slot.
	bodyTimeout = 2 * time.Second
	// bodyChunk is the first buffer for a body of unknown or large size;
	// buffers double from there as bytes arrive.
	bodyChunk = 64 << 10
	// maxListed bounds how many problems one response names; each message
	// already quotes at most 128 bytes of any user value.
	maxListed = 20
	// maxWarningBytes bounds one warning (the API server shortens warnings
	// over 256 characters when a response carries many), and
	// maxWarningsBytes all warnings of a response together, the closing
	// "and N more warnings" included (the API server drops warnings past
	// 4 KiB in total).
	maxWarningBytes  = 200
	maxWarningsBytes = 4000
	// moreReserve is room kept for the "and N more warnings" line.
	moreReserve = 32
)

// View returns the objects to judge a candidate against, and whether they
// are complete (the source has synced). Callers must not modify them.
type View func() (objs *store.Objects, synced bool)

// Config configures a Handler.
type Config struct {
	// Translate is the controller's translate configuration: ownership is
	// decided exactly as the controller decides it.
	Translate translate.Config
	// View is the current store view, normally the informer caches.
	// Required.
	View View
	// Partition, when set, narrows the view to the objects served with the
	// candidate (dedicated mode); see Partition.
	Partition Partition
	// Namespaces are the namespaces the controller watches; an Ingress
	// elsewhere is allowed untouched. Empty means all.
	Namespaces []string
	// ReviewTimeout bounds one review; zero means DefaultReviewTimeout. A
	// review that runs out of time is answered 503, and the webhook's
	// failurePolicy decides.
	ReviewTimeout time.Duration
	// MaxConcurrent bounds the reviews being judged; zero means
	// DefaultMaxConcurrent. Request bodies being read or judged hold at
	// most MaxConcurrent times MaxBodyBytes (and a chunk) in total; a
	// request over that budget is answered 503.
	MaxConcurrent int
	Logger        *slog.Logger
}

// Handler serves POST Path: admission.k8s.io/v1 AdmissionReviews of
// networking.k8s.io/v1 Ingresses. It judges the candidate with Review over
// the current view and answers; it keeps no state between requests beyond
// its bounds on concurrency and memory, and it has no side effects.
type Handler struct {
	cfg        Config
	log        *slog.Logger
	namespaces map[string]bool
	// slots bounds the reviews being decoded and judged.
	slots chan struct{}
	// bodies bounds the bytes of request bodies held, being read or judged.
	bodies *budget
	// bodyTimeout bounds reading a body; tests shorten it.
	bodyTimeout time.Duration
}

// NewHandler creates a Handler. It panics if cfg.View is nil: a handler
// without a view could only answer 503, and that is a programming error.
func NewHandler(cfg Config) *Handler {
	if cfg.View == nil {
		panic("webhook.NewHandler: Config.View is required")
	}
	if cfg.ReviewTimeout <= 0 {
		cfg.ReviewTimeout = DefaultReviewTimeout
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		cfg: cfg, log: log,
		slots:       make(chan struct{}, cfg.MaxConcurrent),
		bodies:      &budget{limit: int64(cfg.MaxConcurrent) * (MaxBodyBytes + bodyChunk)},
		bodyTimeout: bodyTimeout,
	}
	if len(cfg.Namespaces) > 0 {
		h.namespaces = make(map[string]bool, len(cfg.Namespaces))
		for _, ns := range cfg.Namespaces {
			h.namespaces[ns] = true
		}
	}
	return h
}

// budget counts bytes held against a limit. It never blocks: a take over
// the limit fails.
type budget struct {
	limit int64
	used  atomic.Int64
}

func (b *budget) take(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *budget) give(n int64) { b.used.Add(-n) }

// httpError is a failure answered with a plain-text status instead of an
// AdmissionReview: the request was not a review this webhook can answer, or
// the webhook cannot decide now. The API server then applies the
// webhook's failurePolicy.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func fail(code int, format string, args ...any) *httpError {
	return &httpError{code: code, msg: sanitizeOne(fmt.Sprintf(format, args...))}
}

// ServeHTTP implements http.Handler. A review goes through two bounded
// stages: reading the body (its own deadline, and a byte budget shared by
// all bodies held), then decoding and judging it (one of MaxConcurrent
// slots, until the review's deadline). A client sending its body slowly
// therefore holds only the bytes it sent, for at most the body deadline,
// and never delays the reviews that arrived whole.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.writeError(w, fail(http.StatusMethodNotAllowed, "method %s not allowed: POST an admission.k8s.io/v1 AdmissionReview", r.Method))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.writeError(w, fail(http.StatusUnsupportedMediaType, "Content-Type %s not supported: send application/json", quote(r.Header.Get("Content-Type"))))
		return
	}
	if r.ContentLength > MaxBodyBytes {
		h.writeError(w, fail(http.StatusRequestEntityTooLarge, "request body of %d bytes is over the limit of %d", r.ContentLength, MaxBodyBytes))
		return
	}

	ctx, cancel := context.WithDeadline(r.Context(), start.Add(h.cfg.ReviewTimeout))
	defer cancel()

	// Stage 1: the body. The read deadline applies where the connection
	// supports it (the server's ReadTimeout bounds the rest); it is lifted
	// once the body is in, so that the connection's background read cannot
	// cancel the review while it is judged.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(start.Add(min(h.bodyTimeout, h.cfg.ReviewTimeout)))
	body, held, herr := h.readBody(w, r)
	if herr != nil {
		h.writeError(w, herr)
		return
	}
	_ = rc.SetReadDeadline(time.Time{})
	releaseBody := func() { h.bodies.give(held) }

	// Stage 2: decoding and judging, in one of the slots.
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		releaseBody()
		h.writeError(w, fail(http.StatusServiceUnavailable, "too many reviews in progress"))
		return
	}
	// They run on their own goroutine so that the answer keeps to the
	// deadline whatever the input. Both are bounded by the body size; the
	// slot and the body's bytes stay taken until the work ends, so work
	// that overruns can never pile up. A panic (a bug in the translator,
	// or in a view) is answered 500 and logged; it never takes the process
	// down.
	type result struct {
		resp []byte
		err  *httpError
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			<-h.slots
			releaseBody()
		}()
		defer func() {
			if p := recover(); p != nil {
				h.log.Error("admission review panicked; answered 500", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				done <- result{err: &httpError{code: http.StatusInternalServerError, msg: "internal error"}}
			}
		}()
		resp, err := h.answer(body)
		done <- result{resp, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			h.writeError(w, res.err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(res.resp)
	case <-ctx.Done():
		h.writeError(w, fail(http.StatusServiceUnavailable, "the review did not finish within %v", h.cfg.ReviewTimeout))
	}
}

// readBody reads the request body, of at most MaxBodyBytes, into a buffer
// that grows (doubling) as bytes arrive, and takes each growth from the
// body budget first. It returns the body and the bytes it holds in the
// budget, to give back once the body is no longer used.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int64, *httpError) {
	busy := func() *httpError {
		return fail(http.StatusServiceUnavailable, "too many request bodies in flight")
	}
	size := int64(bodyChunk)
	if r.ContentLength >= 0 && r.ContentLength < size {
		size = r.ContentLength + 1 // room to see the end without growing
	}
	if !h.bodies.take(size) {
		return nil, 0, busy()
	}
	held := size
	buf := make([]byte, 0, size)
	src := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	for {
		if len(buf) == cap(buf) {
			grow := min(int64(cap(buf)), MaxBodyBytes+1-int64(cap(buf)))
			if grow <= 0 || !h.bodies.take(grow) {
				h.bodies.give(held)
				if grow <= 0 {
					return nil, 0, fail(http.StatusRequestEntityTooLarge, "request body is over the limit of %d bytes", MaxBodyBytes)
				}
				return nil, 0, busy()
			}
			held += grow
			next := make([]byte, len(buf), int64(cap(buf))+grow)
			copy(next, buf)
			buf = next
		}
		n, err := src.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, held, nil
		}
		if err != nil {
			h.bodies.give(held)
			var tooBig *http.MaxBytesError
			var netErr net.Error
			switch {
			case errors.As(err, &tooBig):
				return nil, 0, fail(http.StatusRequestEntityTooLarge, "request body is over the limit of %d bytes", MaxBodyBytes)
			case errors.As(err, &netErr) && netErr.Timeout():
				return nil, 0, fail(http.StatusRequestTimeout, "the request body did not arrive within %v", min(h.bodyTimeout, h.cfg.ReviewTimeout))
			}
			return nil, 0, fail(http.StatusBadRequest, "reading the request body: %v", err)
		}
	}
}

func (h *Handler) writeError(w http.ResponseWriter, e *httpError) {
	h.log.Debug("admission request refused", "status", e.code, "error", e.msg)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.code)
	_, _ = io.WriteString(w, "torii webhook: "+e.msg+"\n")
}

// answer answers one encoded AdmissionReview with the encoded response, or
// with an error to answer as an HTTP status.
func (h *Handler) answer(body []byte) ([]byte, *httpError) {
	var review admissionv1.AdmissionReview
	// Case-sensitive, as the API server decodes: "Path" is not "path".
	if err := utiljson.Unmarshal(body, &review); err != nil {
		return nil, fail(http.StatusBadRequest, "decoding the AdmissionReview: %s", quote(err.Error()))
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" {
		return nil, fail(http.StatusBadRequest, "expected an admission.k8s.io/v1 AdmissionReview, got apiVersion %s kind %s",
			quote(review.APIVersion), quote(review.Kind))
	}
	req := review.Request
	if req == nil || req.UID == "" {
		return nil, fail(http.StatusBadRequest, "the AdmissionReview has no request, or its request no uid")
	}
	resp, herr := h.decide(req)
	if herr != nil {
		return nil, herr
	}
	resp.UID = req.UID
	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	if err != nil {
		return nil, fail(http.StatusInternalServerError, "encoding the response: %v", err)
	}
	return out, nil
}

// ingressKind and ingressResource are what the webhook configuration must
// send (with matchPolicy Equivalent the API server converts to them).
var (
	ingressKind     = metav1.GroupVersionKind{Group: "networking.k8s.io", Version: "v1", Kind: "Ingress"}
	ingressResource = metav1.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}
)

// decide judges one request.
func (h *Handler) decide(req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, *httpError) {
	if req.Kind != ingressKind || req.Resource != ingressResource || req.SubResource != "" {
		// A misconfigured webhook: say so to whoever made the request.
		return deny(http.StatusBadRequest, fmt.Sprintf("torii validates networking.k8s.io/v1 ingresses only; the webhook configuration sent kind %s, resource %s%s",
			quote(groupVersion(req.Kind.Group, req.Kind.Version)+" "+req.Kind.Kind),
			quote(groupVersion(req.Resource.Group, req.Resource.Version)+" "+req.Resource.Resource), subresource(req.SubResource))), nil
	}
	switch req.Operation {
	case admissionv1.Create, admissionv1.Update:
	default:
		return allow(), nil // nothing to validate on DELETE or CONNECT
	}
	cand, err := decodeIngress(req.Object.Raw)
	if err != nil {
		return deny(http.StatusBadRequest, "request.object: "+err.Error()), nil
	}
	defaultName(cand, req)
	if h.namespaces != nil && !h.namespaces[cand.Namespace] {
		return allow(), nil // a namespace this controller does not watch
	}
	if cand.DeletionTimestamp != nil {
		return allow(), nil // going away: never block finalizers
	}
	objs, synced := h.cfg.View()
	if !synced {
		return nil, fail(http.StatusServiceUnavailable, "Torii has not synced its caches with the API server yet")
	}

	var old *networkingv1.Ingress
	if req.Operation == admissionv1.Create {
		// Not stored yet: it is the newest Ingress, and loses every
		// conflict with one that exists.
		makeNewest(cand, objs)
	} else if len(req.OldObject.Raw) > 0 {
		if old, err = decodeIngress(req.OldObject.Raw); err != nil {
			old = nil
		} else {
			defaultName(old, req)
		}
	}

	v, res := Review(h.cfg.Translate, objs, cand, h.cfg.Partition)
	if !v.Owned {
		return allow(), nil // another controller's Ingress
	}
	var warnings []string
	if old != nil {
		var more []string
		v, more = h.judgeUpdate(objs, old, v, res)
		warnings = append(warnings, more...)
	}
	for _, p := range v.Warnings {
		warnings = append(warnings, problemText(p))
	}
	warnings = boundWarnings(warnings)

	if !v.Allowed() {
		h.log.Info("admission denied", "ingress", v.Ref.Namespace+"/"+v.Ref.Name, "operation", req.Operation, "problems", len(v.Denials))
		resp := deny(http.StatusForbidden, denialMessage(v))
		resp.Warnings = warnings
		return resp, nil
	}
	h.log.Debug("admission allowed", "ingress", v.Ref.Namespace+"/"+v.Ref.Name, "operation", req.Operation, "warnings", len(warnings))
	resp := allow()
	resp.Warnings = warnings
	return resp, nil
}

// reasonCrossNamespaceTakeover denies an update that makes an Ingress of
// another namespace lose a host, path or default backend.
const reasonCrossNamespaceTakeover = "CrossNamespaceTakeover"

// judgeUpdate compares the verdict v on an update (res is its Build) with
// a Build of the object before it (old), over the same view:
//
//   - a denial the old object already had is not the update's doing, and
//     becomes a warning: a label, a finalizer, kubectl's last-applied
//     annotation or a Helm or Argo CD annotation written on an Ingress
//     stored before the webhook (or before a rule changed) must go
//     through. Only problems the update introduces deny it.
//   - an Ingress that loses a conflict it did not lose before loses it to
//     this update (an older Ingress taking a path from a newer one: the
//     oldest wins). Within the namespace that is allowed with a warning
//     naming the loser; an Ingress of another namespace losing denies the
//     update, since namespaces are usually different owners.
//
// It returns the adjusted verdict and the warnings to put first.
func (h *Handler) judgeUpdate(objs *store.Objects, old *networkingv1.Ingress, v Verdict, res translate.Result) (Verdict, []string) {
	_, before := Review(h.cfg.Translate, objs, old, h.cfg.Partition)
	type key struct {
		obj             model.ObjectRef
		reason, message string
	}
	had := make(map[key]bool, len(before.Problems))
	for _, p := range before.Problems {
		had[key{p.Object, p.Reason, p.Message}] = true
	}
	var warnings []string
	fresh := v.Denials[:0:0]
	for _, p := range v.Denials {
		if had[key{p.Object, p.Reason, p.Message}] {
			warnings = append(warnings, "predates this update: "+problemText(p))
			continue
		}
		fresh = append(fresh, p)
	}
	v.Denials = fresh
	for _, p := range res.Problems {
		if p.Object == v.Ref || !denies(p) || had[key{p.Object, p.Reason, p.Message}] {
			continue
		}
		loser := p.Object.Kind + " " + p.Object.Namespace + "/" + p.Object.Name
		if p.Object.Namespace != v.Ref.Namespace {
			v.Denials = append(v.Denials, translate.Problem{
				Object: v.Ref, Severity: translate.SeverityError, Reason: reasonCrossNamespaceTakeover,
				Message: fmt.Sprintf("this update takes what %s serves in another namespace (%s); an update may take over only from its own namespace", loser, problemText(p)),
			})
			continue
		}
		warnings = append(warnings, loser+" loses to this change: "+problemText(p))
	}
	return v, warnings
}

// defaultName fills in the namespace and name of an object from the
// request, as the API server does for a create with generateName.
func defaultName(ing *networkingv1.Ingress, req *admissionv1.AdmissionRequest) {
	if ing.Namespace == "" {
		ing.Namespace = req.Namespace
	}
	if ing.Name == "" {
		ing.Name = req.Name
	}
}

// decodeIngress decodes an Ingress as the API server sent it.
func decodeIngress(raw []byte) (*networkingv1.Ingress, error) {
	if len(raw) == 0 {
		return nil, errors.New("missing")
	}
	ing := &networkingv1.Ingress{}
	if err := utiljson.Unmarshal(raw, ing); err != nil {
		return nil, fmt.Errorf("not an Ingress: %s", quote(err.Error()))
	}
	if (ing.APIVersion != "" || ing.Kind != "") && (ing.APIVersion != "networking.k8s.io/v1" || ing.Kind != "Ingress") {
		return nil, fmt.Errorf("expected a networking.k8s.io/v1 Ingress, got apiVersion %s kind %s", quote(ing.APIVersion), quote(ing.Kind))
	}
	return ing, nil
}

// makeNewest gives cand a creationTimestamp after every Ingress in objs, so
// that it loses every conflict, as the object being created does. It needs
// no clock.
func makeNewest(cand *networkingv1.Ingress, objs *store.Objects) {
	var newest time.Time
	if objs != nil {
		for _, o := range objs.Ingresses {
			if o != nil && o.CreationTimestamp.After(newest) {
				newest = o.CreationTimestamp.Time
			}
		}
	}
	if !cand.CreationTimestamp.After(newest) {
		cand.CreationTimestamp = metav1.NewTime(newest.Add(time.Second))
	}
}

func allow() *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: true}
}

func deny(code int32, msg string) *admissionv1.AdmissionResponse {
	reason := metav1.StatusReasonForbidden
	if code == http.StatusBadRequest {
		reason = metav1.StatusReasonBadRequest
	}
	return &admissionv1.AdmissionResponse{
		Allowed: false,
		Result:  &metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: sanitizeOne(msg)},
	}
}

// denialMessage renders the denials of v on one line.
func denialMessage(v Verdict) string {
	var b strings.Builder
	b.WriteString(v.Ref.Kind + " " + v.Ref.Namespace + "/" + v.Ref.Name + ": ")
	for i, p := range v.Denials {
		if i == maxListed {
			fmt.Fprintf(&b, "; and %d more", len(v.Denials)-maxListed)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(problemText(p))
	}
	return b.String()
}

// problemText renders a problem for a response: its reason, then its
// message, which names the field.
func problemText(p translate.Problem) string { return p.Reason + ": " + p.Message }

// groupVersion renders an apiVersion: "v1" for the core group.
func groupVersion(group, version string) string {
	if group == "" {
		return version
	}
	return group + "/" + version
}

func subresource(s string) string {
	if s == "" {
		return ""
	}
	return ", subresource " + quote(s)
}

// quote renders a value from a request for a message: quoted, and cut to
// 128 bytes.
func quote(s string) string {
	if len(s) > 128 {
		return strconv.Quote(s[:128]) + "..."
	}
	return strconv.Quote(s)
}

// boundWarnings sanitizes warnings and bounds them: each to
// maxWarningBytes, at most maxListed of them, and maxWarningsBytes in all,
// with a last line counting the ones left out.
func boundWarnings(ws []string) []string {
	if len(ws) == 0 {
		return nil
	}
	out := make([]string, 0, min(len(ws), maxListed+1))
	total := 0
	for i, w := range ws {
		w = cut(sanitizeOne(w), maxWarningBytes)
		room := maxWarningsBytes
		if i < len(ws)-1 {
			room -= moreReserve
		}
		if len(out) == maxListed || total+len(w) > room {
			out = append(out, fmt.Sprintf("and %d more warnings", len(ws)-i))
			break
		}
		out = append(out, w)
		total += len(w)
	}
	return out
}

// cut shortens an ASCII string to n bytes, marking the cut with "...".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// sanitizeOne escapes anything but printable ASCII. Messages already quote
// user values; this keeps warnings, which travel in HTTP Warning headers,
// valid whatever a value held.
func sanitizeOne(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			b.WriteRune(r)
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}
