package proxy

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/torii-dev/torii/internal/model"
)

func TestSwapUnderConcurrentLoad(t *testing.T) {
	a, b := newRecorder(t, "a"), newRecorder(t, "b")
	h := newHarness(t, Config{})
	tables := [2]struct {
		router   Router
		backends []model.Backend
	}{
		{newRouter(prefix("/", 0)), []model.Backend{backendOf(t, "ns/a:80", a.addr())}},
		{newRouter(prefix("/", 1)), []model.Backend{backendOf(t, "ns/a:80", a.addr()), backendOf(t, "ns/b:80", b.addr())}},
	}
	h.swap(tables[0].router, tables[0].backends...)
	// Recorders buffer what they see; drain so they never block.
	stop := make(chan struct{})
	defer close(stop)
	for _, rec := range []*recorder{a, b} {
		go func() {
			for {
				select {
				case <-rec.reqs:
				case <-stop:
					return
				}
			}
		}()
	}

	const workers, perWorker = 8, 150
	var failures atomic.Int64
	var served sync.Map
	var wg sync.WaitGroup
	client := h.client()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				res, err := client.Get(h.front.URL + "/")
				if err != nil {
					failures.Add(1)
					continue
				}
				body, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusOK {
					failures.Add(1)
					continue
				}
				served.Store(string(body), true)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	swaps := 0
	for running := true; running && swaps < 100000; swaps++ {
		select {
		case <-done:
			running = false
		default:
			tb := tables[swaps%2]
			h.swap(tb.router, tb.backends...)
		}
	}
	<-done
	if n := failures.Load(); n != 0 {
		t.Fatalf("%d of %d requests failed across %d swaps", n, workers*perWorker, swaps)
	}
	if _, ok := served.Load("a"); !ok {
		t.Errorf("no request served by a")
	}
	if _, ok := served.Load("b"); !ok {
		t.Errorf("no request served by b")
	}
}

func TestKeepAliveConnectionSurvivesSwap(t *testing.T) {
	a, b := newRecorder(t, "a"), newRecorder(t, "b")
	var conns atomic.Int64
	h := newHarnessWith(t, Config{}, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
	})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/a:80", a.addr()))
	c := dialRaw(t, h.addr())
	if res, body := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); res.StatusCode != 200 || body != "a" {
		t.Fatalf("before swap: %d %q", res.StatusCode, body)
	}
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", b.addr()))
	if res, body := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); res.StatusCode != 200 || body != "b" {
		t.Fatalf("after swap, same connection: %d %q", res.StatusCode, body)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("front saw %d connections, want 1", n)
	}
}

func TestEndpointUpdateWithoutSwap(t *testing.T) {
	a, b := newRecorder(t, "a"), newRecorder(t, "b")
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", a.addr()))
	if _, body := h.get("/"); body != "a" {
		t.Fatalf("before update: %q", body)
	}
	if !h.reg.SetEndpoints("ns/x:80", backendOf(t, "ns/x:80", b.addr()).Endpoints) {
		t.Fatal("SetEndpoints: unknown backend")
	}
	if _, body := h.get("/"); body != "b" {
		t.Fatalf("after endpoint update: %q", body)
	}
}
