package proxy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The idle timeouts must end a transfer whose peer stopped dead, and must
// not end one whose peer is slow but alive. The first kind of test would
// hang without the timeout; the second sends in steps spaced well under the
// timeout, for a total well over it.

// stepTimeout is the idle timeout of these tests, and stepGap the pause
// between the steps of a slow but live transfer: a fifth of it, so a loaded
// machine does not fail them.
const (
	stepTimeout = 500 * time.Millisecond
	stepGap     = stepTimeout / 5
	steps       = 10
)

// stalledBackend starts a backend running handler, which may block until
// release is closed; that happens at the end of the test, before the
// backend is closed (which waits for its handlers).
func stalledBackend(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, release <-chan struct{})) *httptest.Server {
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler(w, r, release) }))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(release) })
	return s
}

func TestUpstreamReadTimeoutAbortsStalledBody(t *testing.T) {
	backend := stalledBackend(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		io.WriteString(w, "part")
		http.NewResponseController(w).Flush()
		<-release
	})
	h := newHarness(t, Config{UpstreamReadTimeout: 200 * time.Millisecond})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/s:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err := http.ReadResponse(c.br, nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("stalled upstream body: read %q, %v; want an aborted response", body, err)
	}
}

func TestUpstreamReadTimeoutRenewedOnProgress(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range steps {
			fmt.Fprintf(w, "%d", i)
			http.NewResponseController(w).Flush()
			time.Sleep(stepGap)
		}
	}))
	t.Cleanup(backend.Close)
	h := newHarness(t, Config{UpstreamReadTimeout: stepTimeout})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/s:80", serverAddr(backend)))
	if status, body := h.get("/"); status != http.StatusOK || body != "0123456789" {
		t.Fatalf("slow upstream: %d %q", status, body)
	}
}

// TestUpstreamReadTimeoutSparesPooledConnections: a connection that sat in
// the pool for longer than UpstreamReadTimeout is closed, and the next
// request still succeeds (on a new connection).
func TestUpstreamReadTimeoutSparesPooledConnections(t *testing.T) {
	rec := newRecorder(t, "ok")
	h := newHarness(t, Config{UpstreamReadTimeout: 50 * time.Millisecond})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/r:80", rec.addr()))
	for i := range 3 {
		if status, body := h.get("/"); status != http.StatusOK || body != "ok" {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
		time.Sleep(100 * time.Millisecond) // let the pooled connection time out
	}
}

// TestUpstreamSendTimeout: an upstream that neither reads the request body
// nor answers. The upload stalls once the socket buffers are full; without
// the timeout the request would hang for good.
func TestUpstreamSendTimeout(t *testing.T) {
	backend := stalledBackend(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
		<-release
	})
	h := newHarness(t, Config{UpstreamSendTimeout: 200 * time.Millisecond})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/s:80", serverAddr(backend)))
	const size = 256 << 20 // far more than socket buffers hold
	req, _ := http.NewRequest("POST", h.front.URL+"/", io.LimitReader(zeros{}, size))
	req.ContentLength = size
	res, err := h.client().Do(req)
	if err != nil {
		t.Fatalf("upload to a stalled upstream: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", res.StatusCode)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestClientBodyTimeoutIs408(t *testing.T) {
	backend, seen := bodyReader(t)
	for _, wire := range []bool{false, true} {
		t.Run(fmt.Sprintf("listener=%v", wire), func(t *testing.T) {
			cfg := Config{ClientBodyTimeout: 200 * time.Millisecond}
			var addr string
			if wire {
				h := newWireHarness(t, cfg)
				h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
				addr = h.addr()
			} else {
				h := newHarness(t, cfg)
				h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
				addr = h.addr()
			}
			c := dialRaw(t, addr)
			c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nstalled")
			raw, _ := readToClose(t, c)
			res, body := parseOne(t, raw)
			if res.StatusCode != http.StatusRequestTimeout || body != "408 Request Timeout\n" || !res.Close {
				t.Fatalf("got %d %q (close %v), want 408 with Connection: close", res.StatusCode, body, res.Close)
			}
			select {
			case err := <-seen:
				if err == nil {
					t.Fatal("backend read a complete body")
				}
			case <-time.After(testTimeout):
				t.Fatal("backend never finished reading")
			}
		})
	}
}

// TestClientBodyTimeoutRenewedOnProgress uploads in steps through the
// listener, then sends a second request on the same connection long after
// the body ended: the body timeout must not linger (net/http's background
// read after the body would inherit it and cancel the request).
func TestClientBodyTimeoutRenewedOnProgress(t *testing.T) {
	h := newWireHarness(t, Config{ClientBodyTimeout: stepTimeout})
	backend := checksumBackend(t)
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/c:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	part := strings.Repeat("x", 1000)
	c.send(fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", steps*len(part)))
	for range steps {
		c.send(part)
		time.Sleep(stepGap)
	}
	res, body := c.response("POST")
	want := fmt.Sprintf("%d %x", steps*len(part), sha256.Sum256([]byte(strings.Repeat(part, steps))))
	if res.StatusCode != http.StatusOK || body != want {
		t.Fatalf("slow upload: %d %q", res.StatusCode, body)
	}
	// The backend takes longer than the body timeout to answer a request
	// whose body is complete.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(2 * stepTimeout)
		io.WriteString(w, "late")
	}))
	t.Cleanup(slow.Close)
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/slow:80", serverAddr(slow)))
	// The body's end comes a while after its start, so that the
	// Transport's read past the end would renew the deadline.
	c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nh")
	time.Sleep(stepGap)
	c.send("i")
	res, body = c.response("POST")
	if res.StatusCode != http.StatusOK || body != "late" {
		t.Fatalf("slow answer after a complete body: %d %q", res.StatusCode, body)
	}
}

