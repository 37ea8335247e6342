package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestKubeMetricsReadStatsAtScrape(t *testing.T) {
	m := New()
	stats := KubeStats{
		Leader:   true,
		Events:   map[string]uint64{"Ingress": 3, "EndpointSlice": 7},
		Rebuilds: 2, EndpointUpdates: 5, StatusUpdates: 4, StatusConflicts: 1, Unchanged: 9, WatchErrors: 6,
	}
	m.RegisterKube(func() KubeStats { return stats })
	want := `
# HELP torii_leader 1 while this replica holds the leader-election Lease and writes Ingress status and Events.
# TYPE torii_leader gauge
torii_leader 1
# HELP torii_kube_events_total Informer events that changed an object, by kind.
# TYPE torii_kube_events_total counter
torii_kube_events_total{kind="EndpointSlice"} 7
torii_kube_events_total{kind="Ingress"} 3
# HELP torii_status_updates_total Successful Ingress status writes by this replica.
# TYPE torii_status_updates_total counter
torii_status_updates_total 4
`
	names := []string{"torii_leader", "torii_kube_events_total", "torii_status_updates_total"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// The values are read at every scrape, not captured at registration.
	stats.Leader, stats.StatusUpdates = false, 10
	want = strings.NewReplacer("\ntorii_leader 1\n", "\ntorii_leader 0\n", "\ntorii_status_updates_total 4\n", "\ntorii_status_updates_total 10\n").Replace(want)
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "torii_kube_rebuilds_total", "torii_kube_endpoint_updates_total",
		"torii_kube_unchanged_events_total", "torii_kube_watch_errors_total", "torii_status_conflicts_total"); err != nil || n != 5 {
		t.Fatalf("other kube metrics: %d series, err %v; want 5", n, err)
	}
}
