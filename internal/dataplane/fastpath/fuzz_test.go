package fastpath

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/listener"
	"github.com/torii-dev/torii/internal/dataplane/upstream"
	"github.com/torii-dev/torii/internal/urlpath"
)

// stubProxy is a Proxy for tests that never route.
type stubProxy struct{}

func (stubProxy) Lookup(string, string) (*upstream.Backend, bool, bool) { return nil, true, false }
func (stubProxy) AppendRequestID(b []byte) []byte {
	return append(b, "0123456789abcdef0123456789abcdef"...)
}
func (stubProxy) ExternalNameControl(string, string, syscall.RawConn) error { return nil }

func newTestServer() *Server { return New(Config{Proxy: stubProxy{}}) }

// requestSeeds are request streams for the fuzzers' corpora: ordinary
// requests and the smuggling payloads of TestRequestSmuggling.
var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a/../b?x=1 HTTP/1.1\r\nHost: a.example:80\r\nUser-Agent: u\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\nTE: trailers\r\nX-Request-ID: id\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"PUT /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
	"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX",
	"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /admin HTTP/1.1\r\n\r\n0\r\n\r\n",
	"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
	"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
	"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	"POST /s HTTP/1.1\r\nHost: a\r\nContent-Length: +2\r\n\r\nab",
	"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;a\nb\r\nab\r\n0\r\n\r\n",
	"GET /s HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n",
	"GET /s HTTP/1.1\nHost: a\n\n",
	"GET http://b/s HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /s HTTP/1.1\r\n\r\n",
	"GET /s%00 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /s HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
	"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
}

// FuzzRequestHead checks that whatever request the fast path serves, the
// guard and net/http read alike, and that what it sends upstream is a clean
// request with the same meaning: same method and Host, the canonical path,
// the same body (re-chunked when chunked), and no hop-by-hop or client
// forwarding headers.
func FuzzRequestHead(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	s := newTestServer()
	defer s.Close()
	f.Fuzz(func(t *testing.T, data []byte) {
		from := 0
		end := headEnd(data, &from)
		if end <= 0 {
			return
		}
		head := data[:end]
		var r request
		if !s.parseRequest(head, &r) {
			return
		}
		info, _, ok := listener.CheckHead(head)
		if !ok || info.Chunked != r.chunked || info.Length != r.length {
			t.Fatalf("served a head the guard frames differently: %+v vs chunked=%v length=%d", info, r.chunked, r.length)
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("served a head net/http refuses: %v", err)
		}
		if req.Method != string(r.method) || req.Host != string(r.host) {
			t.Fatalf("net/http reads %s Host %q, fast path %s Host %q", req.Method, req.Host, r.method, r.host)
		}
		if p, err := urlpath.Canonical(r.path, s.pathOpts); err != nil || p != r.path {
			t.Fatalf("path %q not canonical", r.path)
		}
		wantChunked := len(req.TransferEncoding) > 0
		if wantChunked != r.chunked || !r.chunked && req.ContentLength != r.length {
			t.Fatalf("framing: net/http chunked=%v length=%d, fast path chunked=%v length=%d", wantChunked, req.ContentLength, r.chunked, r.length)
		}

		c := &conn{s: s, clientIP: "192.0.2.1", localPort: "80"}
		up := c.appendUpstreamHead(nil, &r)
		if _, _, ok := listener.CheckHead(up); !ok {
			t.Fatalf("upstream head fails the guard's own rules: %q", up)
		}
		ureq, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(up)))
		if err != nil {
			t.Fatalf("upstream head unreadable: %v\n%q", err, up)
		}
		if ureq.Method != req.Method || ureq.Host != req.Host || ureq.Header.Get("X-Forwarded-For") != "192.0.2.1" {
			t.Fatalf("upstream head changed the request: %q", up)
		}
		for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade", "Forwarded", "Expect", "Trailer", "Http2-Settings", "Proxy-Authorization"} {
			if _, ok := ureq.Header[k]; ok {
				t.Fatalf("upstream head carries %s: %q", k, up)
			}
		}
		if len(ureq.Header["X-Forwarded-For"]) != 1 || len(ureq.Header["X-Real-Ip"]) != 1 || len(ureq.Header["X-Request-Id"]) != 1 {
			t.Fatalf("forwarding headers not set exactly once: %q", up)
		}

		// The body: what net/http reads from the client's stream must be
		// what the upstream reads from the fast path's.
		stream := data[end:]
		want, werr := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		if werr != nil && !r.chunked {
			return // a short Content-Length body: the client's problem
		}
		c.buf, c.rpos, c.rend = stream, 0, len(stream)
		body := up
		switch {
		case r.chunked:
			c.fc = nil
			c.dec = listener.ChunkedDecoder{}
			var derr error
			body, derr = c.rechunk(body)
			if derr != nil || !c.bodyConsumed {
				return // refused (400) or incomplete: nothing more to check
			}
			// The guard's decoder accepts a subset of what net/http does.
			req2, _ := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
			if want, werr = io.ReadAll(req2.Body); werr != nil {
				t.Fatalf("fast path accepted a chunked body net/http refuses: %v", werr)
			}
		case r.length > 0:
			if int64(len(stream)) < r.length {
				return
			}
			body = append(body, stream[:r.length]...)
		}
		ureq, err = http.ReadRequest(bufio.NewReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(ureq.Body)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("upstream body %q (%v), net/http read %q", got, err, want)
		}
	})
}

