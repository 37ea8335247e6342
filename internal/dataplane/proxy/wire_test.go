package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// These tests run the proxy behind the real listener and check the bytes a
// client receives: net/http answers on its own whenever a handler returns
// without writing, so a failure path that forgets to answer (or to abort)
// shows up only on the wire.

// parseOne parses raw as exactly one HTTP/1.1 response and its body.
func parseOne(t *testing.T, raw string) (*http.Response, string) {
	t.Helper()
	br := bufio.NewReader(strings.NewReader(raw))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("parse response: %v\nraw: %q", err, raw)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read response body: %v\nraw: %q", err, raw)
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		t.Fatalf("bytes after the response: %q", rest)
	}
	return res, string(body)
}

// bodyReader is a backend that reads the whole request body and reports
// the outcome on seen.
func bodyReader(t *testing.T) (*httptest.Server, <-chan error) {
	t.Helper()
	seen := make(chan error, 16)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		seen <- err
		io.WriteString(w, "read")
	}))
	t.Cleanup(s.Close)
	return s, seen
}

func TestWireBrokenClientBodyIs400(t *testing.T) {
	h := newWireHarness(t, Config{})
	backend, seen := bodyReader(t)
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
	const chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		name, req string
		halfClose bool
	}{
		{"malformed chunk", chunked + "5\r\nhello\r\nZZ\r\n", false},
		{"body shorter than its Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort", true},
		// A trailer section of 4001 bytes: the guard refuses it at its
		// final LF (over its 4000-byte limit), which net/http, with a
		// slightly higher limit, must never see, or it would take the
		// body as complete.
		{"trailer over the guard's limit", chunked + "0\r\nX: " + strings.Repeat("t", 3994) + "\r\n\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, h.addr())
			c.send(tt.req)
			if tt.halfClose {
				c.conn.(*net.TCPConn).CloseWrite()
			}
			raw, _ := readToClose(t, c)
			res, body := parseOne(t, raw)
			if res.StatusCode != http.StatusBadRequest || body != "400 Bad Request\n" || !res.Close {
				t.Fatalf("got %d %q (close %v), want Torii's 400 with Connection: close; raw %q", res.StatusCode, body, res.Close, raw)
			}
			wait := testTimeout
			if h.fastPath {
				// The fast path refuses a body it already found
				// malformed before anything goes upstream: the backend
				// then never sees the request at all.
				wait = time.Second
			}
			select {
			case err := <-seen:
				if err == nil {
					t.Fatal("the backend read a complete body")
				}
			case <-time.After(wait):
				if !h.fastPath {
					t.Fatal("backend never finished reading")
				}
			}
		})
	}
}

// TestWireBrokenClientBodyIs400OverHTTP2 sends a body shorter than its
// content-length over h2c: the stream gets a 400 (without Connection:
// close, which would end every stream of the connection).
func TestWireBrokenClientBodyIs400OverHTTP2(t *testing.T) {
	h := newWireHarness(t, Config{})
	backend, _ := bodyReader(t)
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	fr := startH2C(t, c)
	writeH2Headers(t, fr, 1, false, ":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/", "content-length", "100")
	if err := fr.WriteData(1, true, []byte("short")); err != nil {
		t.Fatal(err)
	}
	status, hdr := readH2Response(t, fr, 1)
	if status != "400" {
		t.Fatalf("status %s, want 400", status)
	}
	if _, ok := hdr["connection"]; ok {
		t.Fatalf("HTTP/2 response carries a Connection header: %v", hdr)
	}
}

