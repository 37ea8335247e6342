package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// echoUpgradeBackend accepts "Upgrade: echo" requests, switches protocols
// and echoes bytes until the client half-closes, then says "bye" and closes.
// Other requests get 200 "plain", and h2c requests are recorded.
func echoUpgradeBackend(t *testing.T, seen chan<- http.Header) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen <- r.Header.Clone()
		}
		if r.Header.Get("Upgrade") != "echo" {
			io.WriteString(w, "plain")
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nX-Echo: 1\r\n\r\n")
		brw.Flush()
		conn.SetDeadline(time.Now().Add(testTimeout))
		buf := make([]byte, 1024)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				if _, werr := conn.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
		conn.Write([]byte("bye"))
	}))
	t.Cleanup(s.Close)
	return s
}

func readExactly(t *testing.T, r io.Reader, want string) {
	t.Helper()
	buf := make([]byte, len(want))
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != want {
		t.Fatalf("read %q, %v; want %q", buf, err, want)
	}
}

func TestUpgradeTunnelSurvivesSwap(t *testing.T) {
	backend := echoUpgradeBackend(t, nil)
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/ws:80", serverAddr(backend)))

	c := dialRaw(t, h.addr())
	// "early" travels in the same write as the request: the proxy must
	// forward bytes the server had already buffered.
	c.send("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly")
	res, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "echo" ||
		res.Header.Get("Connection") != "Upgrade" || res.Header.Get("Server") != "torii" || res.Header.Get("X-Echo") != "1" {
		t.Fatalf("upgrade response %d %v", res.StatusCode, res.Header)
	}
	readExactly(t, c.br, "early")
	c.send("hello")
	readExactly(t, c.br, "hello")

	// Replace the routing table with one that no longer knows the backend.
	h.swap(newRouter(), backendOf(t, "ns/other:80"))
	c.send("world")
	readExactly(t, c.br, "world")

	// Half-close: the backend sees EOF, answers and closes.
	if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	readExactly(t, c.br, "bye")
	if b, err := io.ReadAll(c.br); err != nil || len(b) != 0 {
		t.Fatalf("after bye: %q, %v; want EOF", b, err)
	}
}

func TestH2CUpgradeNotForwarded(t *testing.T) {
	seen := make(chan http.Header, 4)
	backend := echoUpgradeBackend(t, seen)
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	res, body := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: x\r\n"+
		"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	if res.StatusCode != http.StatusOK || body != "plain" {
		t.Fatalf("got %d %q, want a plain 200", res.StatusCode, body)
	}
	hdr := <-seen
	for _, k := range []string{"Upgrade", "Connection", "Http2-Settings"} {
		if v, ok := hdr[k]; ok {
			t.Errorf("backend received %s: %v", k, v)
		}
	}
	// The connection is still a plain HTTP/1.1 one.
	res, body = c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != http.StatusOK || body != "plain" {
		t.Fatalf("second request: %d %q", res.StatusCode, body)
	}
}

func TestUpgradeDeclinedClosesConnection(t *testing.T) {
	rec := newRecorder(t, "no-upgrade")
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", rec.addr()))
	c := dialRaw(t, h.addr())
	res, body := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if res.StatusCode != http.StatusOK || body != "no-upgrade" || !res.Close {
		t.Fatalf("got %d %q close=%v, want 200 with Connection: close", res.StatusCode, body, res.Close)
	}
	got := rec.next(t)
	if got.header.Get("Upgrade") != "websocket" || got.header.Get("Connection") != "Upgrade" {
		t.Fatalf("upgrade not offered to the backend: %v", got.header)
	}
}

func TestUnrequestedSwitchIs502(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
	}))
	t.Cleanup(backend.Close)
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	res, body := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	if res.StatusCode != http.StatusBadGateway || body != "502 Bad Gateway\n" {
		t.Fatalf("got %d %q, want 502", res.StatusCode, body)
	}
}

// TestHalfClosedTunnelEndsWhenBackendCloses checks the reverse half-close:
// the backend finishes first, and the client still gets everything and then
// EOF.
func TestBackendCloseEndsTunnel(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\ngoodbye")
		brw.Flush()
		conn.Close()
	}))
	t.Cleanup(backend.Close)
	h := newHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	res, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	readExactly(t, c.br, "goodbye")
	// The backend is gone; writing fails or the proxy closes, and the
	// client sees EOF either way.
	c.send("anyone?")
	b, err := io.ReadAll(bufio.NewReader(c.br))
	if len(b) != 0 {
		t.Fatalf("after backend close: %q, %v", b, err)
	}
}

// TestHalfClosedTunnelIdleBound has a backend that ignores the client's
// half-close and keeps its side open in silence; the proxy must end the
// tunnel after the idle bound instead of holding it forever.
func TestHalfClosedTunnelIdleBound(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		conn.SetDeadline(time.Now().Add(testTimeout))
		io.Copy(io.Discard, brw) // returns on the client's half-close ...
		// ... after which the backend keeps its side open in silence.
		select {
		case <-release:
		case <-time.After(testTimeout):
		}
	}))
	t.Cleanup(backend.Close)
	h := newHarness(t, Config{})
	h.proxy.halfClosedIdle = 100 * time.Millisecond
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	c.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	if res, err := http.ReadResponse(c.br, &http.Request{Method: "GET"}); err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if b, err := io.ReadAll(c.br); err != nil || len(b) != 0 {
		t.Fatalf("read %q, %v; want EOF", b, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("tunnel ended after %v, before the idle bound", d)
	}
}

func TestSwapNilRouterIsNotReady(t *testing.T) {
	h := newHarness(t, Config{})
	rec := newRecorder(t, "x")
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", rec.addr()))
	if status, _ := h.get("/"); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	h.proxy.Swap(nil, nil)
	if status, _ := h.get("/"); status != http.StatusServiceUnavailable {
		t.Fatalf("after Swap(nil): status %d, want 503", status)
	}
}
