package fastpath

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/listener"
	"github.com/torii-dev/torii/internal/dataplane/proxy"
	"github.com/torii-dev/torii/internal/metrics"
	"github.com/torii-dev/torii/internal/model"
)

// ExternalName backends are connected to through the proxy's address check:
// loopback is refused (502) unless allowed, in both paths.
func TestExternalNameLoopbackRefused(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run("allow="+strconv.FormatBool(allow), func(t *testing.T) {
			both(t, harnessOpts{proxy: proxy.Config{AllowExternalNameLoopback: allow}}, func(t *testing.T, h *harness) {
				rec := newRecorder(t, "local")
				_, port, _ := net.SplitHostPort(rec.addr())
				n, _ := strconv.Atoi(port)
				h.swap(nil, model.Backend{ID: "ns/ext:80", ExternalName: "localhost",
					Endpoints: []model.Endpoint{{Address: "localhost", Port: int32(n)}}})
				res, body := dialRaw(t, h.addr()).roundTrip("GET", get("a", "/"))
				switch {
				case allow && (res.StatusCode != 200 || body != "local"):
					t.Fatalf("allowed: %d %q", res.StatusCode, body)
				case !allow && (res.StatusCode != 502 || rec.hits.Load() != 0):
					t.Fatalf("refused: %d %q, %d hits", res.StatusCode, body, rec.hits.Load())
				}
			})
		})
	}
}

// serveUntil runs a listener with the fast path until the returned stop
// function is called; stop returns Serve's error.
func serveUntil(t *testing.T, drain time.Duration) (*harness, func() error) {
	t.Helper()
	h := &harness{t: t, fastOn: true, metrics: metrics.New()}
	h.proxy = proxy.New(proxy.Config{Metrics: h.metrics})
	h.fast = New(configFrom(h.proxy, h.metrics))
	srv, err := listener.New(listener.Config{HTTPAddr: "127.0.0.1:0", Handler: h.proxy, FastPath: h.fast, DrainTimeout: drain})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { h.proxy.Close(); h.fast.Close() })
	return h, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(drain + testTimeout):
			t.Fatal("Serve did not return")
			return nil
		}
	}
}

// At shutdown, idle fast-path connections close at once, and a request in
// flight completes, with Connection: close, before its connection closes.
func TestDrain(t *testing.T) {
	h, stop := serveUntil(t, 5*time.Second)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	rec := newRecorder(t, "b")
	rec.respond = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "done")
	}
	h.reg = nil
	h.proxy.Swap(&testRouter{}, registrySync(backendOf(t, "ns/b:80", rec.addr())))

	idle := dialRaw(t, h.addr())
	if res, _ := idle.roundTrip("GET", get("a", "/")); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	busy := dialRaw(t, h.addr())
	busy.send(get("a", "/slow"))
	<-entered

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	if !idle.closedWithin(2 * time.Second) {
		t.Fatal("idle keep-alive connection not closed by the drain")
	}
	once.Do(func() { close(release) })
	res, body := busy.response("GET")
	if res.StatusCode != 200 || body != "done" || !res.Close {
		t.Fatalf("in-flight request: %d %q close=%v", res.StatusCode, body, res.Close)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func (c *rawConn) closedWithin(d time.Duration) bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	_, err := c.br.ReadByte()
	var ne net.Error
	return err != nil && !(errorsAs(err, &ne) && ne.Timeout())
}

// The pool keeps idle connections per endpoint up to its bound, reuses the
// most recent first, and closes those idle too long.
func TestPool(t *testing.T) {
	var d net.Dialer
	p := newPool(d, d, 2, time.Hour)
	defer p.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	addr := ln.Addr().String()
	var conns []*upConn
	for range 3 {
		u, err := p.get(addr, false, false)
		if err != nil || u.reused {
			t.Fatalf("get: %v reused=%v", err, u != nil && u.reused)
		}
		conns = append(conns, u)
	}
	for _, u := range conns {
		p.put(u)
	}
	hp := p.host(addr, false)
	if len(hp.idle) != 2 {
		t.Fatalf("%d idle connections kept, want the bound of 2", len(hp.idle))
	}
	u, _ := p.get(addr, false, false)
	if !u.reused || u != conns[1] {
		t.Fatal("the most recently returned connection was not reused first")
	}
	p.put(u)
	p.sweep(monoNow() + 1)
	if len(hp.idle) != 0 || !hp.dead {
		t.Fatalf("sweep left %d connections, dead=%v", len(hp.idle), hp.dead)
	}
	if p.host(addr, false) == hp {
		t.Fatal("a swept endpoint was not forgotten")
	}
	if p.host(addr, true) == p.host(addr, false) {
		t.Fatal("ExternalName and EndpointSlice connections share a pool")
	}
}

// Over TLS, a connection the fast path served and then handed to net/http
// still counts as TLS there (X-Forwarded-Proto: https).
func TestTLSHandoff(t *testing.T) {
	both(t, harnessOpts{tls: true, handoff: true}, func(t *testing.T, h *harness) {
		rec := newRecorder(t, "b")
		h.swap(nil, backendOf(t, "ns/b:80", rec.addr()))
		tc, err := tls.Dial("tcp", h.addr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		_ = tc.SetDeadline(time.Now().Add(testTimeout))
		c := &rawConn{t: t, conn: tc, br: bufio.NewReader(tc)}
		// Served by the fast path, then one it hands off (HTTP/1.0 with
		// keep-alive), then one more on net/http.
		for i, req := range []string{
			get("a", "/1"),
			"GET /2 HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
			get("a", "/3"),
		} {
			res, body := c.roundTrip("GET", req)
			if res.StatusCode != 200 || body != "b" {
				t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
			}
			if r := rec.next(t); r.header.Get("X-Forwarded-Proto") != "https" {
				t.Fatalf("request %d: X-Forwarded-Proto %q", i, r.header.Get("X-Forwarded-Proto"))
			}
		}
	})
}
