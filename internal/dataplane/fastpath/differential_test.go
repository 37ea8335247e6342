package fastpath

import (
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/listener"
)

// The differential tests send the same raw bytes to Torii with the fast path
// off (net/http) and on, and require the same answers on the wire (Date
// aside) and the same requests at the backend (generated request IDs
// aside).

type scenario struct {
	name    string
	respond func(w http.ResponseWriter, r *http.Request) // nil: the recorder's default
	raw     string
	methods []string // the method of each request in raw, one response each
}

// wireResult is what a client and a backend saw of a scenario.
type wireResult struct {
	Responses []string
	Closed    bool
	Backend   []string
	// Metrics are the data-plane counters, guard refusals included.
	Metrics string
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func describeResponse(res *http.Response, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d close=%v cl=%d te=%v\n", res.Proto, res.StatusCode, res.Close, res.ContentLength, res.TransferEncoding)
	keys := make([]string, 0, len(res.Header))
	for k := range res.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := res.Header[k]
		if k == "Date" {
			v = []string{"<date>"}
		}
		fmt.Fprintf(&b, "%s: %q\n", k, v)
	}
	fmt.Fprintf(&b, "trailer: %v\nbody: %q", res.Trailer, body)
	return b.String()
}

func describeRequest(r recorded) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s host=%q cl=%d te=%v\n", r.method, r.uri, r.proto, r.host, r.contentLength, r.te)
	keys := make([]string, 0, len(r.header))
	for k := range r.header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := r.header[k]
		if k == "X-Request-Id" && len(v) == 1 && generatedID.MatchString(v[0]) {
			v = []string{"<generated>"}
		}
		fmt.Fprintf(&b, "%s: %q\n", k, v)
	}
	fmt.Fprintf(&b, "trailer: %v\nbody: %q", r.trailer, r.body)
	if r.bodyErr != nil {
		b.WriteString("\nbody error: failed")
	}
	return b.String()
}

func runScenario(t *testing.T, on bool, sc scenario) wireResult {
	t.Helper()
	h := newHarness(t, on, harnessOpts{})
	rec := newRecorder(t, "backend")
	rec.respond = sc.respond
	h.swap(nil, backendOf(t, "ns/backend:80", rec.addr()))
	c := dialRaw(t, h.addr())
	c.send(strings.ReplaceAll(sc.raw, "$PORT", h.port()))
	var out wireResult
	for _, m := range sc.methods {
		res, err := c.tryResponse(m)
		if err != nil {
			out.Responses = append(out.Responses, "error: "+err.Error())
			break
		}
		body, _ := io.ReadAll(res.Body)
		out.Responses = append(out.Responses, describeResponse(res, string(body)))
	}
	out.Closed = c.closed()
	// Collect what the backend saw: until it has been quiet for 50 ms and
	// every request its handler began is recorded (a handler still reading
	// a body the proxy abandoned records it late).
	for deadline := time.Now().Add(testTimeout); ; {
		select {
		case r := <-rec.reqs:
			d := strings.ReplaceAll(describeRequest(r), rec.addr(), "$BACKEND")
			out.Backend = append(out.Backend, strings.ReplaceAll(d, h.port(), "$PORT"))
			continue
		case <-time.After(50 * time.Millisecond):
		}
		if int64(len(out.Backend)) >= rec.hits.Load() || time.Now().After(deadline) {
			break
		}
	}
	out.Metrics = counters(t, h)
	return out
}

// counters renders the request, refusal and upstream counters.
func counters(t testing.TB, h *harness) string {
	t.Helper()
	// The guard reports refusals through OnReject, which the server turns
	// into torii_rejected_requests_total; the harness counts them apart.
	var b strings.Builder
	for _, reason := range []string{listener.RejectFraming, listener.RejectMalformedHead, listener.RejectHeadTooLarge,
		listener.RejectBadChunked, listener.RejectUpgradeOverflow} {
		if n := h.rejected(reason); n > 0 {
			fmt.Fprintf(&b, "guard %s %d\n", reason, n)
		}
	}
	mfs, err := h.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "torii_http_requests_total", "torii_rejected_requests_total", "torii_upstream_failures_total",
			"torii_upstream_connect_errors_total", "torii_upstream_retries_total":
		case "torii_http_request_duration_seconds":
			for _, m := range mf.GetMetric() {
				fmt.Fprintf(&b, "%s count %d\n", mf.GetName(), m.GetHistogram().GetSampleCount())
			}
			continue
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v != 0 {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				fmt.Fprintf(&b, "%s%v %v\n", mf.GetName(), labels, v)
			}
		}
	}
	return b.String()
}

