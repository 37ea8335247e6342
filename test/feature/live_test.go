package feature

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func hostIngressYAML(name, host, service string) string {
	return fmt.Sprintf(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: %s
  namespace: live
spec:
  ingressClassName: torii
  rules:
    - host: %s
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: %s, port: {number: 8080}}}
`, name, host, service)
}

func TestFileWatchAppliesEditsAddsAndDeletes(t *testing.T) {
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	tr := start(t, map[string]string{
		"class.yaml":    classYAML,
		"services.yaml": serviceYAML("live", "blue", blue) + "---\n" + serviceYAML("live", "green", green),
		"app.yaml":      hostIngressYAML("app", "app.example", "blue"),
	})
	if r := tr.get("app.example", "/"); r.servedBy() != "blue" {
		t.Fatalf("initial: served by %q, want blue", r.servedBy())
	}

	start := time.Now()
	tr.apply("app.yaml", hostIngressYAML("app", "app.example", "green"))
	t.Logf("edit applied in %v", time.Since(start))
	if r := tr.get("app.example", "/"); r.servedBy() != "green" {
		t.Fatalf("after edit: served by %q, want green", r.servedBy())
	}

	tr.apply("other.yaml", hostIngressYAML("other", "other.example", "blue"))
	if r := tr.get("other.example", "/"); r.servedBy() != "blue" {
		t.Fatalf("after add: served by %q, want blue", r.servedBy())
	}

	tr.remove("other.yaml")
	if r := tr.get("other.example", "/"); r.status != http.StatusNotFound {
		t.Fatalf("after delete: got %d from %q, want 404", r.status, r.servedBy())
	}

	// A broken edit is reported and the file's last good content keeps serving.
	tr.apply("app.yaml", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: [broken\n")
	if r := tr.get("app.example", "/"); r.servedBy() != "green" {
		t.Fatalf("after broken edit: served by %q, want green (last good)", r.servedBy())
	}
	if errs := tr.routes().SourceErrors; len(errs) != 1 || !strings.Contains(errs[0], "app.yaml") {
		t.Fatalf("source errors = %q, want one naming app.yaml", errs)
	}
}

// TestNoFailedRequestsWhileConfigAndEndpointsChange keeps a steady request
// loop on several keep-alive connections while the Ingress and the
// EndpointSlices change under it; every request must succeed.
func TestNoFailedRequestsWhileConfigAndEndpointsChange(t *testing.T) {
	pods := []*backend{newBackend(t, "pod-a"), newBackend(t, "pod-b"), newBackend(t, "pod-c")}
	tr := start(t, map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": serviceYAML("live", "app", pods[0], pods[1]),
		"app.yaml":     hostIngressYAML("app", "app.example", "app"),
	})

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := tr.client()
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", "http://"+tr.http+"/submit", strings.NewReader("payload"))
				req.Host = "app.example"
				resp, err := c.Do(req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("status %d", resp.StatusCode))
					continue
				}
				ok.Add(1)
			}
		}()
	}
	waitCount := func(n int64) {
		deadline := time.Now().Add(waitTimeout)
		target := ok.Load() + n
		for ok.Load() < target && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCount(50)
	steps := []func(){
		func() { tr.apply("service.yaml", serviceYAML("live", "app", pods[1], pods[2])) },
		func() {
			tr.apply("app.yaml", hostIngressYAML("app", "app.example", "app")+"---\n"+hostIngressYAML("more", "more.example", "app"))
		},
		func() { tr.apply("service.yaml", serviceYAML("live", "app", pods[2])) },
		func() { tr.apply("service.yaml", serviceYAML("live", "app", pods...)) },
		func() { tr.apply("app.yaml", hostIngressYAML("app", "app.example", "app")) },
	}
	for i := range 3 {
		for _, step := range steps {
			step()
			waitCount(20)
		}
		t.Logf("round %d: %d ok, %d failed", i, ok.Load(), failed.Load())
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during changes; first: %v", failed.Load(), failed.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() < 300 {
		t.Fatalf("only %d requests completed; the load loop did not run", ok.Load())
	}
}

// TestConnectionRefusedEndpointIsRetried lists a dead endpoint next to a live
// one: every request must still succeed, POST bodies intact.
func TestConnectionRefusedEndpointIsRetried(t *testing.T) {
	live := newBackend(t, "live")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := &backend{name: "dead", port: ln.Addr().(*net.TCPAddr).Port}
	ln.Close() // connections to this port are now refused
	tr := start(t, map[string]string{
		"class.yaml":   classYAML,
		"service.yaml": serviceYAML("live", "app", dead, live),
		"app.yaml":     hostIngressYAML("app", "app.example", "app"),
	})
	c := tr.client()
	for i := range 10 {
		r := tr.do(c, "POST", "app.example", "/", strings.NewReader(fmt.Sprintf("body-%d", i)))
		if r.status != 200 || r.servedBy() != "live" {
			t.Fatalf("request %d: got %d from %q, want 200 from live", i, r.status, r.servedBy())
		}
	}
}

// TestKeepAliveAndTunnelSurviveChanges holds one keep-alive connection and
// one upgraded (WebSocket-style) tunnel open across several snapshot swaps.
func TestKeepAliveAndTunnelSurviveChanges(t *testing.T) {
	tunnel := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
		// Echo lines until the client closes.
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = rw.WriteString("echo: " + line)
			_ = rw.Flush()
		}
	}))
	t.Cleanup(tunnel.Close)
	ws := &backend{name: "ws", srv: tunnel, port: tunnel.Listener.Addr().(*net.TCPAddr).Port}
	plain := newBackend(t, "plain")
	tr := start(t, map[string]string{
		"class.yaml":    classYAML,
		"services.yaml": serviceYAML("live", "ws", ws) + "---\n" + serviceYAML("live", "plain", plain),
		"app.yaml":      hostIngressYAML("ws", "ws.example", "ws") + "---\n" + hostIngressYAML("plain", "plain.example", "plain"),
	})

	conn, err := net.DialTimeout("tcp", tr.http, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	fmt.Fprint(conn, "GET /chat HTTP/1.1\r\nHost: ws.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}

	keepAlive := tr.client()
	for i := range 5 {
		tr.apply("extra.yaml", hostIngressYAML("extra", fmt.Sprintf("extra-%d.example", i), "plain"))
		fmt.Fprintf(conn, "message %d\n", i)
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("echo: message %d\n", i) {
			t.Fatalf("tunnel after swap %d: %q, %v", i, line, err)
		}
		var reused bool
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+tr.http+"/", nil)
		req.Host = "plain.example"
		if r := tr.send(keepAlive, req); r.servedBy() != "plain" {
			t.Fatalf("keep-alive request after swap %d: got %d from %q", i, r.status, r.servedBy())
		}
		if i > 0 && !reused {
			t.Fatalf("request after swap %d opened a new connection: the keep-alive connection was cut", i)
		}
	}
}
