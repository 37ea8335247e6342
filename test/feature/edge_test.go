package feature

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/demo"
	"github.com/torii-dev/torii/internal/server"
)

// edgeTorii serves two routes on edge.example: Prefix /foo → foo and Prefix
// / → root, so a test can see which route a tricky path took.
func edgeTorii(t *testing.T) *torii {
	t.Helper()
	foo, root := newBackend(t, "foo"), newBackend(t, "root")
	return start(t, map[string]string{
		"class.yaml":    classYAML,
		"services.yaml": serviceYAML("edge", "foo", foo) + "---\n" + serviceYAML("edge", "root", root),
		"ingress.yaml": `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: edge
  namespace: edge
spec:
  ingressClassName: torii
  rules:
    - host: edge.example
      http:
        paths:
          - path: /foo
            pathType: Prefix
            backend: {service: {name: foo, port: {number: 8080}}}
          - path: /
            pathType: Prefix
            backend: {service: {name: root, port: {number: 8080}}}
`,
	})
}

// rawExchange writes raw bytes on a new connection and reads one response.
func rawExchange(t *testing.T, addr, request string) (*http.Response, string) {
	t.Helper()
	resp, body, _ := exchange(t, addr, request, false)
	return resp, body
}

// exchange is rawExchange that, with checkClose, also reports whether the
// server closed the connection after the response.
func exchange(t *testing.T, addr, request string, checkClose bool) (*http.Response, string, bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", request, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !checkClose {
		return resp, string(body), false
	}
	// A closed connection reads EOF promptly; an open one times out. Only
	// connections that must close are checked, so the wait costs a passing
	// run nothing and can be generous to a busy machine.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = br.ReadByte()
	closed := err == io.EOF || (err != nil && !isTimeout(err))
	return resp, string(body), closed
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func decodeEcho(t *testing.T, body string) demo.Reply {
	t.Helper()
	var r demo.Reply
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("not an echo reply: %q", body)
	}
	return r
}