// TestClientSendTimeout: a client that stops reading a large response. The
// proxy's writes block once the socket buffers are full; the timeout must
// end the response, which drops the upstream connection, so the backend's
// write fails too.
func TestClientSendTimeout(t *testing.T) {
	for _, wire := range []bool{false, true} {
		t.Run(fmt.Sprintf("listener=%v", wire), func(t *testing.T) {
			done := make(chan error, 1)
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				buf := make([]byte, 64<<10)
				for range 1 << 14 { // 1 GiB at most
					if _, err := w.Write(buf); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}))
			t.Cleanup(backend.Close)
			cfg := Config{ClientSendTimeout: 200 * time.Millisecond}
			var addr string
			if wire {
				h := newWireHarness(t, cfg)
				h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
				addr = h.addr()
			} else {
				h := newHarness(t, cfg)
				h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
				addr = h.addr()
			}
			c := dialRaw(t, addr)
			c.conn.(*net.TCPConn).SetReadBuffer(4096)
			c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			// Never read.
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("backend wrote 1 GiB to a client that reads nothing")
				}
			case <-time.After(testTimeout):
				t.Fatal("response to a client that stopped reading was never ended")
			}
		})
	}
}

// TestTunnelIdleTimeout: an upgraded connection lives as long as bytes flow
// in either direction, and is closed once nothing flowed for
// TunnelIdleTimeout.
func TestTunnelIdleTimeout(t *testing.T) {
	backend := echoUpgradeBackend(t, nil)
	// UpstreamReadTimeout is shorter than the tunnel's limit: a tunnel
	// must not be bound by it.
	h := newHarness(t, Config{TunnelIdleTimeout: stepTimeout, UpstreamReadTimeout: stepGap})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/ws:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	c.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	res, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v", err)
	}
	for i := range steps {
		msg := fmt.Sprintf("ping %d", i)
		c.send(msg)
		readExactly(t, c.br, msg)
		time.Sleep(stepGap)
	}
	start := time.Now()
	raw, _ := readToClose(t, c)
	if raw != "" {
		t.Fatalf("idle tunnel sent %q", raw)
	}
	// The echo backend gives up after testTimeout itself; the proxy must
	// have closed the tunnel long before.
	if d := time.Since(start); d > testTimeout/2 {
		t.Fatalf("idle tunnel closed after %v", d)
	}
}
