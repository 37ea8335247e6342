package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/fastpath"
	"github.com/torii-dev/torii/internal/dataplane/listener"
	"github.com/torii-dev/torii/internal/dataplane/upstream"
	"github.com/torii-dev/torii/internal/model"
)

// testTimeout bounds every network wait in these tests.
const testTimeout = 10 * time.Second

// fakeRoute is one entry of fakeRouter.
type fakeRoute struct {
	host    string // "" matches every host
	path    string
	exact   bool
	backend int
	route   model.Route
}

// fakeRouter implements Router with Ingress semantics that are good enough
// for these tests: host equality after lower-casing and dropping the port,
// Exact or element-wise Prefix paths, the longest path winning. It records
// the last host it was asked about, as the proxy passed it.
type fakeRouter struct {
	routes   []fakeRoute
	lastHost atomic.Pointer[string]
}

func newRouter(routes ...fakeRoute) *fakeRouter {
	r := &fakeRouter{routes: routes}
	for i := range r.routes {
		r.routes[i].route = model.Route{ID: fmt.Sprintf("route/%d", i), Path: r.routes[i].path}
	}
	return r
}

func prefix(path string, backend int) fakeRoute {
	return fakeRoute{path: path, backend: backend}
}

func exact(path string, backend int) fakeRoute {
	return fakeRoute{path: path, exact: true, backend: backend}
}

func (f *fakeRouter) Match(host, path string) (*model.Route, int, bool) {
	sent := host
	f.lastHost.Store(&sent)
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	host = strings.ToLower(host)
	best := -1
	for i := range f.routes {
		rt := &f.routes[i]
		if rt.host != "" && rt.host != host {
			continue
		}
		if rt.exact {
			if path != rt.path {
				continue
			}
		} else {
			p := strings.TrimSuffix(rt.path, "/")
			if path != p && !strings.HasPrefix(path, p+"/") && p != "" {
				continue
			}
		}
		if best < 0 || len(rt.path) > len(f.routes[best].path) ||
			len(rt.path) == len(f.routes[best].path) && rt.exact {
			best = i
		}
	}
	if best < 0 {
		return nil, 0, false
	}
	return &f.routes[best].route, f.routes[best].backend, true
}

// harness is a Proxy behind a real loopback listener, with a registry for
// its backends.
type harness struct {
	t     *testing.T
	proxy *Proxy
	front *httptest.Server
	reg   *upstream.Registry
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	return newHarnessWith(t, cfg, nil)
}

// newHarnessWith is newHarness with a hook that configures the front server
// before it starts.
func newHarnessWith(t *testing.T, cfg Config, configure func(*http.Server)) *harness {
	t.Helper()
	h := &harness{t: t, proxy: New(cfg), reg: upstream.NewRegistry()}
	h.front = httptest.NewUnstartedServer(h.proxy)
	if configure != nil {
		configure(h.front.Config)
	}
	h.front.Start()
	t.Cleanup(func() {
		h.front.Close()
		h.proxy.Close()
	})
	return h
}

// swap installs router with backends built from the given endpoint lists.
func (h *harness) swap(router Router, backends ...model.Backend) []*upstream.Backend {
	handles := h.reg.Sync(backends)
	h.proxy.Swap(router, handles)
	return handles
}

// addr is the front listener's "host:port".
func (h *harness) addr() string { return h.front.Listener.Addr().String() }

func (h *harness) port() string {
	_, p, _ := net.SplitHostPort(h.addr())
	return p
}

// client returns an HTTP client for the front with a bounded timeout.
func (h *harness) client() *http.Client {
	c := h.front.Client()
	c.Timeout = testTimeout
	return c
}

// get performs GET path on the front and returns status and body.
func (h *harness) get(path string) (int, string) {
	h.t.Helper()
	res, err := h.client().Get(h.front.URL + path)
	if err != nil {
		h.t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatalf("GET %s: read body: %v", path, err)
	}
	return res.StatusCode, string(b)
}

// backendOf makes a model backend whose endpoints are the given addresses.
func backendOf(t *testing.T, id string, addrs ...string) model.Backend {
	t.Helper()
	b := model.Backend{ID: id}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("split %q: %v", a, err)
		}
		n, err := strconv.Atoi(port)
		if err != nil {
			t.Fatalf("port %q: %v", port, err)
		}
		b.Endpoints = append(b.Endpoints, model.Endpoint{Address: host, Port: int32(n)})
	}
	return b
}

// serverAddr is the listener address of a test server.
func serverAddr(s *httptest.Server) string { return s.Listener.Addr().String() }

// closedAddr returns a loopback address nothing listens on, so connects to
// it are refused.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

// recorded is what a recording backend saw of one request.
type recorded struct {
	method        string
	uri           string
	host          string
	header        http.Header
	body          []byte
	contentLength int64
	te            []string
}

