package listener

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ioTimeout bounds every network wait in these tests; a hang fails the test
// instead of stalling it.
const ioTimeout = 10 * time.Second

// testServer is a running Server and what its handler saw.
type testServer struct {
	*Server
	mu    sync.Mutex
	paths []string // request paths in the order the handler saw them
	stop  func() error
}

func (ts *testServer) seen() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.paths...)
}

// echoHandler answers with the request's method, path, body and trailers.
func (ts *testServer) echoHandler(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	ts.paths = append(ts.paths, r.URL.Path)
	ts.mu.Unlock()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %s body=%q", r.Method, r.URL.Path, body)
	if v := r.Trailer.Get("X-Sum"); v != "" {
		fmt.Fprintf(w, " sum=%s", v)
	}
	if up := r.Header.Get("Upgrade"); up != "" {
		fmt.Fprintf(w, " upgrade=%s", up)
	}
}

// startServer starts a Server on loopback. A nil handler means echoHandler.
// The server is stopped at the end of the test.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ts := &testServer{}
	if cfg.Handler == nil {
		cfg.Handler = http.HandlerFunc(ts.echoHandler)
	}
	if cfg.HTTPAddr == "" && cfg.HTTPSAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:0"
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	var once sync.Once
	var serveErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serveErr = <-done:
			case <-time.After(cfg.DrainTimeout + ioTimeout):
				serveErr = errors.New("Serve did not return")
			}
		})
		return serveErr
	}
	t.Cleanup(func() {
		// A test that stopped the server itself has checked the result.
		if stoppedByTest := ctx.Err() != nil; !stoppedByTest {
			if err := ts.stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
	})
	return ts
}

// rawExchange writes req on a new connection and reads until the server
// closes it. closed reports whether it did so within ioTimeout.
func rawExchange(t *testing.T, addr net.Addr, req string) (resp string, closed bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	return string(b), err == nil
}

// responses parses the HTTP/1.1 responses in raw.
func responses(t *testing.T, raw string) []*http.Response {
	t.Helper()
	var out []*http.Response
	br := bufio.NewReader(strings.NewReader(raw))
	for {
		if _, err := br.Peek(1); err != nil {
			return out
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("parse response %d: %v\nraw: %q", len(out), err, raw)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read response %d body: %v", len(out), err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestRejectsAmbiguousFraming(t *testing.T) {
	ts := startServer(t, Config{})
	const host = "Host: x\r\n"
	tests := []struct{ name, req string }{
		{"CL and TE", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n" + host + "\r\n"},
		{"TE gzip", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n"},
		{"TE gzip, chunked", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
		{"TE on HTTP/1.0", "POST /a HTTP/1.0\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"two CLs", "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 30\r\n\r\nhello"},
		{"obs-fold", "GET /a HTTP/1.1\r\n" + host + "X-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n"},
		{"space before colon", "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n"},
		{"non-token name", "GET /a HTTP/1.1\r\n" + host + "X[1]: a\r\n\r\n"},
		{"NUL", "GET /a HTTP/1.1\r\n" + host + "X-A: a\x00b\r\n\r\n"},
		{"bare CR", "GET /a HTTP/1.1\r\n" + host + "X-A: a\rb\r\n\r\n"},
		{"PRI mid-stream", "GET /a HTTP/1.1\r\n" + host + "\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(ts.seen())
			raw, closed := rawExchange(t, ts.HTTPAddr(), tt.req)
			if !closed {
				t.Fatalf("connection left open; got %q", raw)
			}
			resps := responses(t, raw)
			last := resps[len(resps)-1]
			if !strings.HasPrefix(raw[strings.LastIndex(raw, "HTTP/1.1 "):], "HTTP/1.1 400 Bad Request\r\n") || !last.Close {
				t.Fatalf("want a final 400 with Connection: close, got %q", raw)
			}
			for _, p := range ts.seen()[before:] {
				if p != "/a" {
					t.Fatalf("handler saw %q", p)
				}
			}
			if tt.name != "PRI mid-stream" && len(ts.seen()) != before {
				t.Fatalf("handler saw the refused request")
			}
		})
	}
}

func TestRejectAfterPipelinedRequestKeepsOrder(t *testing.T) {
	ts := startServer(t, Config{})
	req := "GET /first HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	raw, closed := rawExchange(t, ts.HTTPAddr(), req)
	if !closed {
		t.Fatal("connection left open")
	}
	resps := responses(t, raw)
	if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != 400 {
		t.Fatalf("got %q", raw)
	}
	if got := bodyOf(resps[0]); got != `GET /first body=""` {
		t.Fatalf("first body %q", got)
	}
}

func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	ts := startServer(t, Config{})
	req := "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"PUT /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n" +
		"GET /4 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	raw, closed := rawExchange(t, ts.HTTPAddr(), req)
	if !closed {
		t.Fatal("connection left open")
	}
	want := []string{`GET /1 body=""`, `POST /2 body="hello"`, `PUT /3 body="ab"`, `GET /4 body=""`}
	resps := responses(t, raw)
	if len(resps) != len(want) {
		t.Fatalf("got %d responses: %q", len(resps), raw)
	}
	for i, r := range resps {
		if r.StatusCode != 200 || bodyOf(r) != want[i] {
			t.Errorf("response %d: %d %q, want %q", i, r.StatusCode, bodyOf(r), want[i])
		}
	}
}

func TestChunkedExtensionsAndTrailersThenNextRequest(t *testing.T) {
	ts := startServer(t, Config{})
	req := "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"5;name=value\r\nhello\r\n6;a;b=\"c d\"\r\n world\r\n0;last\r\nX-Sum: 42\r\n\r\n" +
		"\r\n" + // stray CRLF after a POST, which net/http tolerates
		"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	raw, closed := rawExchange(t, ts.HTTPAddr(), req)
	if !closed {
		t.Fatal("connection left open")
	}
	resps := responses(t, raw)
	if len(resps) != 2 {
		t.Fatalf("got %q", raw)
	}
	if got := bodyOf(resps[0]); got != `POST /up body="hello world" sum=42` {
		t.Errorf("first: %q", got)
	}
	if got := bodyOf(resps[1]); got != `GET /after body=""` {
		t.Errorf("second: %q", got)
	}
}

func TestMalformedChunkClosesFullDuplexConnection(t *testing.T) {
	// With a full-duplex handler that answers before reading the body,
	// net/http on its own keeps the connection after a malformed chunk and
	// parses the rest of the body as a new request.
	var paths []string
	var mu sync.Mutex
	ts := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		http.NewResponseController(w).EnableFullDuplex()
		io.WriteString(w, "early ")
		w.(http.Flusher).Flush()
		_, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "err=%v", err != nil)
	})})
	req := "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n" +
		"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	raw, closed := rawExchange(t, ts.HTTPAddr(), req)
	if !closed {
		t.Fatalf("connection left open: %q", raw)
	}
	resps := responses(t, raw)
	if len(resps) != 1 || bodyOf(resps[0]) != "early err=true" {
		t.Fatalf("got %q", raw)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 1 || paths[0] != "/a" {
		t.Fatalf("handler saw %q", paths)
	}
}

