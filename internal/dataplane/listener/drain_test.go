package listener

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestGoAwayRebroadcastDuringHTTP1Drain: an HTTP/2 connection that reaches
// the HTTP/2 server only after the drain's first GOAWAY must hear one while
// HTTP/1 requests are still finishing, not once they are done.
func TestGoAwayRebroadcastDuringHTTP1Drain(t *testing.T) {
	holding := make(chan struct{})
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	ts := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(holding)
			<-release
		}
		io.WriteString(w, "ok")
	})})
	addr := ts.HTTPAddr().String()

	// The second HTTP/2 connection is held between being accepted and
	// reaching the HTTP/2 server.
	var n atomic.Int32
	entered, gate := make(chan struct{}), make(chan struct{})
	testHookServeHTTP2 = func() {
		if n.Add(1) == 2 {
			close(entered)
			<-gate
		}
	}
	defer func() { testHookServeHTTP2 = nil }()

	a := dialH2C(t, addr)
	a.request(t, 1)
	b := dialH2C(t, addr)
	waitClosed(t, entered, "the second HTTP/2 connection to be accepted")

	h1, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	h1.SetDeadline(time.Now().Add(ioTimeout))
	io.WriteString(h1, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
	waitClosed(t, holding, "the HTTP/1 request")

	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	a.waitGoAway(t) // the first broadcast
	close(gate)
	b.waitGoAway(t) // a later one, while /hold is still in flight
	select {
	case err := <-stopped:
		t.Fatalf("drain ended (%v) with a request in flight", err)
	default:
	}
	releaseOnce.Do(func() { close(release) })
	if res, err := http.ReadResponse(bufio.NewReader(h1), nil); err != nil || bodyOf(res) != "ok" {
		t.Fatalf("in-flight HTTP/1 request: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

type h2cConn struct {
	c  net.Conn
	fr *http2.Framer
}

func dialH2C(t *testing.T, addr string) *h2cConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return &h2cConn{c: c, fr: fr}
}

// request sends GET / on stream id and waits for the response headers.
func (h *h2cConn) request(t *testing.T, id uint32) {
	t.Helper()
	// An HPACK block of indexed fields: :method GET, :scheme http, :path /,
	// and a literal :authority x.
	block := []byte{0x82, 0x86, 0x84, 0x41, 0x01, 'x'}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	h.readUntil(t, func(f http2.Frame) bool {
		hf, ok := f.(*http2.HeadersFrame)
		return ok && hf.StreamID == id
	}, "response headers")
}

func (h *h2cConn) waitGoAway(t *testing.T) {
	t.Helper()
	h.readUntil(t, func(f http2.Frame) bool {
		_, ok := f.(*http2.GoAwayFrame)
		return ok
	}, "GOAWAY")
}

func (h *h2cConn) readUntil(t *testing.T, match func(http2.Frame) bool, what string) {
	t.Helper()
	for range 1000 {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			h.fr.WriteSettingsAck()
		}
		if match(f) {
			return
		}
	}
	t.Fatalf("no %s within 1000 frames", what)
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(ioTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestForcedDrainDoesNotLinger: connections whose requests were refused
// linger on close, to let the client read the 400. When the drain gives up
// on them, closing must not take that long for each in turn (net/http
// closes them one by one under its server lock).
func TestForcedDrainDoesNotLinger(t *testing.T) {
	const conns = 8
	var stuck sync.WaitGroup
	stuck.Add(conns)
	release := make(chan struct{})
	defer close(release)
	ts := startServer(t, Config{DrainTimeout: 100 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // fails on the malformed chunk
		stuck.Done()
		<-release
	})})
	for range conns {
		c, err := net.DialTimeout("tcp", ts.HTTPAddr().String(), ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A malformed body makes the guard fail the connection and mark
		// it for a lingering close; the client then stays silent.
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
	}
	stuck.Wait()
	start := time.Now()
	if err := ts.stop(); err == nil {
		t.Fatal("drain reported clean with stuck requests")
	}
	// Lingering closes one after another would take conns*lingerTimeout.
	if d := time.Since(start); d > conns*lingerTimeout/2 {
		t.Fatalf("forced drain took %v", d)
	}
}

// TestPipelinedHeadDoesNotTimeOutInFlightRequest: the start of a pipelined
// request read ahead while the previous one is served must not run the
// header timeout against the request in flight (its failure would cancel
// that request).
func TestPipelinedHeadDoesNotTimeOutInFlightRequest(t *testing.T) {
	const rht = 200 * time.Millisecond
	ts := startServer(t, Config{ReadHeaderTimeout: rht, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * rht):
			io.WriteString(w, "done")
		case <-r.Context().Done():
			// A proxy gives up here.
		}
	})})
	raw, closed := rawExchange(t, ts.HTTPAddr(), "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HT")
	if !closed {
		t.Fatal("incomplete pipelined head never timed out")
	}
	resps := responses(t, raw)
	if len(resps) != 1 || bodyOf(resps[0]) != "done" {
		t.Fatalf("got %q", raw)
	}
}