func compareScenario(t *testing.T, sc scenario) wireResult {
	t.Helper()
	want := runScenario(t, false, sc)
	got := runScenario(t, true, sc)
	if !reflect.DeepEqual(want, got) {
		t.Errorf("fast path differs from net/http\n--- net/http:\n%s\n--- fast path:\n%s", dump(want), dump(got))
	}
	return got
}

func dump(r wireResult) string {
	var b strings.Builder
	for i, s := range r.Responses {
		fmt.Fprintf(&b, "response %d: %s\n", i, s)
	}
	fmt.Fprintf(&b, "closed: %v\n", r.Closed)
	fmt.Fprintf(&b, "metrics:\n%s", r.Metrics)
	for i, s := range r.Backend {
		fmt.Fprintf(&b, "backend request %d: %s\n", i, s)
	}
	return b.String()
}

const host = "Host: app.example\r\n"

func TestDifferentialRequests(t *testing.T) {
	for _, sc := range []scenario{
		{name: "get", raw: "GET /a HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "forwarded headers", raw: "GET /foo/bar?x=1&y=%2F HTTP/1.1\r\n" +
			"Host: App.Example:8080\r\n" +
			"User-Agent: raw-client/1.0\r\n" +
			"X-Forwarded-For: 6.6.6.6\r\n" +
			"X-Real-IP: 6.6.6.6\r\n" +
			"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\nX-Scheme: https\r\nX-Forwarded-Scheme: https\r\n" +
			"Forwarded: for=1.2.3.4\r\nX-Original-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Prefix: /x\r\n" +
			"X-Request-ID: req-123\r\n" +
			"Connection: keep-alive, X-Secret\r\n" +
			"X-Secret: must-not-pass\r\n" +
			"Keep-Alive: timeout=5\r\n" +
			"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic x\r\nHTTP2-Settings: AAA\r\n" +
			"TE: gzip, trailers\r\n" +
			"\r\n", methods: []string{"GET"}},
		{name: "header case and repeats", raw: "GET / HTTP/1.1\r\n" + host +
			"accept: a\r\nACCEPT: b\r\ncookie: c=1\r\nCookie: d=2\r\nx-custom_header: v\r\nx-a-B-c: 1\r\nX-Empty:\r\nX-Ws:  \t padded \t \r\n\r\n",
			methods: []string{"GET"}},
		{name: "no user agent", raw: "GET / HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "empty user agent", raw: "GET / HTTP/1.1\r\n" + host + "User-Agent:\r\n\r\n", methods: []string{"GET"}},
		{name: "two user agents", raw: "GET / HTTP/1.1\r\n" + host + "User-Agent: one\r\nUser-Agent: two\r\n\r\n", methods: []string{"GET"}},
		{name: "user agent named by connection", raw: "GET / HTTP/1.1\r\n" + host + "User-Agent: one\r\nConnection: user-agent\r\n\r\n", methods: []string{"GET"}},
		{name: "request id invalid", raw: "GET / HTTP/1.1\r\n" + host + "X-Request-ID: bad id\r\n\r\n", methods: []string{"GET"}},
		{name: "request id empty then valid", raw: "GET / HTTP/1.1\r\n" + host + "X-Request-ID:\r\nX-Request-ID: ok\r\n\r\n", methods: []string{"GET"}},
		{name: "request id too long", raw: "GET / HTTP/1.1\r\n" + host + "X-Request-ID: " + strings.Repeat("a", 129) + "\r\n\r\n", methods: []string{"GET"}},
		{name: "canonical path", raw: "GET //a/./b/../%7e/c%2fd?q HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "empty query", raw: "GET /a? HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "query needing escapes", raw: "GET /a?x=\"<>\" HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "lower-case method", raw: "get / HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "head", raw: "HEAD /h HTTP/1.1\r\n" + host + "\r\n", methods: []string{"HEAD"}},
		{name: "post", raw: "POST /p HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello", methods: []string{"POST"}},
		{name: "post empty", raw: "POST /p HTTP/1.1\r\n" + host + "\r\n", methods: []string{"POST"}},
		{name: "delete empty", raw: "DELETE /p HTTP/1.1\r\n" + host + "\r\n", methods: []string{"DELETE"}},
		{name: "options", raw: "OPTIONS /p HTTP/1.1\r\n" + host + "\r\n", methods: []string{"OPTIONS"}},
		{name: "custom method", raw: "PURGE /p HTTP/1.1\r\n" + host + "\r\n", methods: []string{"PURGE"}},
		{name: "get with body", raw: "GET /p HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc", methods: []string{"GET"}},
		{name: "chunked post", raw: "POST /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" +
			"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", methods: []string{"POST"}},
		{name: "chunked put in pieces", raw: "PUT /c HTTP/1.1\r\n" + host + "Transfer-Encoding: Chunked\r\n\r\n" +
			"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n", methods: []string{"PUT"}},
		{name: "connection close", raw: "GET / HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", methods: []string{"GET"}},
		{name: "pipelined", raw: "GET /1 HTTP/1.1\r\n" + host + "\r\n" +
			"POST /2 HTTP/1.1\r\n" + host + "Content-Length: 2\r\n\r\nhi" +
			"HEAD /3 HTTP/1.1\r\n" + host + "\r\n" +
			"GET /4 HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", methods: []string{"GET", "POST", "HEAD", "GET"}},
		{name: "not found", raw: "GET /nowhere HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "not found head", raw: "HEAD /nowhere HTTP/1.1\r\n" + host + "\r\n", methods: []string{"HEAD"}},
		{name: "not found with body", raw: "POST /nowhere HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc" + "GET /a HTTP/1.1\r\n" + host + "\r\n", methods: []string{"POST", "GET"}},
		{name: "not found chunked", raw: "POST /nowhere HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + "GET /a HTTP/1.1\r\n" + host + "\r\n", methods: []string{"POST", "GET"}},
		{name: "idempotency key", raw: "POST / HTTP/1.1\r\n" + host + "Idempotency-Key: k\r\nContent-Length: 1\r\n\r\nx", methods: []string{"POST"}},
		{name: "host with port and case", raw: "GET / HTTP/1.1\r\nHost: APP.example:$PORT\r\n\r\n", methods: []string{"GET"}},
		// Handed to net/http.
		{name: "http/1.0", raw: "GET / HTTP/1.0\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "http/1.0 keep-alive", raw: "GET / HTTP/1.0\r\n" + host + "Connection: keep-alive\r\n\r\n" + "GET / HTTP/1.0\r\n" + host + "\r\n", methods: []string{"GET", "GET"}},
		{name: "absolute form", raw: "GET http://other.example/x?y HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "asterisk", raw: "OPTIONS * HTTP/1.1\r\n" + host + "\r\n", methods: []string{"OPTIONS"}},
		{name: "h2c upgrade", raw: "GET /foo HTTP/1.1\r\n" + host + "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", methods: []string{"GET"}},
		{name: "expect continue", raw: "POST / HTTP/1.1\r\n" + host + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok", methods: []string{"POST"}},
		{name: "expect other", raw: "POST / HTTP/1.1\r\n" + host + "Expect: something\r\nContent-Length: 2\r\n\r\nok", methods: []string{"POST"}},
		{name: "declared trailer", raw: "POST /c HTTP/1.1\r\n" + host + "Trailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Sum: 1\r\n\r\n", methods: []string{"POST"}},
		{name: "chunked get", raw: "GET /c HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", methods: []string{"GET"}},
		{name: "connect", raw: "CONNECT app.example:443 HTTP/1.1\r\nHost: app.example:443\r\n\r\n", methods: []string{"CONNECT"}},
		{name: "trace", raw: "TRACE / HTTP/1.1\r\n" + host + "\r\n", methods: []string{"TRACE"}},
		{name: "encoded NUL", raw: "GET /a%00 HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "bad escape", raw: "GET /a%zz HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "bare LF head", raw: "GET / HTTP/1.1\n" + host + "\n", methods: []string{"GET"}},
		{name: "bare LF then keep-alive", raw: "GET / HTTP/1.1\nHost: app.example\n\nGET /2 HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET", "GET"}},
		{name: "blank line before request", raw: "\r\nGET / HTTP/1.1\r\n" + host + "\r\n", methods: []string{"GET"}},
		{name: "crlf after post", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 1\r\n\r\nx\r\nGET /2 HTTP/1.1\r\n" + host + "\r\n", methods: []string{"POST", "GET"}},
		{name: "missing host", raw: "GET / HTTP/1.1\r\n\r\n", methods: []string{"GET"}},
		{name: "empty host", raw: "GET / HTTP/1.1\r\nHost:\r\n\r\n", methods: []string{"GET"}},
		{name: "two hosts", raw: "GET / HTTP/1.1\r\n" + host + host + "\r\n", methods: []string{"GET"}},
		{name: "bad host", raw: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", methods: []string{"GET"}},
		{name: "host with zone", raw: "GET / HTTP/1.1\r\nHost: [fe80::1%25en0]\r\n\r\n", methods: []string{"GET"}},
		{name: "unicode host", raw: "GET / HTTP/1.1\r\nHost: b\xc3\xbccher.example\r\n\r\n", methods: []string{"GET"}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			compareScenario(t, sc)
		})
	}
}

func TestDifferentialResponses(t *testing.T) {
	get := "GET /r HTTP/1.1\r\n" + host + "\r\n"
	head := "HEAD /r HTTP/1.1\r\n" + host + "\r\n"
	for _, sc := range []scenario{
		{name: "sniffed type", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Length"] = []string{"21"}
			io.WriteString(w, "<html><body>x</body>")
			io.WriteString(w, "\n")
		}, raw: get, methods: []string{"GET"}},
		{name: "no type with encoding", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Length"] = []string{"5"}
			w.Header()["Content-Encoding"] = []string{"gzip"}
			io.WriteString(w, "hello")
		}, raw: get, methods: []string{"GET"}},
		{name: "empty type kept", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = []string{""}
			w.Header()["Content-Length"] = []string{"5"}
			io.WriteString(w, "hello")
		}, raw: get, methods: []string{"GET"}},
		{name: "streamed chunked", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			for i := range 3 {
				fmt.Fprintf(w, "part %d\n", i)
				w.(http.Flusher).Flush()
			}
		}, raw: get + get, methods: []string{"GET", "GET"}},
		{name: "trailers", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Sum")
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "data")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "7")
		}, raw: get, methods: []string{"GET"}},
		{name: "hop-by-hop and server", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "backend/1.0")
			w.Header().Set("Connection", "X-Private")
			w.Header().Set("X-Private", "secret")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("Proxy-Authenticate", "Basic")
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok")
		}, raw: get, methods: []string{"GET"}},
		{name: "date kept", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", "Mon, 01 Jan 2024 00:00:00 GMT")
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok")
		}, raw: get, methods: []string{"GET"}},
		{name: "no content", respond: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(204)
		}, raw: get + get, methods: []string{"GET", "GET"}},
		{name: "not modified", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("ETag", `"x"`)
			w.WriteHeader(304)
		}, raw: get + get, methods: []string{"GET", "GET"}},
		{name: "head with length", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "100")
		}, raw: head + get, methods: []string{"HEAD", "GET"}},
		{name: "head without length", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.(http.Flusher).Flush()
		}, raw: head + get, methods: []string{"HEAD", "GET"}},
		{name: "early hints", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(103)
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "final")
		}, raw: get, methods: []string{"GET"}},
		{name: "unknown status", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(599)
			io.WriteString(w, "odd")
		}, raw: get, methods: []string{"GET"}},
		{name: "redirect", respond: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, raw: get, methods: []string{"GET"}},
		{name: "large body", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", "300000")
			io.WriteString(w, strings.Repeat("x", 300000))
		}, raw: get + get, methods: []string{"GET", "GET"}},
		{name: "large chunked body", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			for range 10 {
				io.WriteString(w, strings.Repeat("y", 30000))
			}
		}, raw: get + get, methods: []string{"GET", "GET"}},
		{name: "event stream", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Length", "12")
			io.WriteString(w, "data: hi\n\n\n\n")
		}, raw: get, methods: []string{"GET"}},
		{name: "upstream close header", respond: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "bye")
		}, raw: get + get, methods: []string{"GET", "GET"}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			compareScenario(t, sc)
		})
	}
}