func TestOversizedHead(t *testing.T) {
	ts := startServer(t, Config{MaxHeaderBytes: 1024})
	// Past MaxHeaderBytes+4096, both net/http and the guard refuse.
	for _, size := range []int{6000, 64 << 10} {
		req := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", size) + "\r\n\r\n"
		raw, closed := rawExchange(t, ts.HTTPAddr(), req)
		if !closed || !strings.HasPrefix(raw, "HTTP/1.1 431 Request Header Fields Too Large\r\n") {
			t.Fatalf("size %d: closed=%v %q", size, closed, raw)
		}
	}
	if n := len(ts.seen()); n != 0 {
		t.Fatalf("handler saw %d requests", n)
	}
}

func TestSlowHeaderIsClosed(t *testing.T) {
	const rht = 300 * time.Millisecond
	ts := startServer(t, Config{ReadHeaderTimeout: rht, IdleTimeout: time.Minute})
	t.Run("first request", func(t *testing.T) {
		start := time.Now()
		raw, closed := rawExchange(t, ts.HTTPAddr(), "GET / HTTP/1.1\r\nHost: x\r\n")
		if !closed || raw != "" {
			t.Fatalf("closed=%v, got %q", closed, raw)
		}
		if d := time.Since(start); d < rht {
			t.Fatalf("closed after %v, before the timeout", d)
		}
	})
	t.Run("after keep-alive", func(t *testing.T) {
		// net/http alone would only start its header timer after four bytes
		// and then wait IdleTimeout; the guard's head timer applies.
		c, err := net.DialTimeout("tcp", ts.HTTPAddr().String(), ioTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		io.WriteString(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first response: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		io.WriteString(c, "GET /2 HTTP/1.1\r\nHost:")
		start := time.Now()
		rest, err := io.ReadAll(br)
		if err != nil || len(rest) != 0 {
			t.Fatalf("got %q, %v; want the connection closed", rest, err)
		}
		if d := time.Since(start); d > rht+5*time.Second {
			t.Fatalf("closed after %v", d)
		}
	})
}

func TestUpgradeH2CReachesHandler(t *testing.T) {
	ts := startServer(t, Config{})
	req := "GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n" +
		// The guard keeps inspecting after an h2c upgrade request.
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	raw, closed := rawExchange(t, ts.HTTPAddr(), req)
	if !closed {
		t.Fatal("connection left open")
	}
	resps := responses(t, raw)
	if len(resps) != 2 || resps[0].StatusCode != 200 || resps[0].ProtoMinor != 1 || resps[1].StatusCode != 400 {
		t.Fatalf("got %q", raw)
	}
	if got := bodyOf(resps[0]); got != `GET /up body="" upgrade=h2c` {
		t.Fatalf("handler saw %q", got)
	}
}

// upgradeHandler switches to a raw echo tunnel on Upgrade: echo and answers
// anything else normally.
func upgradeHandler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		// Echo until the client half-closes.
		io.Copy(c, brw)
	}
}

