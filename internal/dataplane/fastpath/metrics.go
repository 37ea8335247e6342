package fastpath

import (
	"time"

	"github.com/torii-dev/torii/internal/dataplane/reqmetrics"
	"github.com/torii-dev/torii/internal/metrics"
)

// The reasons below are the proxy's (package reqmetrics), so that a request
// counts the same whichever path served it.

// rejectReason labels torii_rejected_requests_total.
type rejectReason = reqmetrics.RejectReason

const (
	rejectNotReady    = reqmetrics.RejectNotReady
	rejectBody        = reqmetrics.RejectBody
	rejectBodyTimeout = reqmetrics.RejectBodyTimeout
)

// failReason labels torii_upstream_failures_total.
type failReason = reqmetrics.FailReason

const (
	failNoEndpoints = reqmetrics.FailNoEndpoints
	failConnect     = reqmetrics.FailConnect
	failTimeout     = reqmetrics.FailTimeout
	failError       = reqmetrics.FailError
	failProtocol    = reqmetrics.FailProtocol
	failBody        = reqmetrics.FailBody
)

// statusClientClosed is recorded (never sent) when the client went away
// before an answer, following nginx's 499.
const statusClientClosed = 499

type instruments = reqmetrics.Instruments

func newInstruments(m *metrics.Metrics) *instruments { return reqmetrics.New(m) }

// observe records one answered request: its status class and duration.
func (s *Server) observe(code int, start time.Time) {
	if s.inst == nil {
		return
	}
	s.inst.Observe(code, start)
}

func (s *Server) countReject(why rejectReason) {
	if s.inst != nil {
		s.inst.Reject[why].Inc()
	}
}

func (s *Server) countFail(why failReason) {
	if s.inst != nil {
		s.inst.Fail[why].Inc()
	}
}

func (s *Server) countConnectError(retry bool) {
	if s.inst == nil {
		return
	}
	s.inst.ConnErr.Inc()
	if retry {
		s.inst.Retries.Inc()
	}
}