// startH2C opens an HTTP/2 connection with prior knowledge on c.
func startH2C(t *testing.T, c *rawConn) *http2.Framer {
	t.Helper()
	c.send(http2.ClientPreface)
	fr := http2.NewFramer(c.conn, c.br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return fr
}

func writeH2Headers(t *testing.T, fr *http2.Framer, stream uint32, end bool, kv ...string) {
	t.Helper()
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for i := 0; i < len(kv); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: buf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
}

// readH2Response reads frames until the response headers of stream arrive.
func readH2Response(t *testing.T, fr *http2.Framer, stream uint32) (status string, hdr map[string]string) {
	t.Helper()
	for range 100 {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != stream {
				continue
			}
			hdr = map[string]string{}
			for _, hf := range f.Fields {
				hdr[hf.Name] = hf.Value
			}
			return f.PseudoValue("status"), hdr
		case *http2.RSTStreamFrame:
			if f.StreamID == stream {
				t.Fatalf("stream reset (%v) instead of a response", f.ErrCode)
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY (%v) instead of a response", f.ErrCode)
		}
	}
	t.Fatal("no response headers within 100 frames")
	return "", nil
}

// TestWireClientHalfCloseGetsNoResponse: a client that half-closes while its
// request waits for the upstream counts as gone (net/http cancels the
// request). It must get no response at all, rather than the empty
// "200 OK" net/http sends for a handler that returns without writing.
func TestWireClientHalfCloseGetsNoResponse(t *testing.T) {
	started := make(chan struct{}, 1)
	canceled := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			canceled <- struct{}{}
		case <-time.After(testTimeout):
		}
	}))
	t.Cleanup(hang.Close)
	h := newWireHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/hang:80", serverAddr(hang)))
	c := dialRaw(t, h.addr())
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	waitChan(t, started, "request to reach the backend")
	c.conn.(*net.TCPConn).CloseWrite()
	if raw, _ := readToClose(t, c); raw != "" {
		t.Fatalf("client received %q, want nothing", raw)
	}
	waitChan(t, canceled, "upstream request to be canceled")
}

// TestWireTruncatedStreamIsAborted: when the client half-closes mid-stream,
// the upstream request is canceled, and the chunked response must end
// without its last chunk, never cleanly as if complete.
func TestWireTruncatedStreamIsAborted(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part 0\n")
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(testTimeout):
		}
	}))
	t.Cleanup(backend.Close)
	h := newWireHarness(t, Config{})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/s:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "part 0\n" {
		t.Fatalf("first part: %q, %v", line, err)
	}
	c.conn.(*net.TCPConn).CloseWrite()
	rest, err := io.ReadAll(br)
	if err == nil {
		t.Fatalf("truncated stream ended cleanly after %q", rest)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("stream neither ended nor aborted")
	}
}

// TestWireEarlyAnswerIsNotHeld: an upstream that answers at once (413)
// while the client is paused mid-upload. The answer must reach the client
// now, with Connection: close, and the connection must close, instead of
// waiting for the client to send the rest of a body nobody reads.
func TestWireEarlyAnswerIsNotHeld(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Without Connection: close net/http would itself read the rest
		// of the body before answering.
		w.Header().Set("Connection", "close")
		http.Error(w, "too large", http.StatusRequestEntityTooLarge)
	}))
	t.Cleanup(backend.Close)
	// The body timeout must play no part.
	h := newWireHarness(t, Config{ClientBodyTimeout: time.Hour})
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/b:80", serverAddr(backend)))
	c := dialRaw(t, h.addr())
	c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789")
	raw, _ := readToClose(t, c)
	res, body := parseOne(t, raw)
	if res.StatusCode != http.StatusRequestEntityTooLarge || body != "too large\n" || !res.Close {
		t.Fatalf("got %d %q (close %v); raw %q", res.StatusCode, body, res.Close, raw)
	}
}

// TestWireQueryEscapedUpstream: bytes a query may not hold raw reach the
// backend percent-encoded, over HTTP/1 and HTTP/2. Over HTTP/2 a space is
// possible, which forwarded raw would rewrite the backend's request line.
func TestWireQueryEscapedUpstream(t *testing.T) {
	h := newWireHarness(t, Config{})
	rec := newRecorder(t, "q")
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/q:80", rec.addr()))

	c := dialRaw(t, h.addr())
	res, _ := c.roundTrip("GET", "GET /a?q=caf\xc3\xa9&x=\"<>{}|\\^` HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP/1: status %d", res.StatusCode)
	}
	if got, want := rec.next(t).uri, "/a?q=caf%C3%A9&x=%22%3C%3E%7B%7D%7C%5C%5E%60"; got != want {
		t.Fatalf("HTTP/1: backend saw %q, want %q", got, want)
	}

	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	h2c := &http.Client{Timeout: testTimeout, Transport: tr}
	u := &url.URL{Scheme: "http", Host: h.addr(), Path: "/a", RawQuery: "x HTTP/1.0&q=café"}
	res, err := h2c.Do(&http.Request{Method: "GET", URL: u, Header: http.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
		t.Fatalf("HTTP/2: %s %d", res.Proto, res.StatusCode)
	}
	if got, want := rec.next(t).uri, "/a?x%20HTTP/1.0&q=caf%C3%A9"; got != want {
		t.Fatalf("HTTP/2: backend saw %q, want %q", got, want)
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
