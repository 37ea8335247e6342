package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds Torii's metrics. The zero value is not usable; call New.
type Metrics struct {
	registry *prometheus.Registry

	// Data plane.
	requests          *prometheus.CounterVec
	requestsByClass   [6]prometheus.Counter // index: status code / 100
	RequestDuration   prometheus.Histogram
	UpstreamConnErr   prometheus.Counter
	UpstreamRetries   prometheus.Counter
	UpstreamFailures  *prometheus.CounterVec
	RejectedRequests  *prometheus.CounterVec
	ActiveConnections prometheus.Gauge

	// Control plane.
	ReloadSuccessful prometheus.Gauge
	ReloadDuration   prometheus.Histogram
	Generation       prometheus.Gauge
	Problems         *prometheus.GaugeVec
	Routes           prometheus.Gauge
	Backends         prometheus.Gauge
	Endpoints        prometheus.Gauge
}

// New creates the metrics and registers them, with the Go runtime and process
// collectors, on a new registry.
func New() *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "torii_http_requests_total",
		Help: "Requests answered by the proxy, by status class (1xx..5xx).",
	}, []string{"class"})
	for c := 1; c <= 5; c++ {
		m.requestsByClass[c] = m.requests.WithLabelValues(string(rune('0'+c)) + "xx")
	}
	m.RequestDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "torii_http_request_duration_seconds",
		Help:    "Time from request headers read to response complete.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	m.UpstreamConnErr = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "torii_upstream_connect_errors_total",
		Help: "Connections to upstream endpoints that failed before anything was sent.",
	})
	m.UpstreamRetries = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "torii_upstream_retries_total",
		Help: "Requests retried on another endpoint after a connect failure.",
	})
	m.UpstreamFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "torii_upstream_failures_total",
		Help: "Requests answered by Torii because the upstream failed, by reason.",
	}, []string{"reason"})
	m.RejectedRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "torii_rejected_requests_total",
		Help: "Requests rejected before routing, by reason.",
	}, []string{"reason"})
	m.ActiveConnections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "torii_active_connections",
		Help: "Client connections currently open on the proxy listeners.",
	})
	m.ReloadSuccessful = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "torii_config_last_reload_successful",
		Help: "1 when the last configuration build was published, 0 when it failed and the previous snapshot kept serving.",
	})
	m.ReloadDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "torii_config_reload_duration_seconds",
		Help:    "Time to translate objects, compile and swap a snapshot.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	})
	m.Generation = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "torii_config_generation",
		Help: "Generation of the live routing snapshot.",
	})
	m.Problems = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "torii_config_problems",
		Help: "Problems found in the objects of the live snapshot, by severity.",
	}, []string{"severity"})
	m.Routes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "torii_routes",
		Help: "Routes in the live snapshot.",
	})
	m.Backends = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "torii_backends",
		Help: "Backends in the live snapshot.",
	})
	m.Endpoints = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "torii_endpoints",
		Help: "Ready endpoints across all backends of the live snapshot.",
	})
	m.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.RequestDuration, m.UpstreamConnErr, m.UpstreamRetries,
		m.UpstreamFailures, m.RejectedRequests, m.ActiveConnections,
		m.ReloadSuccessful, m.ReloadDuration, m.Generation, m.Problems,
		m.Routes, m.Backends, m.Endpoints,
	)
	return m
}

// ObserveStatus counts one answered request by its status class. It does not
// allocate.
func (m *Metrics) ObserveStatus(code int) {
	if c := code / 100; c >= 1 && c <= 5 {
		m.requestsByClass[c].Inc()
	}
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Registry returns the registry, for tests that gather values.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }
