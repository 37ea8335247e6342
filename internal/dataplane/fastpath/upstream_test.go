package fastpath

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/proxy"
)

// Response smuggling: an upstream answer two parsers could frame
// differently is answered 502 and its connection is never reused, so that
// what follows it on the wire cannot become the answer to someone else's
// request.
func TestResponseSmuggling(t *testing.T) {
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	for _, tc := range []struct {
		name, answer string
		status       int    // the first request's status
		body         string // and body, when 200
		reuse        bool   // the connection is fine for the next request
	}{
		{name: "CL and TE", answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 502},
		{name: "TE and CL", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", status: 502},
		{name: "two CLs", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", status: 502},
		{name: "CL list", answer: "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", status: 502},
		{name: "CL sign", answer: "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", status: 502},
		{name: "CL space before colon", answer: "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", status: 502},
		{name: "TE chunked, identity", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", status: 502},
		{name: "TE identity", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\nok", status: 502},
		{name: "two TEs", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 502},
		{name: "TE on HTTP/1.0", answer: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", status: 502},
		{name: "obs-fold", answer: "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "bare LF head", answer: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", status: 502},
		{name: "bare CR", answer: "HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 9\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "NUL in header", answer: "HTTP/1.1 200 OK\r\nX-A: \x00\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "status two digits", answer: "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "status four digits", answer: "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "HTTP/2 version", answer: "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 502},
		{name: "unrequested switch", answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", status: 502},
		{name: "bad chunk size", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n", status: 502},
		{name: "chunk data overrun", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nok\r\n0\r\n\r\n", status: 502},
		{name: "chunk bare LF", answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n", status: 502},
		{name: "head too large", answer: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\nContent-Length: 2\r\n\r\nok", status: 502},
		// Accepted, but the bytes after the response make the connection
		// unusable.
		{name: "second response glued on", answer: ok + "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil", status: 200, body: "ok"},
		{name: "body on 204", answer: "HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nevil", status: 204},
		{name: "1xx then answer", answer: "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok, status: 200, body: "ok", reuse: true},
		{name: "HTTP/1.0 until close", answer: "HTTP/1.0 200 OK\r\n\r\nuntil-close\x00close", status: 200, body: "until-close"},
		{name: "HTTP/1.0 keep-alive", answer: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", reuse: true},
		{name: "HTTP/1.0 with length", answer: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok"},
		{name: "upstream says close", answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, true, harnessOpts{})
			rb := newRawBackend(t, func(n int64, head string) string {
				if n == 1 {
					return tc.answer
				}
				return "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"
			})
			h.swap(nil, backendOf(t, "ns/raw:80", rb.addr()))
			c := dialRaw(t, h.addr())
			res, body := c.roundTrip("GET", get("app.example", "/one"))
			if res.StatusCode != tc.status || tc.body != "" && body != tc.body {
				t.Fatalf("first answer %d %q, want %d %q", res.StatusCode, body, tc.status, tc.body)
			}
			if tc.status == 502 && body != "502 Bad Gateway\n" {
				t.Fatalf("502 body %q", body)
			}
			if c.closed() {
				// Only a close-delimited answer may not be followed.
				return
			}
			res, body = c.roundTrip("GET", get("app.example", "/two"))
			if res.StatusCode != 200 || body != "second" {
				t.Fatalf("second answer %d %q, want the backend's second answer", res.StatusCode, body)
			}
			want := int64(2)
			if tc.reuse {
				want = 1
			}
			if got := rb.conns.Load(); got != want {
				t.Fatalf("backend saw %d connections, want %d", got, want)
			}
		})
	}
}

// A response that fails after its head went out is aborted: the client sees
// the connection close before the end, never a complete-looking body.
func TestTruncatedResponsesAreAborted(t *testing.T) {
	for _, tc := range []struct{ name, answer string }{
		{"short content-length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\nonly this\x00close"},
		{"unfinished chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n\x00close"},
		{"bad chunk later", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n\x00wait zz\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, true, harnessOpts{})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf)
				first, rest, _ := strings.Cut(tc.answer, "\x00")
				io.WriteString(c, first)
				if strings.HasPrefix(rest, "wait ") {
					time.Sleep(100 * time.Millisecond)
					io.WriteString(c, rest[len("wait "):])
					time.Sleep(time.Second)
				}
			}()
			h.swap(nil, backendOf(t, "ns/raw:80", ln.Addr().String()))
			c := dialRaw(t, h.addr())
			c.send(get("app.example", "/"))
			res, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
			if _, err := io.ReadAll(res.Body); err == nil {
				t.Fatal("truncated body read to a clean end")
			}
		})
	}
}

func TestConnectRefusedIsRetried(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		live := newRecorder(t, "live")
		dead := closedAddr(t)
		h.swap(nil, backendOf(t, "ns/app:80", dead, live.addr()))
		c := dialRaw(t, h.addr())
		for i := range 6 {
			res, body := c.roundTrip("POST", fmt.Sprintf("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nbody-%d", i))
			if res.StatusCode != 200 || body != "live" {
				t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
			}
			if got := live.next(t).body; got != fmt.Sprintf("body-%d", i) {
				t.Fatalf("request %d: body %q", i, got)
			}
		}
	})
}

func TestAllEndpointsDown(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		h.swap(nil, backendOf(t, "ns/app:80", closedAddr(t), closedAddr(t)))
		res, body := dialRaw(t, h.addr()).roundTrip("GET", get("a", "/"))
		if res.StatusCode != 502 || body != "502 Bad Gateway\n" {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
	})
}

func TestNoEndpointsAndNotReady(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		res, _ := dialRaw(t, h.addr()).roundTrip("GET", get("a", "/"))
		if res.StatusCode != 503 {
			t.Fatalf("before the first swap: %d", res.StatusCode)
		}
		h.swap(nil, backendOf(t, "ns/app:80"))
		res, _ = dialRaw(t, h.addr()).roundTrip("GET", get("a", "/"))
		if res.StatusCode != 503 {
			t.Fatalf("no endpoints: %d", res.StatusCode)
		}
	})
}

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

// The upstream closes every connection after its answer without saying so
// (no Connection: close), as a backend with a short keep-alive timeout
// does: pooled connections are found dead and replaced, and no request
// fails, idempotent or not.
func TestUpstreamClosedPooledConnection(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		rb := newRawBackend(t, func(n int64, head string) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\x00close"
		})
		h.swap(nil, backendOf(t, "ns/raw:80", rb.addr()))
		c := dialRaw(t, h.addr())
		for i := range 10 {
			method := "GET"
			req := get("a", "/")
			if i%2 == 1 {
				method, req = "POST", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"
			}
			// Let the upstream's close arrive: the fast path peeks before
			// reuse, so once the backend has closed it sees the FIN;
			// net/http learns of it in its connection's read goroutine,
			// given a little more time.
			waitFor(t, "the backend to close its connection", func() bool { return rb.open.Load() == 0 })
			if !h.fastOn {
				time.Sleep(50 * time.Millisecond)
			}
			res, body := c.roundTrip(method, req)
			if res.StatusCode != 200 || body != "ok" {
				t.Fatalf("request %d (%s): %d %q", i, method, res.StatusCode, body)
			}
		}
	})
}

// Keep-alive on both sides: one client connection, one upstream connection.
func TestConnectionsReused(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		rec := newRecorder(t, "b")
		h.swap(nil, backendOf(t, "ns/b:80", rec.addr()))
		c := dialRaw(t, h.addr())
		for i := range 20 {
			if res, _ := c.roundTrip("GET", get("a", fmt.Sprintf("/%d", i))); res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
		}
		if n := rec.conns.Load(); n != 1 {
			t.Fatalf("%d upstream connections for 20 sequential requests", n)
		}
	})
}

func TestResponseHeaderTimeoutIs504(t *testing.T) {
	both(t, harnessOpts{proxy: proxy.Config{ResponseHeaderTimeout: 200 * time.Millisecond}}, func(t *testing.T, h *harness) {
		release := make(chan struct{})
		defer close(release)
		rec := newRecorder(t, "slow")
		rec.respond = func(w http.ResponseWriter, r *http.Request) { <-release }
		h.swap(nil, backendOf(t, "ns/slow:80", rec.addr()))
		began := time.Now()
		res, body := dialRaw(t, h.addr()).roundTrip("GET", get("a", "/"))
		if res.StatusCode != 504 || body != "504 Gateway Timeout\n" {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
		if took := time.Since(began); took > 3*time.Second {
			t.Fatalf("504 after %v", took)
		}
	})
}

func TestUpstreamReadTimeoutAbortsStalledBody(t *testing.T) {
	both(t, harnessOpts{proxy: proxy.Config{UpstreamReadTimeout: 300 * time.Millisecond}}, func(t *testing.T, h *harness) {
		release := make(chan struct{})
		defer close(release)
		rec := newRecorder(t, "stall")
		rec.respond = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "start")
			w.(http.Flusher).Flush()
			<-release
		}
		h.swap(nil, backendOf(t, "ns/stall:80", rec.addr()))
		c := dialRaw(t, h.addr())
		c.send(get("a", "/"))
		// net/http had not sent the head yet (buffered); the fast path
		// sends it with the first bytes. Either way the answer is cut.
		res, err := http.ReadResponse(c.br, nil)
		if err == nil {
			_, err = io.ReadAll(res.Body)
		}
		if err == nil {
			t.Fatal("stalled body completed")
		}
	})
}

func TestClientBodyTimeoutIs408(t *testing.T) {
	both(t, harnessOpts{proxy: proxy.Config{ClientBodyTimeout: 300 * time.Millisecond}}, func(t *testing.T, h *harness) {
		rec := newRecorder(t, "b")
		h.swap(nil, backendOf(t, "ns/b:80", rec.addr()))
		c := dialRaw(t, h.addr())
		res, body := c.roundTrip("POST", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
		if res.StatusCode != 408 || !res.Close || body != "408 Request Timeout\n" {
			t.Fatalf("%d close=%v %q", res.StatusCode, res.Close, body)
		}
	})
}

func TestShortClientBodyIs400(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		rec := newRecorder(t, "b")
		h.swap(nil, backendOf(t, "ns/b:80", rec.addr()))
		c := dialRaw(t, h.addr())
		c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
		c.conn.(*net.TCPConn).CloseWrite()
		res, body := c.response("POST")
		if res.StatusCode != 400 || body != "400 Bad Request\n" {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
		if r := rec.next(t); r.bodyErr == nil {
			t.Fatalf("the backend took a truncated body as whole: %q", r.body)
		}
	})
}

func TestLargeBodiesStream(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		rec := newRecorder(t, "b")
		var got atomic.Int64
		rec.respond = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", fmt.Sprint(3<<20))
			io.Copy(w, io.LimitReader(zeros{}, 3<<20))
		}
		h.swap(nil, backendOf(t, "ns/b:80", rec.addr()))
		c := dialRaw(t, h.addr())
		const size = 5 << 20
		go func() {
			io.WriteString(c.conn, fmt.Sprintf("PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", size))
			io.Copy(c.conn, io.LimitReader(zeros{}, size))
			io.WriteString(c.conn, "POST /up2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
			for range 100 {
				io.WriteString(c.conn, "8000\r\n"+strings.Repeat("z", 0x8000)+"\r\n")
			}
			io.WriteString(c.conn, "0\r\n\r\n")
		}()
		for _, m := range []string{"PUT", "POST"} {
			res, err := http.ReadResponse(c.br, &http.Request{Method: m})
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, res.Body)
			got.Add(n)
			if err != nil || n != 3<<20 {
				t.Fatalf("%s: response body %d bytes, %v", m, n, err)
			}
		}
		if r := rec.next(t); len(r.body) != size {
			t.Fatalf("upload: backend got %d bytes", len(r.body))
		}
		if r := rec.next(t); len(r.body) != 100*0x8000 || r.te[0] != "chunked" {
			t.Fatalf("chunked upload: backend got %d bytes, te %v", len(r.body), r.te)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// An upstream answering before reading the whole request body (an early
// 413) is relayed, and the client connection, which still carries the rest
// of the body, closes.
func TestEarlyAnswer(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		// The backend answers at once, without reading the body.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		}))
		defer srv.Close()
		h.swap(nil, backendOf(t, "ns/b:80", srv.Listener.Addr().String()))
		c := dialRaw(t, h.addr())
		const size = 64 << 20
		go func() {
			io.WriteString(c.conn, fmt.Sprintf("PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", size))
			io.Copy(c.conn, io.LimitReader(zeros{}, size))
		}()
		res, body := c.response("PUT")
		if res.StatusCode != 413 || !res.Close {
			t.Fatalf("%d close=%v %q", res.StatusCode, res.Close, body)
		}
	})
}

func TestTLSForwardedProto(t *testing.T) {
	both(t, harnessOpts{tls: true}, func(t *testing.T, h *harness) {
		rec := newRecorder(t, "b")
		h.swap(nil, backendOf(t, "ns/b:80", rec.addr()))
		client := &http.Client{Timeout: testTimeout, Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
		for range 3 {
			res, err := client.Get("https://" + h.addr() + "/x")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || res.Proto != "HTTP/1.1" {
				t.Fatalf("%d %s", res.StatusCode, res.Proto)
			}
			r := rec.next(t)
			if r.header.Get("X-Forwarded-Proto") != "https" || r.header.Get("X-Scheme") != "https" {
				t.Fatalf("forwarded headers %v", r.header)
			}
		}
		if n := rec.conns.Load(); n != 1 {
			t.Fatalf("%d upstream connections", n)
		}
	})
}

// WebSocket upgrades go to net/http and work as always, on a connection the
// fast path served before.
func TestUpgradeHandedOff(t *testing.T) {
	both(t, harnessOpts{handoff: true}, func(t *testing.T, h *harness) {
		rec := newRecorder(t, "ws")
		rec.respond = func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "websocket" {
				io.WriteString(w, "plain")
				return
			}
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			rw.Flush()
			line, _ := rw.ReadString('\n')
			rw.WriteString("echo: " + line)
			rw.Flush()
		}
		h.swap(nil, backendOf(t, "ns/ws:80", rec.addr()))
		c := dialRaw(t, h.addr())
		if res, body := c.roundTrip("GET", get("a", "/")); res.StatusCode != 200 || body != "plain" {
			t.Fatalf("%d %q", res.StatusCode, body)
		}
		res, _ := c.roundTrip("GET", "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		if res.StatusCode != 101 {
			t.Fatalf("upgrade: %d", res.StatusCode)
		}
		c.send("hello\n")
		line, err := c.br.ReadString('\n')
		if err != nil || line != "echo: hello\n" {
			t.Fatalf("tunnel: %q %v", line, err)
		}
	})
}

// A client that goes away (or half-closes) while the upstream is slow to
// answer cancels the upstream request, as net/http's background read does
// for the proxy, and gets no answer.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	for _, halfClose := range []bool{false, true} {
		t.Run(fmt.Sprintf("halfClose=%v", halfClose), func(t *testing.T) {
			both(t, harnessOpts{}, func(t *testing.T, h *harness) {
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
				h.swap(nil, backendOf(t, "ns/hang:80", hang.Listener.Addr().String()))
				c := dialRaw(t, h.addr())
				c.send(get("x", "/"))
				waitChan(t, started, "the request to reach the backend")
				if !halfClose {
					c.conn.Close()
					waitChan(t, canceled, "the upstream request to be canceled")
					return
				}
				c.conn.(*net.TCPConn).CloseWrite()
				waitChan(t, canceled, "the upstream request to be canceled")
				if raw, err := io.ReadAll(c.br); len(raw) != 0 || err != nil {
					t.Fatalf("client received %q (%v), want the connection closed without a response", raw, err)
				}
				// The request may be counted a moment after its connection
				// closed.
				var m string
				waitFor(t, "the 499 counted", func() bool { m = counters(t, h); return strings.Contains(m, "class=4xx") })
				if strings.Contains(m, "upstream_failures") {
					t.Errorf("metrics:\n%s\nwant no upstream failure", m)
				}
			})
		})
	}
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(testTimeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", testTimeout, what)
		}
	}
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
	}
}