func TestForwardedHeaders(t *testing.T) {
	tr := edgeTorii(t)
	resp, body := rawExchange(t, tr.http, "GET /foo/bar?x=1&y=%2F HTTP/1.1\r\n"+
		"Host: Edge.Example:8080\r\n"+
		"User-Agent: raw-client/1.0\r\n"+
		"X-Forwarded-For: 6.6.6.6\r\n"+
		"X-Real-IP: 6.6.6.6\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"X-Request-ID: req-123\r\n"+
		"Connection: keep-alive, X-Secret\r\n"+
		"X-Secret: must-not-pass\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"TE: trailers\r\n"+
		"\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if resp.Header.Get("Server") == "" {
		t.Error("no Server response header")
	}
	if resp.Header.Get("Content-Length") == "" {
		t.Error("upstream Content-Length not kept")
	}
	r := decodeEcho(t, body)
	if r.Backend != "foo" || r.Path != "/foo/bar?x=1&y=%2F" || r.Host != "Edge.Example:8080" {
		t.Fatalf("backend %q saw %q Host %q", r.Backend, r.Path, r.Host)
	}
	want := map[string]string{
		"User-Agent":        "raw-client/1.0",
		"X-Forwarded-For":   "127.0.0.1",
		"X-Real-Ip":         "127.0.0.1",
		"X-Forwarded-Proto": "http",
		"X-Forwarded-Host":  "Edge.Example:8080",
		"X-Forwarded-Port":  tr.http[strings.LastIndex(tr.http, ":")+1:],
		"X-Request-Id":      "req-123",
	}
	for k, v := range want {
		if got := r.Headers[k]; len(got) != 1 || got[0] != v {
			t.Errorf("backend saw %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"X-Secret", "Keep-Alive", "Proxy-Connection"} {
		if got, ok := r.Headers[k]; ok {
			t.Errorf("hop-by-hop header %s reached the backend: %q", k, got)
		}
	}
}

func TestRequestIDGeneratedWhenMissingOrInvalid(t *testing.T) {
	tr := edgeTorii(t)
	seen := map[string]bool{}
	for _, incoming := range []string{"", "X-Request-ID: bad id with spaces\r\n", "X-Request-ID: " + strings.Repeat("a", 300) + "\r\n"} {
		_, body := rawExchange(t, tr.http, "GET / HTTP/1.1\r\nHost: edge.example\r\n"+incoming+"\r\n")
		id := decodeEcho(t, body).Headers["X-Request-Id"]
		if len(id) != 1 || len(id[0]) < 16 || strings.ContainsAny(id[0], " ") || seen[id[0]] {
			t.Fatalf("incoming %q: generated X-Request-ID %q is missing, invalid or repeated", incoming, id)
		}
		seen[id[0]] = true
	}
}

func TestCanonicalPathsRouteAndForwardTheSamePath(t *testing.T) {
	tr := edgeTorii(t)
	for _, tc := range []struct{ raw, backend, path string }{
		{"/foo", "foo", "/foo"},
		{"//foo", "foo", "/foo"},
		{"/x/../foo", "foo", "/foo"},
		{"/fo%6F", "foo", "/foo"},
		{"/%2e%2e/foo/./bar", "foo", "/foo/bar"},
		{"/foo%2Fbar", "root", "/foo%2Fbar"}, // an encoded slash is not a separator
		{"/foo%2fbar", "root", "/foo%2Fbar"}, // ...in either case
		{"/foobar", "root", "/foobar"},       // element-wise prefix
		{"/foo/..%2Fadmin", "foo", "/foo/..%2Fadmin"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			resp, body := rawExchange(t, tr.http, "GET "+tc.raw+" HTTP/1.1\r\nHost: edge.example\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			r := decodeEcho(t, body)
			if r.Backend != tc.backend || r.Path != tc.path {
				t.Fatalf("routed to %q with path %q, want %q with %q", r.Backend, r.Path, tc.backend, tc.path)
			}
		})
	}
}

func TestRejectedRequests(t *testing.T) {
	tr := edgeTorii(t)
	for _, tc := range []struct {
		name, request string
		status        int
		mustClose     bool
	}{
		{"encoded NUL", "GET /foo%00 HTTP/1.1\r\nHost: edge.example\r\n\r\n", 400, false},
		{"bad escape", "GET /foo%zz HTTP/1.1\r\nHost: edge.example\r\n\r\n", 400, false},
		{"CONNECT", "CONNECT edge.example:443 HTTP/1.1\r\nHost: edge.example:443\r\n\r\n", 405, false},
		{"TRACE", "TRACE / HTTP/1.1\r\nHost: edge.example\r\n\r\n", 405, false},
		{"CL and TE", "POST / HTTP/1.1\r\nHost: edge.example\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: edge.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400, true},
		{"obfuscated TE", "POST / HTTP/1.1\r\nHost: edge.example\r\nTransfer-Encoding: xchunked\r\n\r\n", 400, true},
		{"two CLs", "POST / HTTP/1.1\r\nHost: edge.example\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, true},
		{"header too large", "GET / HTTP/1.1\r\nHost: edge.example\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 431, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, closed := exchange(t, tr.http, tc.request, tc.mustClose)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tc.status)
			}
			if strings.Contains(body, `"backend"`) {
				t.Fatalf("a backend answered: %q", body)
			}
			if tc.mustClose && !closed {
				t.Fatal("connection left open after a smuggling attempt")
			}
		})
	}
}

func TestH2CUpgradeIsNotForwarded(t *testing.T) {
	tr := edgeTorii(t)
	resp, body := rawExchange(t, tr.http, "GET /foo HTTP/1.1\r\nHost: edge.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := decodeEcho(t, body)
	for _, h := range []string{"Upgrade", "Http2-Settings", "Connection"} {
		if v, ok := r.Headers[h]; ok {
			t.Errorf("backend received %s: %q", h, v)
		}
	}
}

func TestSlowHeadersAreCutOff(t *testing.T) {
	tr := start(t, map[string]string{"class.yaml": classYAML}, func(c *server.Config) { c.ReadHeaderTimeout = 300 * time.Millisecond })
	conn, err := net.DialTimeout("tcp", tr.http, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: slow.example\r\n") // never finished
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	began := time.Now()
	_, err = io.ReadAll(conn)
	took := time.Since(began)
	if err != nil && isTimeout(err) {
		t.Fatalf("connection with unfinished headers still open after %v", waitTimeout)
	}
	// Generous against scheduling noise, far below any default timeout.
	if took > 2*time.Second {
		t.Fatalf("slow client cut off after %v, want about the 300ms read-header timeout", took)
	}
	t.Logf("slow client cut off after %v", took)
}