// responseSeeds are upstream answers: ordinary, and the smuggling attempts
// of TestResponseSmuggling.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n<html",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-S\r\n\r\n5;x\r\nhello\r\n0\r\nX-S: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
	"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.0 200 OK\r\n\r\nuntil close",
	"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nevil",
	"HTTP/1.1 304 Not Modified\r\nContent-Type: text/plain\r\nETag: x\r\n\r\n",
	"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
	"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
	"HTTP/1.1 200 OK\r\nConnection: X-A, close\r\nX-A: 1\r\nServer: s\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\nok\r\n0\r\n\r\n",
	"HTTP/1.1 599\r\nContent-Length: 0\r\n\r\n",
}

// FuzzResponse runs upstream answers through the fast path's response
// reading and relaying, over in-memory connections, and checks that the
// client gets either a clean 502, an aborted answer, or exactly what
// net/http reads from the same bytes: status and body (and trailers).
func FuzzResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	s := newTestServer()
	defer s.Close()
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		client := &memConn{}
		c := &conn{s: s, nc: client, clientIP: "192.0.2.1", fc: nil}
		c.req.isHead = head
		c.bodyConsumed = true
		x := newExchange()
		u := &upConn{nc: &memConn{in: bytes.NewReader(data)}, hp: &hostPool{dead: true}}
		_, err := readResponse(c, u, x, head, int64(time.Second))
		if err != nil {
			return // answered 502
		}
		c.relayNoDrain(u, x)
		out := client.out.Bytes()
		res, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), &http.Request{Method: method})
		if err != nil {
			if len(out) > 0 {
				t.Fatalf("client got an unreadable answer %q: %v", out, err)
			}
			return // aborted before anything was sent
		}
		gotBody, gotErr := io.ReadAll(res.Body)
		if res.StatusCode == 502 && string(gotBody) == "502 Bad Gateway\n" {
			return
		}
		want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), &http.Request{Method: method})
		if err != nil {
			t.Fatalf("relayed an answer net/http refuses (%v): %q", err, data)
		}
		for want.StatusCode >= 100 && want.StatusCode < 200 {
			t.Skip("net/http's ReadResponse does not skip 1xx itself")
		}
		wantBody, wantErr := io.ReadAll(want.Body)
		if res.StatusCode != want.StatusCode {
			t.Fatalf("status %d, net/http %d", res.StatusCode, want.StatusCode)
		}
		if gotErr == nil && (wantErr != nil || !bytes.Equal(gotBody, wantBody)) {
			t.Fatalf("client read a whole body %q; net/http reads %q (%v)", gotBody, wantBody, wantErr)
		}
		if gotErr != nil && wantErr == nil && x.res.mode != bodyClose {
			t.Fatalf("aborted an answer net/http reads whole: %v; %q", gotErr, wantBody)
		}
		if gotErr == nil {
			for k, v := range want.Trailer {
				if strings.Join(res.Trailer[k], ",") != strings.Join(v, ",") {
					t.Fatalf("trailer %s = %q, net/http %q", k, res.Trailer[k], v)
				}
			}
		}
	})
}

