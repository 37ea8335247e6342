package fastpath

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/listener"
	"github.com/torii-dev/torii/internal/dataplane/proxy"
	"github.com/torii-dev/torii/internal/dataplane/upstream"
	"github.com/torii-dev/torii/internal/metrics"
	"github.com/torii-dev/torii/internal/model"
)

// testTimeout bounds every network wait in these tests.
const testTimeout = 10 * time.Second

// configFrom is the fast path configuration a server builds from its proxy
// (see internal/server).
func configFrom(p *proxy.Proxy, m *metrics.Metrics) Config {
	pc := p.Settings()
	return Config{
		Proxy:                 p,
		ConnectTimeout:        pc.ConnectTimeout,
		ResponseHeaderTimeout: pc.ResponseHeaderTimeout,
		IdleConnTimeout:       pc.IdleConnTimeout,
		UpstreamReadTimeout:   pc.UpstreamReadTimeout,
		UpstreamSendTimeout:   pc.UpstreamSendTimeout,
		ClientBodyTimeout:     pc.ClientBodyTimeout,
		ClientSendTimeout:     pc.ClientSendTimeout,
		MaxIdleConnsPerHost:   pc.MaxIdleConnsPerHost,
		MaxConnectAttempts:    pc.MaxConnectAttempts,
		RejectEncodedSlash:    pc.RejectEncodedSlash,
		ServerHeader:          pc.ServerHeader,
		Metrics:               m,
	}
}

// testRouter sends every host to backend 0, except hosts listed in byHost;
// paths under /nowhere match nothing (404).
type testRouter struct {
	byHost map[string]int
	route  model.Route
}

func (r *testRouter) Match(host, path string) (*model.Route, int, bool) {
	if strings.HasPrefix(path, "/nowhere") {
		return nil, 0, false
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	if idx, ok := r.byHost[strings.ToLower(host)]; ok {
		return &r.route, idx, true
	}
	return &r.route, 0, true
}

// harness is the proxy behind the real listener, with the fast path on or
// off, so that every behaviour can be compared between the two.
type harness struct {
	t       testing.TB
	fastOn  bool
	proxy   *proxy.Proxy
	fast    *Server
	srv     *listener.Server
	reg     *upstream.Registry
	metrics *metrics.Metrics
	rejects sync.Map // reason → *atomic.Int64
}

type harnessOpts struct {
	proxy    proxy.Config
	listener listener.Config
	tls      bool
	// handoff says the test sends only requests the fast path must hand to
	// net/http; both then checks that it did.
	handoff bool
}

func newHarness(t testing.TB, fastOn bool, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, fastOn: fastOn, metrics: metrics.New(), reg: upstream.NewRegistry()}
	o.proxy.Metrics = h.metrics
	h.proxy = proxy.New(o.proxy)
	lc := o.listener
	lc.Handler = h.proxy
	lc.HTTPAddr = "127.0.0.1:0"
	if o.tls {
		lc.HTTPAddr = ""
		lc.HTTPSAddr = "127.0.0.1:0"
		lc.TLSConfig = testTLSConfig(t)
	}
	if lc.DrainTimeout == 0 {
		lc.DrainTimeout = 2 * time.Second
	}
	lc.OnReject = func(reason string) {
		v, _ := h.rejects.LoadOrStore(reason, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	if fastOn {
		h.fast = New(configFrom(h.proxy, h.metrics))
		lc.FastPath = h.fast
	}
	srv, err := listener.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("listener did not stop")
		}
		h.proxy.Close()
		if h.fast != nil {
			h.fast.Close()
		}
	})
	return h
}

func (h *harness) rejected(reason string) int64 {
	if v, ok := h.rejects.Load(reason); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// swap routes every request to the given backends' first (or by host).
func (h *harness) swap(byHost map[string]int, backends ...model.Backend) []*upstream.Backend {
	handles := h.reg.Sync(backends)
	h.proxy.Swap(&testRouter{byHost: byHost}, handles)
	return handles
}

func (h *harness) addr() string {
	if a := h.srv.HTTPAddr(); a != nil {
		return a.String()
	}
	return h.srv.HTTPSAddr().String()
}

func (h *harness) port() string {
	_, p, _ := net.SplitHostPort(h.addr())
	return p
}

// both runs f against a harness with the fast path off and one with it on.
func both(t *testing.T, o harnessOpts, f func(t *testing.T, h *harness)) {
	for _, on := range []bool{false, true} {
		name := "nethttp"
		if on {
			name = "fastpath"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, on, o)
			f(t, h)
			if on && !t.Failed() {
				// Passing the fastpath run must mean the fast path served:
				// a fast path that handed everything to net/http would
				// otherwise pass every test here.
				served, handedOff := h.srv.FastPathStats()
				switch {
				case o.handoff && (served == 0 || handedOff != served):
					t.Errorf("the fast path handed %d of its %d connections to net/http, want all", handedOff, served)
				case !o.handoff && served == handedOff:
					t.Errorf("the fast path kept none of its %d connections (%d handed to net/http)", served, handedOff)
				}
			}
		})
	}
}

func backendOf(t testing.TB, id string, addrs ...string) model.Backend {
	t.Helper()
	b := model.Backend{ID: id}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("split %q: %v", a, err)
		}
		n, err := strconv.Atoi(port)
		if err != nil {
			t.Fatal(err)
		}
		b.Endpoints = append(b.Endpoints, model.Endpoint{Address: host, Port: int32(n)})
	}
	return b
}

