package fastpath

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/torii-dev/torii/internal/metrics"
)

// The reasons below label the same metrics, with the same values, as the
// proxy's (see proxy/instruments.go), so that a request counts the same
// whichever path served it.

// rejectReason labels torii_rejected_requests_total.
type rejectReason int

const (
	rejectNotReady rejectReason = iota
	rejectBody
	rejectBodyTimeout
	numRejectReasons
)

// failReason labels torii_upstream_failures_total.
type failReason int

const (
	failNoEndpoints failReason = iota
	failConnect
	failTimeout
	failError
	failProtocol
	failBody
	numFailReasons
)

// statusClientClosed is recorded (never sent) when the client went away
// before an answer, following nginx's 499.
const statusClientClosed = 499

type instruments struct {
	m       *metrics.Metrics
	connErr prometheus.Counter
	retries prometheus.Counter
	reject  [numRejectReasons]prometheus.Counter
	fail    [numFailReasons]prometheus.Counter
}

func newInstruments(m *metrics.Metrics) *instruments {
	in := &instruments{m: m, connErr: m.UpstreamConnErr, retries: m.UpstreamRetries}
	for why, label := range map[rejectReason]string{
		rejectNotReady:    "not_ready",
		rejectBody:        "bad_body",
		rejectBodyTimeout: "body_timeout",
	} {
		in.reject[why] = m.RejectedRequests.WithLabelValues(label)
	}
	for why, label := range map[failReason]string{
		failNoEndpoints: "no_endpoints",
		failConnect:     "connect",
		failTimeout:     "timeout",
		failError:       "error",
		failProtocol:    "protocol",
		failBody:        "body",
	} {
		in.fail[why] = m.UpstreamFailures.WithLabelValues(label)
	}
	return in
}

// observe records one answered request: its status class and duration.
func (s *Server) observe(code int, start time.Time) {
	if s.inst == nil {
		return
	}
	s.inst.m.ObserveStatus(code)
	s.inst.m.RequestDuration.Observe(time.Since(start).Seconds())
}

func (s *Server) countReject(why rejectReason) {
	if s.inst != nil {
		s.inst.reject[why].Inc()
	}
}

func (s *Server) countFail(why failReason) {
	if s.inst != nil {
		s.inst.fail[why].Inc()
	}
}

func (s *Server) countConnectError(retry bool) {
	if s.inst == nil {
		return
	}
	s.inst.connErr.Inc()
	if retry {
		s.inst.retries.Inc()
	}
}
