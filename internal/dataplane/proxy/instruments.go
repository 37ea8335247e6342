package proxy

import (
	"time"

	"github.com/torii-dev/torii/internal/dataplane/reqmetrics"
	"github.com/torii-dev/torii/internal/metrics"
)

// rejectReason labels torii_rejected_requests_total.
type rejectReason = reqmetrics.RejectReason

const (
	rejectNotReady    = reqmetrics.RejectNotReady
	rejectMethod      = reqmetrics.RejectMethod
	rejectPath        = reqmetrics.RejectPath
	rejectQuery       = reqmetrics.RejectQuery
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

// instruments holds the metric children the hot path touches, resolved once
// so that recording never allocates or hashes label values. It is shared
// with the fast path (package reqmetrics).
type instruments = reqmetrics.Instruments

func newInstruments(m *metrics.Metrics) *instruments { return reqmetrics.New(m) }

// observe records one answered request: its status class and duration.
func (p *Proxy) observe(code int, start time.Time) {
	if p.inst == nil {
		return
	}
	p.inst.Observe(code, start)
}