// recorded is what a recording backend saw of one request.
type recorded struct {
	method, uri, host, proto string
	header                   http.Header
	body                     string
	contentLength            int64
	te                       []string
	trailer                  http.Header
	bodyErr                  error
}

// recorder is an httptest backend that records requests and answers with
// its name, or with respond.
type recorder struct {
	name    string
	srv     *httptest.Server
	reqs    chan recorded
	hits    atomic.Int64
	conns   atomic.Int64
	respond func(w http.ResponseWriter, r *http.Request)
}

func newRecorder(t *testing.T, name string) *recorder {
	t.Helper()
	rec := &recorder{name: name, reqs: make(chan recorded, 1024)}
	rec.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.hits.Add(1)
		body, err := io.ReadAll(r.Body)
		rec.reqs <- recorded{
			method: r.Method, uri: r.RequestURI, host: r.Host, proto: r.Proto, header: r.Header.Clone(),
			body: string(body), contentLength: r.ContentLength, te: r.TransferEncoding, trailer: r.Trailer,
			bodyErr: err,
		}
		if rec.respond != nil {
			rec.respond(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(rec.name)))
		io.WriteString(w, rec.name)
	}))
	rec.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			rec.conns.Add(1)
		}
	}
	rec.srv.Start()
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) addr() string { return rec.srv.Listener.Addr().String() }

func (rec *recorder) next(t *testing.T) recorded {
	t.Helper()
	select {
	case r := <-rec.reqs:
		return r
	case <-time.After(testTimeout):
		t.Fatalf("backend %s: no request within %v", rec.name, testTimeout)
		return recorded{}
	}
}

// tcpBackend is a raw TCP backend on 127.0.0.1: it runs serve on each
// connection it accepts, on a goroutine of its own, with the connection's
// 1-based index, and closes the connection when serve returns. conns counts
// the connections accepted, open those still being served. At cleanup it
// closes the listener and every open connection, and waits for all its
// goroutines.
type tcpBackend struct {
	ln    net.Listener
	conns atomic.Int64
	open  atomic.Int64

	wg     sync.WaitGroup
	mu     sync.Mutex
	live   map[net.Conn]struct{}
	closed bool
}

func newTCPBackend(t testing.TB, serve func(n int64, c net.Conn)) *tcpBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tb := &tcpBackend{ln: ln, live: map[net.Conn]struct{}{}}
	tb.wg.Add(1)
	go func() {
		defer tb.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tb.mu.Lock()
			if tb.closed {
				tb.mu.Unlock()
				c.Close()
				return
			}
			tb.live[c] = struct{}{}
			tb.mu.Unlock()
			n := tb.conns.Add(1)
			tb.open.Add(1)
			tb.wg.Add(1)
			go func() {
				defer tb.wg.Done()
				defer func() {
					tb.mu.Lock()
					delete(tb.live, c)
					tb.mu.Unlock()
					c.Close()
					tb.open.Add(-1)
				}()
				serve(n, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		tb.mu.Lock()
		tb.closed = true
		for c := range tb.live {
			c.Close()
		}
		tb.mu.Unlock()
		tb.wg.Wait()
	})
	return tb
}

func (tb *tcpBackend) addr() string { return tb.ln.Addr().String() }

// rawBackend is a TCP backend that answers each request head (and
// Content-Length body) with whatever answer returns, for responses net/http
// would never write. Connections accepted are counted.
type rawBackend struct {
	*tcpBackend
	reqs atomic.Int64
}

func newRawBackend(t testing.TB, answer func(n int64, head string) string) *rawBackend {
	t.Helper()
	rb := &rawBackend{}
	rb.tcpBackend = newTCPBackend(t, func(_ int64, c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			n := rb.reqs.Add(1)
			var head strings.Builder
			req.Header.Write(&head)
			out := answer(n, req.Method+" "+req.RequestURI+"\r\n"+head.String())
			if out == "" {
				return // close without answering
			}
			out, closeAfter := strings.CutSuffix(out, "\x00close")
			if _, err := io.WriteString(c, out); err != nil {
				return
			}
			if closeAfter {
				return
			}
		}
	})
	return rb
}

// rawConn is a client connection for raw requests.
type rawConn struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// response reads one response with its whole body.
func (c *rawConn) response(method string) (*http.Response, string) {
	c.t.Helper()
	res, err := c.tryResponse(method)
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (c *rawConn) tryResponse(method string) (*http.Response, error) {
	res, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body = io.NopCloser(strings.NewReader(string(b)))
	return res, err
}

func (c *rawConn) roundTrip(method, raw string) (*http.Response, string) {
	c.t.Helper()
	c.send(raw)
	return c.response(method)
}

// closed reports whether the server closed the connection (read EOF or a
// reset within a short wait, rather than a timeout).
func (c *rawConn) closed() bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		_ = c.conn.SetReadDeadline(time.Now().Add(testTimeout))
		return false
	}
	if err == nil {
		_ = c.br.UnreadByte()
	}
	return err != nil
}

func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	cfg := srv.TLS.Clone()
	srv.Close()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	return cfg
}

func get(host, path string) string {
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
}

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }

func registrySync(backends ...model.Backend) []*upstream.Backend {
	return upstream.NewRegistry().Sync(backends)
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
