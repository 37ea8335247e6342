package feature

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/server"
	"github.com/torii-dev/torii/internal/translate"
)

// TestGracefulShutdown checks the shutdown sequence: readiness turns false
// while the listeners still serve (the grace period), then an in-flight
// request completes while new connections are refused.
func TestGracefulShutdown(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	t.Cleanup(slow.Close)
	b := &backend{name: "slow", srv: slow, port: slow.Listener.Addr().(*net.TCPAddr).Port}

	dir := t.TempDir()
	writeFile(t, dir, "class.yaml", classYAML)
	writeFile(t, dir, "app.yaml", serviceYAML("live", "slow", b)+"---\n"+hostIngressYAML("slow", "slow.example", "slow"))
	srv, err := server.New(fromTestEnv(server.Config{
		ManifestDir: dir, HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Translate:           translate.Config{ControllerName: "torii.dev/ingress-controller", IngressClass: "torii"},
		ShutdownGracePeriod: 3 * time.Second, // room for the checks below on a busy machine
		DrainTimeout:        5 * time.Second,
	}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	admin, proxy := "http://"+srv.AdminAddr().String(), srv.HTTPAddr().String()

	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := status(admin + "/readyz"); got != 200 {
		t.Fatalf("readyz before shutdown = %d", got)
	}

	inflight := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+proxy+"/slow", nil)
		req.Host = "slow.example"
		resp, err := (&http.Client{Timeout: waitTimeout}).Do(req)
		if err != nil {
			inflight <- "error: " + err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inflight <- string(body)
	}()
	<-entered
	cancel()

	// During the grace period: not ready, but still serving new requests.
	deadline := time.Now().Add(waitTimeout)
	for status(admin+"/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("readyz never turned 503 after shutdown began")
		}
		time.Sleep(5 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", "http://"+proxy+"/fast", nil)
	req.Host = "slow.example"
	resp, err := (&http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("new request during the grace period: %v %v", resp, err)
	}
	resp.Body.Close()

	// After the grace period the listener refuses new connections while
	// the in-flight request is still held by its backend.
	deadline = time.Now().Add(waitTimeout)
	for {
		c, err := net.DialTimeout("tcp", proxy, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("proxy listener still accepting after the grace period")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := status(admin + "/healthz"); got != 200 {
		t.Fatalf("healthz during drain = %d, want 200 (admin stops last)", got)
	}
	close(release)
	if got := <-inflight; got != "done" {
		t.Fatalf("in-flight request: %q, want it completed", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after the drain")
	}
}