// recorder is a backend that records every request and answers 200 with
// its name as the body.
type recorder struct {
	name string
	srv  *httptest.Server
	reqs chan recorded
	hits atomic.Int64
	// respond, if set, writes the response instead of the default.
	respond func(w http.ResponseWriter, r *http.Request)
}

func newRecorder(t *testing.T, name string) *recorder {
	t.Helper()
	rec := &recorder{name: name, reqs: make(chan recorded, 1024)}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		rec.reqs <- recorded{
			method: r.Method, uri: r.RequestURI, host: r.Host, header: r.Header.Clone(),
			body: body, contentLength: r.ContentLength, te: r.TransferEncoding,
		}
		if rec.respond != nil {
			rec.respond(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(rec.name)))
		io.WriteString(w, rec.name)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) addr() string { return serverAddr(rec.srv) }

// next returns the next recorded request, failing the test after a bound.
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

// rawConn is a client connection that writes raw request bytes and parses
// responses, for tests where the wire format matters.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if err := c.SetDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, conn: c, br: bufio.NewReader(c)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// response reads one response to a request with the given method and its
// whole body.
func (c *rawConn) response(method string) (*http.Response, string) {
	c.t.Helper()
	res, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return res, string(b)
}

// roundTrip sends a raw request and reads its response.
func (c *rawConn) roundTrip(method, raw string) (*http.Response, string) {
	c.t.Helper()
	c.send(raw)
	return c.response(method)
}

// rawGet sends "GET target" with the given Host on a new connection.
func rawGet(t *testing.T, addr, target, host string) (*http.Response, string) {
	t.Helper()
	c := dialRaw(t, addr)
	return c.roundTrip("GET", "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
}

// newTestRegistry syncs backends into a fresh registry and returns the
// handles.
func newTestRegistry(t *testing.T, backends ...model.Backend) []*upstream.Backend {
	t.Helper()
	return upstream.NewRegistry().Sync(backends)
}

// wireHarness is a Proxy behind the real client-facing listener, with its
// request-smuggling guard, for tests where what the client receives on the
// wire depends on listener and proxy together.
type wireHarness struct {
	t     *testing.T
	proxy *Proxy
	srv   *listener.Server
	reg   *upstream.Registry
	// fastPath: HTTP/1 goes through the fast path
	// (TORII_TEST_HTTP1_FAST_PATH=1).
	fastPath bool
}

func newWireHarness(t *testing.T, cfg Config) *wireHarness {
	t.Helper()
	h := &wireHarness{t: t, proxy: New(cfg), reg: upstream.NewRegistry()}
	lc := listener.Config{HTTPAddr: "127.0.0.1:0", Handler: h.proxy, DrainTimeout: time.Second}
	if os.Getenv("TORII_TEST_HTTP1_FAST_PATH") == "1" {
		// The suite can run against the HTTP/1 fast path, which shares
		// this proxy's routing table and settings.
		fp := fastpath.New(fastPathConfig(h.proxy))
		t.Cleanup(fp.Close)
		lc.FastPath = fp
		h.fastPath = true
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
	})
	return h
}

// fastPathConfig is the fast path configuration a server builds from its
// proxy (see internal/server).
func fastPathConfig(p *Proxy) fastpath.Config {
	c := p.Settings()
	return fastpath.Config{
		Proxy:                 p,
		ConnectTimeout:        c.ConnectTimeout,
		ResponseHeaderTimeout: c.ResponseHeaderTimeout,
		IdleConnTimeout:       c.IdleConnTimeout,
		UpstreamReadTimeout:   c.UpstreamReadTimeout,
		UpstreamSendTimeout:   c.UpstreamSendTimeout,
		ClientBodyTimeout:     c.ClientBodyTimeout,
		ClientSendTimeout:     c.ClientSendTimeout,
		MaxIdleConnsPerHost:   c.MaxIdleConnsPerHost,
		MaxConnectAttempts:    c.MaxConnectAttempts,
		RejectEncodedSlash:    c.RejectEncodedSlash,
		ServerHeader:          c.ServerHeader,
		Metrics:               c.Metrics,
		Logger:                c.Logger,
	}
}

func (h *wireHarness) swap(router Router, backends ...model.Backend) {
	h.proxy.Swap(router, h.reg.Sync(backends))
}

func (h *wireHarness) addr() string { return h.srv.HTTPAddr().String() }

// readToClose reads from c until the peer closes the connection, failing
// the test if that takes longer than testTimeout. err is the error that
// ended reading: nil for a clean close.
func readToClose(t *testing.T, c *rawConn) (got string, err error) {
	t.Helper()
	b, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection not closed within %v; read %q", testTimeout, b)
	}
	return string(b), err
}
