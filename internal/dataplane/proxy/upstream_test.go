package proxy

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/torii-dev/torii/internal/metrics"
)

func TestRoundRobinAcrossEndpoints(t *testing.T) {
	h := newHarness(t, Config{})
	recs := []*recorder{newRecorder(t, "a"), newRecorder(t, "b"), newRecorder(t, "c")}
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", recs[0].addr(), recs[1].addr(), recs[2].addr()))
	counts := map[string]int{}
	for i := 0; i < 30; i++ {
		status, body := h.get("/")
		if status != http.StatusOK {
			t.Fatalf("request %d: status %d", i, status)
		}
		counts[body]++
	}
	if counts["a"] != 10 || counts["b"] != 10 || counts["c"] != 10 {
		t.Fatalf("distribution %v, want 10 each", counts)
	}
}

// checksumBackend answers with the length and SHA-256 of the body it read.
func checksumBackend(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.New()
		n, err := io.Copy(sum, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, sum.Sum(nil))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestConnectFailureRetriedWithBody(t *testing.T) {
	m := metrics.New()
	h := newHarness(t, Config{Metrics: m})
	live := checksumBackend(t)
	dead := closedAddr(t)
	// The dead endpoint is first, so the first request's first attempt
	// is refused.
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", dead, serverAddr(live)))
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(rand.IntN(256))
	}
	want := fmt.Sprintf("%d %x", len(payload), sha256.Sum256(payload))
	for i := 0; i < 4; i++ {
		res, err := h.client().Post(h.front.URL+"/upload", "application/octet-stream", bytes.NewReader(payload))
		if err != nil {
			t.Fatalf("POST %d: %v", i, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || string(body) != want {
			t.Fatalf("POST %d: %d %q, want 200 %q", i, res.StatusCode, body, want)
		}
	}
	// Only the first request met the dead endpoint: afterwards it was in
	// cooldown.
	if got := counterValue(t, m.Registry(), "torii_upstream_connect_errors_total", ""); got != 1 {
		t.Errorf("connect errors = %v, want 1", got)
	}
	if got := counterValue(t, m.Registry(), "torii_upstream_retries_total", ""); got != 1 {
		t.Errorf("retries = %v, want 1", got)
	}
}

func TestAllEndpointsDownIs502(t *testing.T) {
	m := metrics.New()
	h := newHarness(t, Config{Metrics: m})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", closedAddr(t), closedAddr(t), closedAddr(t), closedAddr(t)))
	res, err := h.client().Post(h.front.URL+"/", "text/plain", strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadGateway || string(body) != "502 Bad Gateway\n" {
		t.Fatalf("got %d %q, want Torii's 502", res.StatusCode, body)
	}
	if got := counterValue(t, m.Registry(), "torii_upstream_connect_errors_total", ""); got != 3 {
		t.Errorf("connect attempts = %v, want MaxConnectAttempts (3)", got)
	}
	if got := counterValue(t, m.Registry(), "torii_upstream_failures_total", "connect"); got != 1 {
		t.Errorf("failures{connect} = %v, want 1", got)
	}
}

func TestResponseHeaderTimeoutIs504(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	h := newHarness(t, Config{ResponseHeaderTimeout: 100 * time.Millisecond})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/slow:80", serverAddr(slow)))
	status, body := h.get("/")
	if status != http.StatusGatewayTimeout || body != "504 Gateway Timeout\n" {
		t.Fatalf("got %d %q, want Torii's 504", status, body)
	}
}

func TestUpstreamResetIs502(t *testing.T) {
	rude := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	t.Cleanup(rude.Close)
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/rude:80", serverAddr(rude)))
	status, body := h.get("/")
	if status != http.StatusBadGateway || body != "502 Bad Gateway\n" {
		t.Fatalf("got %d %q, want Torii's 502", status, body)
	}
}

// TestTruncatedUpstreamBodyIsNotCompleted checks that a body the upstream
// cuts short reaches the client as an error, never as a complete response.
func TestTruncatedUpstreamBodyIsNotCompleted(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !chunked {
					w.Header().Set("Content-Length", "100")
				}
				w.Write([]byte("partial"))
				http.NewResponseController(w).Flush()
				c, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					c.Close()
				}
			}))
			t.Cleanup(cut.Close)
			h := newHarness(t, Config{})
			h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/cut:80", serverAddr(cut)))
			// Depending on whether the status was flushed before the
			// upstream failed, the client sees a failed request or a
			// failed body read; either way, never a complete response.
			res, err := h.client().Get(h.front.URL + "/")
			if err != nil {
				return
			}
			defer res.Body.Close()
			if body, err := io.ReadAll(res.Body); err == nil {
				t.Fatalf("truncated upstream body read as complete: %q", body)
			}
		})
	}
}

// TestClientDisconnectCancelsUpstream: a client that goes away cancels the
// upstream request, and gets no answer at all. Half-closing lets the test see
// what the client would receive: net/http cancels the request on the EOF all
// the same, and answers "200 OK" with an empty body for a handler that
// returns without writing.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	for _, halfClose := range []bool{false, true} {
		t.Run(fmt.Sprintf("halfClose=%v", halfClose), func(t *testing.T) {
			started := make(chan struct{})
			canceled := make(chan struct{})
			hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				select {
				case <-r.Context().Done():
					close(canceled)
				case <-time.After(testTimeout):
				}
			}))
			t.Cleanup(hang.Close)
			m := metrics.New()
			h := newHarness(t, Config{Metrics: m})
			h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/hang:80", serverAddr(hang)))
			c := dialRaw(t, h.addr())
			c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			waitChan(t, started, "the request to reach the backend")
			if !halfClose {
				c.conn.Close()
				waitChan(t, canceled, "the upstream request to be canceled")
				return
			}
			c.conn.(*net.TCPConn).CloseWrite()
			waitChan(t, canceled, "the upstream request to be canceled")
			if raw, err := readToClose(t, c); raw != "" || err != nil {
				t.Fatalf("client received %q (%v), want the connection closed without a response", raw, err)
			}
			if got := counterValue(t, m.Registry(), "torii_upstream_failures_total", "error"); got != 0 {
				t.Errorf("a client going away counted as an upstream failure")
			}
		})
	}
}

// counterValue returns a counter's value from the registry, selecting the
// child whose single label value is label ("" for unlabelled counters).
func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := m.GetLabel()
			if label == "" && len(labels) == 0 || len(labels) == 1 && labels[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
