package proxy

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/torii-dev/torii/internal/metrics"
)

// rejectReason labels torii_rejected_requests_total.
type rejectReason int

const (
	rejectNotReady rejectReason = iota
	rejectMethod
	rejectPath
	rejectQuery
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

// instruments holds the metric children the hot path touches, resolved once
// so that recording never allocates or hashes label values.
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
		rejectMethod:      "method",
		rejectPath:        "bad_path",
		rejectQuery:       "bad_query",
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
func (p *Proxy) observe(code int, start time.Time) {
	if p.inst == nil {
		return
	}
	p.inst.m.ObserveStatus(code)
	p.inst.m.RequestDuration.Observe(time.Since(start).Seconds())
}
