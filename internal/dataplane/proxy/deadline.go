package proxy

import (
	"net/http"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/defaults"
)

// The idle timeouts (UpstreamReadTimeout, UpstreamSendTimeout,
// ClientBodyTimeout, ClientSendTimeout) are deadlines pushed forward on
// every read or write, so they bound the gap between two operations rather
// than a whole transfer: a large body to a slow but live peer still goes
// through, a peer that stops dead does not hold a request forever.

// monoBase anchors deadline arithmetic on the monotonic clock: deadlines are
// kept as nanoseconds since monoBase, so they compare as integers and
// wall-clock steps never move them.
var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

// monoTime converts a monoNow value back into a deadline. Add keeps
// monoBase's monotonic reading, so the deadline stays monotonic too.
func monoTime(ns int64) time.Time { return monoBase.Add(time.Duration(ns)) }

// aLongTimeAgo is a deadline in the past: setting it makes a blocked read or
// write return at once.
var aLongTimeAgo = time.Unix(1, 0)

// renewSlack is defaults.RenewSlack in monoNow's units.
func renewSlack(timeout time.Duration) int64 {
	return int64(defaults.RenewSlack(timeout))
}

// idleDeadline is a deadline renewed on progress. It is not safe for
// concurrent use; its owner serialises calls.
type idleDeadline struct {
	timeout, slack int64
	// until is the deadline last set, in monoNow units; 0 means none yet.
	until int64
}

func newIdleDeadline(timeout time.Duration) idleDeadline {
	return idleDeadline{timeout: int64(timeout), slack: renewSlack(timeout)}
}

// renew returns the deadline to set now, or false when the one already set
// is recent enough.
func (d *idleDeadline) renew() (time.Time, bool) {
	want := monoNow() + d.timeout
	if d.until != 0 && want-d.until < d.slack {
		return time.Time{}, false
	}
	d.until = want
	return monoTime(want), true
}

// readDeadliner and writeDeadliner are what http.ResponseController calls
// on a ResponseWriter; both net/http's HTTP/1 writer and the HTTP/2 server's
// implement them.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// sendDeadline applies ClientSendTimeout to a response: a write deadline
// renewed before every write to the client.
type sendDeadline struct {
	w writeDeadliner // nil: the writer has no deadlines
	d idleDeadline
}

func (p *Proxy) newSendDeadline(w http.ResponseWriter) sendDeadline {
	wd, _ := unwrapAs[writeDeadliner](w)
	return sendDeadline{w: wd, d: newIdleDeadline(p.cfg.ClientSendTimeout)}
}

// renew pushes the write deadline forward before a write.
func (s *sendDeadline) renew() {
	if s.w == nil {
		return
	}
	if t, ok := s.d.renew(); ok {
		// An error means the stream or connection is gone; the write
		// that follows reports it.
		_ = s.w.SetWriteDeadline(t)
	}
}

// unwrapAs finds the first writer in the chain w, w.Unwrap(), … that
// implements T, as http.ResponseController does but without its allocation.
func unwrapAs[T any](w http.ResponseWriter) (T, bool) {
	for range 16 { // wrappers are few; the bound guards against a cycle
		if t, ok := w.(T); ok {
			return t, true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	var zero T
	return zero, false
}