// relayNoDrain is relay without a FastConn (whose Draining it asks).
func (c *conn) relayNoDrain(u *upConn, x *exchange) {
	c.fc = nil
	c.relay(u, x, time.Now(), false)
}

// memConn is an in-memory net.Conn: reads come from in (EOF after), writes
// go to out.
type memConn struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func (m *memConn) Read(p []byte) (int, error) {
	if m.in == nil {
		return 0, io.EOF
	}
	return m.in.Read(p)
}
func (m *memConn) Write(p []byte) (int, error)      { return m.out.Write(p) }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzTransportResponse runs upstream answers through Transport's response
// building and body reading (what the proxy's HTTP/2 path gets), over an
// in-memory connection, and checks them against net/http's reading of the
// same bytes: an answer Transport accepts, net/http accepts too, with the
// same status, headers and trailers, and a body Transport reads whole is
// the body net/http reads.
func FuzzTransportResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	s := newTestServer()
	defer s.Close()
	tr := s.Transport(nil)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		req := &http.Request{Method: http.MethodGet}
		if head {
			req.Method = http.MethodHead
		}
		x := newExchange()
		u := &upConn{nc: &memConn{in: bytes.NewReader(data)}, hp: &hostPool{dead: true}}
		if _, err := readResponse(unwatched{}, u, x, head, int64(time.Second)); err != nil {
			return // the proxy answers 502
		}
		// Fields the upstream's Connection header names are dropped (and
		// net/http's reader removes that header itself).
		namesFields := len(x.res.connTokens) > 0
		res := tr.response(req, u, x, nil)
		gotBody, gotErr := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()

		want, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), req)
		if err != nil {
			t.Fatalf("accepted an answer net/http refuses (%v): %q", err, data)
		}
		if want.StatusCode >= 100 && want.StatusCode < 200 {
			t.Skip("net/http's ReadResponse does not skip 1xx itself")
		}
		wantBody, wantErr := io.ReadAll(io.LimitReader(want.Body, 1<<20))
		if res.StatusCode != want.StatusCode {
			t.Fatalf("status %d, net/http %d", res.StatusCode, want.StatusCode)
		}
		if !namesFields {
			// Hop-by-hop fields and Server are Torii's to drop.
			for k, v := range want.Header {
				switch k {
				case "Server", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
					"Te", "Upgrade", "Http2-Settings", "Trailer", "Transfer-Encoding", "Content-Length":
					continue
				}
				if strings.Join(res.Header[k], "\x00") != strings.Join(v, "\x00") {
					t.Fatalf("header %s = %q, net/http %q", k, res.Header[k], v)
				}
			}
		}
		if gotErr == nil && (wantErr != nil || !bytes.Equal(gotBody, wantBody)) {
			t.Fatalf("read a whole body %q; net/http reads %q (%v)", gotBody, wantBody, wantErr)
		}
		if gotErr == nil {
			for k, v := range want.Trailer {
				if strings.Join(res.Trailer[k], "\x00") != strings.Join(v, "\x00") {
					t.Fatalf("trailer %s = %q, net/http %q", k, res.Trailer[k], v)
				}
			}
		}
	})
}
