package reqmetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/torii-dev/torii/internal/metrics"
)

// RejectReason labels torii_rejected_requests_total.
type RejectReason int

// Reasons a request is rejected before it is forwarded.
const (
	RejectNotReady RejectReason = iota
	RejectMethod
	RejectPath
	RejectQuery
	RejectBody
	RejectBodyTimeout
	NumRejectReasons
)

// FailReason labels torii_upstream_failures_total.
type FailReason int

// Reasons forwarding to an upstream fails.
const (
	FailNoEndpoints FailReason = iota
	FailConnect
	FailTimeout
	FailError
	FailProtocol
	FailBody
	NumFailReasons
)

var rejectLabels = [NumRejectReasons]string{
	RejectNotReady:    "not_ready",
	RejectMethod:      "method",
	RejectPath:        "bad_path",
	RejectQuery:       "bad_query",
	RejectBody:        "bad_body",
	RejectBodyTimeout: "body_timeout",
}

var failLabels = [NumFailReasons]string{
	FailNoEndpoints: "no_endpoints",
	FailConnect:     "connect",
	FailTimeout:     "timeout",
	FailError:       "error",
	FailProtocol:    "protocol",
	FailBody:        "body",
}

// Instruments holds the metric children the hot path touches.
type Instruments struct {
	M       *metrics.Metrics
	ConnErr prometheus.Counter
	Retries prometheus.Counter
	Reject  [NumRejectReasons]prometheus.Counter
	Fail    [NumFailReasons]prometheus.Counter
}

// New resolves the children of m once.
func New(m *metrics.Metrics) *Instruments {
	in := &Instruments{M: m, ConnErr: m.UpstreamConnErr, Retries: m.UpstreamRetries}
	for why, label := range rejectLabels {
		in.Reject[why] = m.RejectedRequests.WithLabelValues(label)
	}
	for why, label := range failLabels {
		in.Fail[why] = m.UpstreamFailures.WithLabelValues(label)
	}
	return in
}

// Observe records one answered request: its status class and duration.
func (in *Instruments) Observe(code int, start time.Time) {
	in.M.ObserveStatus(code)
	in.M.RequestDuration.Observe(time.Since(start).Seconds())
}
