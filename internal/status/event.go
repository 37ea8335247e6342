package status

import (
	"cmp"
	"context"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/record/util"
)

// ReportingController is the reportingController of Torii's Events, the
// same name IngressClasses use to select Torii.
const ReportingController = "torii.dev/ingress-controller"

// eventAction is the events.k8s.io/v1 action: what Torii was doing when it
// found the problem.
const eventAction = "Reconcile"

// Bounds of the event pipeline. Emit never blocks the caller (a rebuild) on
// the API server: events wait in a queue, and a queue that fills up (the
// API server is down) drops them, to be retried by the next Emit.
const (
	eventQueueSize     = 1024
	eventAttempts      = 3
	eventRetryWait     = time.Second
	eventShutdownGrace = 5 * time.Second
	// API limits on Event fields (events.k8s.io/v1 validation).
	maxNoteBytes   = 1024
	maxReasonBytes = 128
	maxFieldBytes  = 128
)

// Problem is one per-object problem to report: the object (with its UID when
// known), a CamelCase reason and a human message.
type Problem struct {
	Object          corev1.ObjectReference
	Reason, Message string
	// Type is the Event type; empty means Warning. Normal suits progress
	// reports, such as a dedicated load balancer waiting for its address.
	Type string
}

// EventSink turns per-object problems into Warning Events
// (events.k8s.io/v1), each problem once for as long as it lasts.
//
// It writes through the events sink of k8s.io/client-go/tools/events but
// not through its broadcaster, which would (1) set reportingInstance to
// "<controller>-<hostname>" rather than the election identity, (2) fold
// events for one object and reason into one series whatever their
// messages, so a second, different problem with the same reason would be
// lost, and (3) delay repeat writes by up to 30 minutes. Deduplication
// here makes its aggregation unnecessary.
type EventSink struct {
	sink     events.EventSink
	identity string
	log      *slog.Logger

	mu     sync.Mutex
	active map[string]bool // problems reported and still present
	closed bool
	// seq makes event names unique: two new problems on one object in one
	// Emit share its timestamp, and a second Event with the first one's
	// name would be refused as AlreadyExists (and counted as written).
	seq uint64

	queue  chan queuedEvent
	ctx    context.Context // ends the retries of the worker at shutdown
	cancel context.CancelFunc
	done   chan struct{}
}

type queuedEvent struct {
	key   string
	event *eventsv1.Event
}

// NewEventSink starts an EventSink that writes with c as identity (its
// reportingInstance); empty identity means hostname plus a random suffix.
// Call Shutdown to flush and stop it.
func NewEventSink(c kubernetes.Interface, identity string) *EventSink {
	if identity == "" {
		identity, _ = defaultIdentity()
	}
	s := &EventSink{
		sink:     &events.EventSinkImpl{Interface: c.EventsV1()},
		identity: truncate(identity, maxFieldBytes),
		log:      slog.Default().With("component", "events"),
		active:   map[string]bool{},
		queue:    make(chan queuedEvent, eventQueueSize),
		done:     make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s
}

// Emit reports the problems that are new since the previous call. A
// problem still present is not reported again; one that disappeared and
// came back is. problems must be the complete current set each time (for
// example every problem of a rebuild).
func (s *EventSink) Emit(problems []Problem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := time.Now()
	next := make(map[string]bool, len(problems))
	for _, p := range problems {
		key := problemKey(p)
		if next[key] {
			continue
		}
		if s.active[key] {
			next[key] = true
			continue
		}
		s.seq++
		select {
		case s.queue <- queuedEvent{key: key, event: s.event(p, now, s.seq)}:
			next[key] = true
		default:
			// Not marked active, so the next Emit tries again.
		}
	}
	s.active = next
}

// Shutdown writes the queued events, waiting at most a few seconds, and
// stops the sink. Later Emits do nothing.
func (s *EventSink) Shutdown() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.closed = true
	close(s.queue)
	s.mu.Unlock()
	timer := time.AfterFunc(eventShutdownGrace, s.cancel)
	<-s.done
	timer.Stop()
	s.cancel()
}

// run writes queued events until the queue is closed and drained.
func (s *EventSink) run() {
	defer close(s.done)
	for q := range s.queue {
		if s.ctx.Err() != nil {
			continue // shutting down past the grace period: drop
		}
		if !s.write(q.event) {
			// Forget it, so the next Emit that still has this problem
			// reports it again.
			s.mu.Lock()
			delete(s.active, q.key)
			s.mu.Unlock()
		}
	}
}

// write creates one Event, retrying errors that may pass.
func (s *EventSink) write(ev *eventsv1.Event) bool {
	var err error
	for attempt := 1; attempt <= eventAttempts; attempt++ {
		_, err = s.sink.Create(s.ctx, ev)
		if err == nil || apierrors.IsAlreadyExists(err) {
			return true
		}
		if !retriable(err) || attempt == eventAttempts || sleep(s.ctx, eventRetryWait*time.Duration(attempt)) != nil {
			break
		}
	}
	s.log.Warn("could not record event", "object", ev.Regarding.Kind+" "+ev.Regarding.Namespace+"/"+ev.Regarding.Name, "reason", ev.Reason, "error", err)
	return false
}

// retriable reports whether an API error might not happen again: not one
// about the event itself or Torii's permissions.
func retriable(err error) bool {
	return !(apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsInvalid(err) ||
		apierrors.IsBadRequest(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err))
}

// event builds the Event for p. Events live in the object's namespace;
// those about cluster-scoped objects (an IngressClass) in "default", as the
// API requires.
func (s *EventSink) event(p Problem, now time.Time, seq uint64) *eventsv1.Event {
	ns := p.Object.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	return &eventsv1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      util.GenerateEventName(p.Object.Name, now.UnixNano()+int64(seq)),
			Namespace: ns,
		},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: ReportingController,
		ReportingInstance:   s.identity,
		Action:              eventAction,
		Reason:              truncate(p.Reason, maxReasonBytes),
		Regarding:           p.Object,
		Note:                truncate(p.Message, maxNoteBytes),
		Type:                cmp.Or(p.Type, corev1.EventTypeWarning),
	}
}

// problemKey identifies a problem: the object (by UID when known, so a
// deleted and recreated object counts as new) plus reason and message.
func problemKey(p Problem) string {
	o := p.Object
	id := string(o.UID)
	if id == "" {
		id = o.APIVersion + "/" + o.Kind + "/" + o.Namespace + "/" + o.Name
	}
	return id + "\x00" + p.Reason + "\x00" + p.Message
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Back up to the start of the rune that the cut would split.
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