func TestUpgradeTunnelPassesBytesUnchanged(t *testing.T) {
	ts := startServer(t, Config{Handler: upgradeHandler(t)})
	// Tunnel data sent before the 101 arrives, which happens to look like
	// a smuggling attempt: it must reach the handler untouched.
	early := "POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	c, err := net.DialTimeout("tcp", ts.HTTPAddr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	io.WriteString(c, "GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"+early)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade response: %v %v", resp, err)
	}
	late := "\x00\x01binary\r\r\n"
	io.WriteString(c, late)
	c.(*net.TCPConn).CloseWrite()
	echoed, err := io.ReadAll(br)
	if err != nil || string(echoed) != early+late {
		t.Fatalf("echoed %q, %v", echoed, err)
	}
}

func TestUpgradeNotTakenResumesInspection(t *testing.T) {
	ts := startServer(t, Config{Handler: upgradeHandler(t)})
	// The handler answers an Upgrade it does not support normally, keeping
	// the connection: the guard must inspect what follows as requests.
	req := "GET /a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" +
		"GET /b HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	raw, closed := rawExchange(t, ts.HTTPAddr(), req)
	if !closed {
		t.Fatal("connection left open")
	}
	resps := responses(t, raw)
	if len(resps) != 3 || bodyOf(resps[0]) != "GET /a" || bodyOf(resps[1]) != "GET /b" || resps[2].StatusCode != 400 {
		t.Fatalf("got %q", raw)
	}
}

func TestGracefulDrain(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	ts := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})})
	addr := ts.HTTPAddr().String()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		client := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{}}
		resp, err := client.Get("http://" + addr + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	select {
	case <-started:
	case <-time.After(ioTimeout):
		t.Fatal("request never reached the handler")
	}

	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	waitRefused(t, addr)
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned %v before the in-flight request finished", err)
	default:
	}
	close(release)
	select {
	case r := <-got:
		if r.err != nil || r.body != "finished" {
			t.Fatalf("in-flight request: %q, %v", r.body, r.err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("in-flight request did not finish")
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Serve did not return after the drain")
	}
}

func TestDrainTimeoutForceCloses(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	ts := startServer(t, Config{DrainTimeout: 200 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	})})
	c, err := net.DialTimeout("tcp", ts.HTTPAddr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	if err := ts.stop(); err == nil {
		t.Fatal("Serve reported a clean drain while a request was stuck")
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("connection not closed: %v", err)
	}
}

func TestConnStateGauge(t *testing.T) {
	var open atomic.Int64
	ts := startServer(t, Config{OnConnState: func(d int) { open.Add(int64(d)) }})
	c, err := net.DialTimeout("tcp", ts.HTTPAddr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(ioTimeout))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
		t.Fatal(err)
	}
	if n := open.Load(); n != 1 {
		t.Fatalf("gauge %d with one connection open", n)
	}
	c.Close()
	waitFor(t, func() bool { return open.Load() == 0 }, "gauge back to 0")
}

// waitRefused waits until connecting to addr fails, as it does once the
// listener is closed.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		if err != nil {
			return true
		}
		c.Close()
		return false
	}, "the listener to refuse connections")
}

// waitFor polls cond until it holds, failing the test after ioTimeout.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewValidates(t *testing.T) {
	h := http.NotFoundHandler()
	for _, cfg := range []Config{
		{HTTPAddr: "127.0.0.1:0"},
		{Handler: h},
		{Handler: h, HTTPSAddr: "127.0.0.1:0"},
		{Handler: h, HTTPAddr: "127.0.0.1:0", DrainTimeout: -1},
		{Handler: h, HTTPAddr: "256.0.0.1:0"},
	} {
		if s, err := New(cfg); err == nil {
			s.Serve(canceled())
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	// A port in use surfaces at New.
	s, err := New(Config{Handler: h, HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := New(Config{Handler: h, HTTPAddr: s.HTTPAddr().String()}); err == nil {
		s2.Serve(canceled())
		t.Error("second bind of the same port succeeded")
	}
	// Serve with a finished context releases the listeners.
	if err := s.Serve(canceled()); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(canceled()); err == nil {
		t.Error("second Serve succeeded")
	}
	if c, err := net.DialTimeout("tcp", s.HTTPAddr().String(), ioTimeout); err == nil {
		c.Close()
		t.Error("listener still open after Serve returned")
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