// TestWriteDeadlineLiftedBetweenRequests: a handler's write deadline (the
// proxy sets one per response) must not still apply, long expired, to the
// next response on the connection. net/http lifts it after each response;
// this guards that the guard connection passes that on.
func TestWriteDeadlineLiftedBetweenRequests(t *testing.T) {
	ts := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deadline" {
			http.NewResponseController(w).SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		}
		io.WriteString(w, r.URL.Path)
	})})
	c, err := net.DialTimeout("tcp", ts.HTTPAddr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	br := bufio.NewReader(c)
	for i, path := range []string{"/deadline", "/after"} {
		if i > 0 {
			time.Sleep(700 * time.Millisecond) // past the first deadline
		}
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if got := bodyOf(res); got != path {
			t.Fatalf("%s: body %q", path, got)
		}
	}
}

func TestOnReject(t *testing.T) {
	var mu sync.Mutex
	var got []string
	ts := startServer(t, Config{MaxHeaderBytes: 1024, OnReject: func(reason string) {
		mu.Lock()
		got = append(got, reason)
		mu.Unlock()
	}})
	for _, tt := range []struct{ req, want string }{
		{"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", RejectFraming},
		{"GET / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", RejectFraming},
		{"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", RejectMalformedHead},
		{"GET / HTTP/1.1\r\nHost : x\r\n\r\n", RejectMalformedHead},
		{"GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 8000) + "\r\n\r\n", RejectHeadTooLarge},
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", RejectBadChunked},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		if _, closed := rawExchange(t, ts.HTTPAddr(), tt.req); !closed {
			t.Fatalf("%q: connection left open", tt.req)
		}
		mu.Lock()
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("%.40q: reasons %q, want [%s]", tt.req, got, tt.want)
		}
		mu.Unlock()
	}
	// Reporting allocates nothing.
	g, _ := newTestGuard(nil, nil, 1024)
	var count int
	g.raw.srv.cfg.OnReject = func(string) { count++ }
	if n := testing.AllocsPerRun(100, func() { g.reject(RejectFraming) }); n != 0 {
		t.Errorf("reject allocated %v times", n)
	}
}

// TestCloseAfterServeDoesNotLinger: net/http's connection goroutines may
// close their connections after Serve has returned (Shutdown closes idle
// connections itself and does not wait for their goroutines; hijacked ones
// belong to their handlers). Such a close must not start a lingering close
// that Serve no longer waits for: it closes at once.
func TestCloseAfterServeDoesNotLinger(t *testing.T) {
	s, err := New(Config{HTTPAddr: "127.0.0.1:0", Handler: http.NotFoundHandler()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Serve(ctx); err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	defer client.Close()
	raw := &trackedConn{Conn: server, srv: s}
	g := newGuard(raw, raw, &s.pool, s.maxHead, 0)
	g.linger.Store(true) // as after a refused request
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	// A lingering close would read (and discard) this write.
	client.SetWriteDeadline(time.Now().Add(lingerTimeout / 2))
	if _, err := client.Write([]byte("more body")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write after close: %v, want %v", err, io.ErrClosedPipe)
	}
}
