package metrics

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// KubeStats is what Kubernetes mode reports. It is read at scrape time, so
// the counters stay owned (and cheaply incremented) by the parts that
// count them.
type KubeStats struct {
	// Leader is true while this replica holds the election Lease.
	Leader bool
	// Events counts, by object kind, the informer events that changed
	// something; Unchanged counts replays of unchanged objects and
	// status-only Ingress updates, which trigger no rebuild.
	Events    map[string]uint64
	Unchanged uint64
	// WatchErrors counts list and watch failures reported by client-go.
	WatchErrors uint64
	// Rebuilds and EndpointUpdates count the deliveries of each lane.
	Rebuilds, EndpointUpdates uint64
	// StatusUpdates counts successful Ingress status writes by this
	// replica; StatusConflicts the writes refused on a stale object.
	StatusUpdates, StatusConflicts uint64
}

// kubeCollector exposes a KubeStats function as Prometheus metrics.
type kubeCollector struct {
	read func() KubeStats

	leader, events, unchanged, watchErrors *prometheus.Desc
	rebuilds, endpointUpdates              *prometheus.Desc
	statusUpdates, statusConflicts         *prometheus.Desc
}

// RegisterKube adds the Kubernetes-mode metrics, read from read at every
// scrape. Call it once.
func (m *Metrics) RegisterKube(read func() KubeStats) {
	m.registry.MustRegister(&kubeCollector{
		read: read,
		leader: prometheus.NewDesc("torii_leader",
			"1 while this replica holds the leader-election Lease and writes Ingress status and Events.", nil, nil),
		events: prometheus.NewDesc("torii_kube_events_total",
			"Informer events that changed an object, by kind.", []string{"kind"}, nil),
		unchanged: prometheus.NewDesc("torii_kube_unchanged_events_total",
			"Informer updates that needed no rebuild: unchanged replays after resyncs and reconnects, and status-only Ingress updates.", nil, nil),
		watchErrors: prometheus.NewDesc("torii_kube_watch_errors_total",
			"List and watch failures reported by client-go.", nil, nil),
		rebuilds: prometheus.NewDesc("torii_kube_rebuilds_total",
			"Coalesced rebuilds delivered to the controller.", nil, nil),
		endpointUpdates: prometheus.NewDesc("torii_kube_endpoint_updates_total",
			"Endpoint-lane deliveries: EndpointSlice changes applied without a rebuild.", nil, nil),
		statusUpdates: prometheus.NewDesc("torii_status_updates_total",
			"Successful Ingress status writes by this replica.", nil, nil),
		statusConflicts: prometheus.NewDesc("torii_status_conflicts_total",
			"Ingress status writes refused because the object had changed; retried on the next sync.", nil, nil),
	})
}

func (c *kubeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leader, c.events, c.unchanged, c.watchErrors,
		c.rebuilds, c.endpointUpdates, c.statusUpdates, c.statusConflicts} {
		ch <- d
	}
}

func (c *kubeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	leader := 0.0
	if s.Leader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, leader)
	for _, kind := range slices.Sorted(maps.Keys(s.Events)) {
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(s.Events[kind]), kind)
	}
	for _, v := range []struct {
		d *prometheus.Desc
		n uint64
	}{
		{c.unchanged, s.Unchanged}, {c.watchErrors, s.WatchErrors},
		{c.rebuilds, s.Rebuilds}, {c.endpointUpdates, s.EndpointUpdates},
		{c.statusUpdates, s.StatusUpdates}, {c.statusConflicts, s.StatusConflicts},
	} {
		ch <- prometheus.MustNewConstMetric(v.d, prometheus.CounterValue, float64(v.n))
	}
}
