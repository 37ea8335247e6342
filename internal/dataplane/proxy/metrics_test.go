package proxy

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/torii-dev/torii/internal/metrics"
)

func TestMetricsRecorded(t *testing.T) {
	m := metrics.New()
	h := newHarness(t, Config{Metrics: m})
	rawGet(t, h.addr(), "/", "x") // 503 not ready
	rec := newRecorder(t, "x")
	h.swap(newRouter(exact("/ok", 0), exact("/none", -1)), backendOf(t, "ns/x:80", rec.addr()))
	for i := 0; i < 3; i++ {
		h.get("/ok")
	}
	h.get("/missing")                // 404
	h.get("/none")                   // 503 no endpoints
	rawGet(t, h.addr(), "/%00", "x") // 400
	c := dialRaw(t, h.addr())        // 405
	c.roundTrip("TRACE", "TRACE / HTTP/1.1\r\nHost: x\r\n\r\n")

	// A request is counted once its answer is written, so the client can
	// read the last answer a moment before it is counted: poll.
	reg := m.Registry()
	deadline := time.Now().Add(testTimeout)
	for {
		wrong := metricsMismatches(t, reg)
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, w := range wrong {
				t.Error(w)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// metricsMismatches describes each of TestMetricsRecorded's counters that
// is not what its requests should have made it.
func metricsMismatches(t *testing.T, reg *prometheus.Registry) []string {
	var wrong []string
	for _, tt := range []struct {
		name, label string
		want        float64
	}{
		{"torii_http_requests_total", "2xx", 3},
		{"torii_http_requests_total", "4xx", 3},
		{"torii_http_requests_total", "5xx", 2},
		{"torii_rejected_requests_total", "not_ready", 1},
		{"torii_rejected_requests_total", "bad_path", 1},
		{"torii_rejected_requests_total", "method", 1},
		{"torii_upstream_failures_total", "no_endpoints", 1},
	} {
		if got := counterValue(t, reg, tt.name, tt.label); got != tt.want {
			wrong = append(wrong, fmt.Sprintf("%s{%s} = %v, want %v", tt.name, tt.label, got, tt.want))
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "torii_http_request_duration_seconds" {
			if n := mf.GetMetric()[0].GetHistogram().GetSampleCount(); n != 8 {
				wrong = append(wrong, fmt.Sprintf("duration samples = %d, want 8", n))
			}
			return wrong
		}
	}
	return append(wrong, "no duration histogram")
}

func TestExpectContinueRelayed(t *testing.T) {
	rec := newRecorder(t, "x")
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", rec.addr()))
	c := dialRaw(t, h.addr())
	c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	// The client holds its body until the backend's 100 Continue has
	// travelled back through the proxy.
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("interim response %q, %v", line, err)
	}
	if blank, err := c.br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100: %q, %v", blank, err)
	}
	c.send("hello")
	res, _ := c.response("POST")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got := rec.next(t); string(got.body) != "hello" {
		t.Fatalf("backend body %q", got.body)
	}
}
