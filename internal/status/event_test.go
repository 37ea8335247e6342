package status

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apitypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func ingressRef(ns, name, uid string) corev1.ObjectReference {
	return corev1.ObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "Ingress", Namespace: ns, Name: name, UID: apitypes.UID(uid)}
}

// eventNotes lists "reason: note" of every Event in ns, oldest first.
func eventNotes(t *testing.T, c kubernetes.Interface, ns string) []string {
	t.Helper()
	list, err := c.EventsV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	var out []string
	for _, e := range list.Items {
		out = append(out, e.Reason+": "+e.Note)
	}
	return out
}

// waitNotes waits until ns holds exactly want (in order).
func waitNotes(t *testing.T, c kubernetes.Interface, ns string, want ...string) {
	t.Helper()
	var got []string
	eventually(t, "events "+strings.Join(want, " | "), func() bool {
		got = eventNotes(t, c, ns)
		if len(got) > len(want) {
			t.Fatalf("events %q, want %q", got, want)
		}
		return slices.Equal(got, want)
	})
}

func TestEventSinkDeduplicatesFake(t *testing.T) {
	c := fake.NewClientset()
	s := NewEventSink(c, "torii-a")
	defer s.Shutdown()
	bad := Problem{Object: ingressRef("web", "shop", "u1"), Reason: "BackendNotFound", Message: `service "shop" not found`}
	alsoBad := Problem{Object: ingressRef("web", "shop", "u1"), Reason: "BackendNotFound", Message: `service "cart" not found`}
	marker := Problem{Object: ingressRef("web", "marker", "u2"), Reason: "Marker", Message: "1"}

	s.Emit([]Problem{bad, bad}) // duplicates within one call count once
	waitNotes(t, c, "web", `BackendNotFound: service "shop" not found`)

	// Still present, plus a second problem with the same reason: only the
	// new one is reported (the events broadcaster would have folded it
	// into the first).
	s.Emit([]Problem{bad, alsoBad})
	s.Emit([]Problem{bad, alsoBad, marker})
	waitNotes(t, c, "web", `BackendNotFound: service "shop" not found`, `BackendNotFound: service "cart" not found`, "Marker: 1")

	// Gone, then back: reported again.
	s.Emit(nil)
	s.Emit([]Problem{bad})
	waitNotes(t, c, "web", `BackendNotFound: service "shop" not found`, `BackendNotFound: service "cart" not found`, "Marker: 1", `BackendNotFound: service "shop" not found`)

	list, _ := c.EventsV1().Events("web").List(context.Background(), metav1.ListOptions{})
	i := slices.IndexFunc(list.Items, func(e eventsv1.Event) bool { return e.Regarding.Name == "shop" })
	e := list.Items[i]
	if e.ReportingController != ReportingController || e.ReportingInstance != "torii-a" || e.Type != corev1.EventTypeWarning ||
		e.Regarding.UID != "u1" || e.Action == "" || e.EventTime.IsZero() {
		t.Errorf("event fields: %+v", e)
	}
}

// Two new problems on one object in one Emit are two Events: their names
// must differ although they share the Emit's timestamp.
func TestEventSinkTwoNewProblemsOnOneObject(t *testing.T) {
	c := fake.NewClientset()
	s := NewEventSink(c, "torii-a")
	defer s.Shutdown()
	s.Emit([]Problem{
		{Object: ingressRef("web", "shop", "u1"), Reason: "A", Message: "first"},
		{Object: ingressRef("web", "shop", "u1"), Reason: "B", Message: "second", Type: corev1.EventTypeNormal},
	})
	var list *eventsv1.EventList
	eventually(t, "two events", func() bool {
		list, _ = c.EventsV1().Events("web").List(context.Background(), metav1.ListOptions{})
		return len(list.Items) == 2
	})
	for _, e := range list.Items {
		if want := map[string]string{"A": corev1.EventTypeWarning, "B": corev1.EventTypeNormal}[e.Reason]; e.Type != want {
			t.Errorf("event %s: type %s, want %s", e.Reason, e.Type, want)
		}
	}
}

func TestEventSinkRetriesFailedProblemOnNextEmit(t *testing.T) {
	c := fake.NewClientset()
	var refuse atomic.Bool
	refuse.Store(true)
	var attempts atomic.Int32
	c.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		attempts.Add(1)
		if refuse.Load() {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "events.k8s.io", Resource: "events"}, "", nil)
		}
		return false, nil, nil
	})
	s := NewEventSink(c, "torii-a")
	defer s.Shutdown()
	p := Problem{Object: ingressRef("web", "shop", "u1"), Reason: "Bad", Message: "m"}
	s.Emit([]Problem{p})
	eventually(t, "the refused write", func() bool { return attempts.Load() == 1 })
	// The worker forgets a problem it could not report; wait for that.
	eventually(t, "the problem to be forgotten", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.active) == 0
	})
	refuse.Store(false)
	s.Emit([]Problem{p})
	waitNotes(t, c, "web", "Bad: m")
}

func TestEventSinkClusterScopedAndShutdown(t *testing.T) {
	c := fake.NewClientset()
	s := NewEventSink(c, "")
	class := corev1.ObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "IngressClass", Name: "torii"}
	s.Emit([]Problem{{Object: class, Reason: "InvalidParameters", Message: strings.Repeat("x", 5000)}})
	s.Shutdown() // flushes the queue
	list, err := c.EventsV1().Events("default").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("events in default: %v, %v", list, err)
	}
	if n := len(list.Items[0].Note); n != maxNoteBytes {
		t.Errorf("note is %d bytes, want %d", n, maxNoteBytes)
	}
	if list.Items[0].ReportingInstance == "" {
		t.Error("no default reporting instance")
	}
	s.Emit([]Problem{{Object: class, Reason: "Later", Message: "m"}}) // no panic, no event
	s.Shutdown()                                                      // idempotent
}
