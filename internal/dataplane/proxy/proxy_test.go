package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestNotReadyBeforeFirstSwap(t *testing.T) {
	h := newHarness(t, Config{})
	res, body := rawGet(t, h.addr(), "/", "example.com")
	if res.StatusCode != http.StatusServiceUnavailable || body != "503 Service Unavailable\n" {
		t.Fatalf("got %d %q, want 503 with Torii's body", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if s := res.Header.Get("Server"); s != "torii" {
		t.Errorf("Server = %q", s)
	}
}

func TestConnectAndTraceAre405(t *testing.T) {
	h := newHarness(t, Config{})
	rec := newRecorder(t, "any")
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/any:80", rec.addr()))
	for _, raw := range []string{
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
		"TRACE / HTTP/1.1\r\nHost: example.com\r\n\r\n",
	} {
		c := dialRaw(t, h.addr())
		method := strings.Fields(raw)[0]
		res, body := c.roundTrip(method, raw)
		if res.StatusCode != http.StatusMethodNotAllowed || body != "405 Method Not Allowed\n" {
			t.Errorf("%s: got %d %q, want 405", method, res.StatusCode, body)
		}
		if res.Header.Get("Allow") == "" {
			t.Errorf("%s: no Allow header", method)
		}
	}
	if n := rec.hits.Load(); n != 0 {
		t.Fatalf("backend received %d requests", n)
	}
}

func TestNotFoundIsToriis(t *testing.T) {
	h := newHarness(t, Config{})
	rec := newRecorder(t, "api")
	h.swap(newRouter(exact("/api", 0)), backendOf(t, "ns/api:80", rec.addr()))
	res, body := rawGet(t, h.addr(), "/other", "example.com")
	if res.StatusCode != http.StatusNotFound || body != "404 Not Found\n" {
		t.Fatalf("got %d %q, want Torii's 404", res.StatusCode, body)
	}
	if rec.hits.Load() != 0 {
		t.Fatal("backend hit for an unrouted path")
	}
}

func TestNoEndpointsIs503(t *testing.T) {
	h := newHarness(t, Config{})
	h.swap(newRouter(exact("/missing", -1), exact("/empty", 0)), backendOf(t, "ns/empty:80"))
	for _, path := range []string{"/missing", "/empty"} {
		status, body := h.get(path)
		if status != http.StatusServiceUnavailable || body != "503 Service Unavailable\n" {
			t.Errorf("%s: got %d %q, want 503", path, status, body)
		}
	}
}

func TestForwardedHeaders(t *testing.T) {
	h := newHarness(t, Config{})
	rec := newRecorder(t, "foo")
	rec.respond = func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Server", "backend/1.0")
		hd.Set("Connection", "X-Resp-Hop")
		hd.Set("X-Resp-Hop", "1")
		hd.Set("Keep-Alive", "timeout=1")
		hd.Set("Proxy-Authenticate", "Basic")
		hd.Set("X-Backend", "yes")
		hd.Set("Content-Length", "5")
		w.Write([]byte("hello"))
	}
	router := newRouter(fakeRoute{host: "example.com", path: "/foo", backend: 0})
	h.swap(router, backendOf(t, "ns/foo:80", rec.addr()))

	c := dialRaw(t, h.addr())
	res, body := c.roundTrip("GET", "GET /foo/bar?x=1&y=%2F HTTP/1.1\r\n"+
		"Host: Example.COM:8080\r\n"+
		"User-Agent: test-agent/1.0\r\n"+
		"X-Forwarded-For: 6.6.6.6, 7.7.7.7\r\n"+
		"X-Real-IP: 6.6.6.6\r\n"+
		"X-Forwarded-Proto: https\r\n"+
		"X-Forwarded-Host: evil.example\r\n"+
		"X-Forwarded-Port: 1\r\n"+
		"X-Forwarded-Scheme: https\r\n"+
		"X-Scheme: https\r\n"+
		"Forwarded: for=6.6.6.6;proto=https\r\n"+
		"X-Original-Forwarded-For: 6.6.6.6\r\n"+
		"X-Forwarded-Prefix: /admin\r\n"+
		"X-Request-ID: abc-123.def_456:7+8/9=\r\n"+
		"Connection: keep-alive, X-Hop\r\n"+
		"X-Hop: secret\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"+
		"TE: trailers, deflate\r\n"+
		"Trailer: X-T\r\n"+
		"X-Custom: a\r\n"+
		"X-Custom: b\r\n"+
		"\r\n")
	got := rec.next(t)
	want := http.Header{
		"User-Agent":         {"test-agent/1.0"},
		"X-Forwarded-For":    {"127.0.0.1"},
		"X-Real-Ip":          {"127.0.0.1"},
		"X-Forwarded-Proto":  {"http"},
		"X-Forwarded-Scheme": {"http"},
		"X-Scheme":           {"http"},
		"X-Forwarded-Host":   {"Example.COM:8080"},
		"X-Forwarded-Port":   {h.port()},
		"X-Request-Id":       {"abc-123.def_456:7+8/9="},
		"Te":                 {"trailers"},
		"X-Custom":           {"a", "b"},
	}
	if !reflect.DeepEqual(got.header, want) {
		t.Errorf("backend header:\n got %v\nwant %v", got.header, want)
	}
	if got.host != "Example.COM:8080" {
		t.Errorf("backend Host = %q, want the client's", got.host)
	}
	if got.uri != "/foo/bar?x=1&y=%2F" {
		t.Errorf("backend request target = %q", got.uri)
	}
	// Normalising the host is the router's job: it gets the header as sent.
	if p := router.lastHost.Load(); p == nil || *p != "Example.COM:8080" {
		t.Errorf("router saw host %v, want the Host header as sent", p)
	}

	if res.StatusCode != http.StatusOK || body != "hello" {
		t.Fatalf("client got %d %q", res.StatusCode, body)
	}
	if s := res.Header.Get("Server"); s != "torii" {
		t.Errorf("Server = %q, want torii", s)
	}
	if res.ContentLength != 5 || len(res.TransferEncoding) != 0 {
		t.Errorf("Content-Length %d, Transfer-Encoding %v: response was re-framed", res.ContentLength, res.TransferEncoding)
	}
	for _, k := range []string{"X-Resp-Hop", "Keep-Alive", "Proxy-Authenticate"} {
		if v, ok := res.Header[k]; ok {
			t.Errorf("hop-by-hop response header %s: %v forwarded", k, v)
		}
	}
	if res.Header.Get("X-Backend") != "yes" {
		t.Errorf("end-to-end response header lost")
	}
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestRequestIDGeneratedWhenAbsentOrInvalid(t *testing.T) {
	h := newHarness(t, Config{})
	rec := newRecorder(t, "x")
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", rec.addr()))
	seen := map[string]bool{}
	for _, hdr := range []string{
		"",
		"X-Request-ID: has space\r\n",
		"X-Request-ID: " + strings.Repeat("a", 129) + "\r\n",
		"X-Request-ID: semi;colon\r\n",
	} {
		c := dialRaw(t, h.addr())
		res, _ := c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: x\r\n"+hdr+"\r\n")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		id := rec.next(t).header.Get("X-Request-Id")
		if !generatedID.MatchString(id) {
			t.Errorf("header %q: forwarded X-Request-ID %q is not a generated id", hdr, id)
		}
		if seen[id] {
			t.Errorf("generated id %q repeated", id)
		}
		seen[id] = true
	}
	long := strings.Repeat("b", 128)
	c := dialRaw(t, h.addr())
	c.roundTrip("GET", "GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: "+long+"\r\n\r\n")
	if id := rec.next(t).header.Get("X-Request-Id"); id != long {
		t.Errorf("valid 128-char id replaced by %q", id)
	}
}

func TestUserAgentNotAdded(t *testing.T) {
	h := newHarness(t, Config{})
	rec := newRecorder(t, "x")
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", rec.addr()))
	rawGet(t, h.addr(), "/", "x")
	if ua, ok := rec.next(t).header["User-Agent"]; ok {
		t.Fatalf("backend received User-Agent %q the client never sent", ua)
	}
}

func TestForwardedProtoHTTPS(t *testing.T) {
	p := New(Config{})
	defer p.Close()
	front := httptest.NewTLSServer(p)
	defer front.Close()
	rec := newRecorder(t, "x")
	reg := newTestRegistry(t, backendOf(t, "ns/x:80", rec.addr()))
	p.Swap(newRouter(prefix("/", 0)), reg)
	c := front.Client()
	c.Timeout = testTimeout
	res, err := c.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if p := rec.next(t).header.Get("X-Forwarded-Proto"); p != "https" {
		t.Fatalf("X-Forwarded-Proto = %q, want https", p)
	}
}

func TestRequestBodyFraming(t *testing.T) {
	h := newHarness(t, Config{})
	rec := newRecorder(t, "x")
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", rec.addr()))
	tests := []struct {
		name, raw string
		wantCL    int64
		wantTE    []string
		wantBody  string
	}{
		{"GET without body", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, nil, ""},
		{"POST with length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 5, nil, "hello"},
		{"POST empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 0, nil, ""},
		{"POST chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", -1, []string{"chunked"}, "abcde"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, h.addr())
			res, _ := c.roundTrip("POST", tt.raw)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			got := rec.next(t)
			if got.contentLength != tt.wantCL || !reflect.DeepEqual(got.te, tt.wantTE) || string(got.body) != tt.wantBody {
				t.Fatalf("backend saw Content-Length %d, Transfer-Encoding %v, body %q; want %d, %v, %q",
					got.contentLength, got.te, got.body, tt.wantCL, tt.wantTE, tt.wantBody)
			}
		})
	}
}

func TestHeadAndNoBodyStatuses(t *testing.T) {
	h := newHarness(t, Config{})
	rec := newRecorder(t, "x")
	rec.respond = func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(http.StatusNoContent)
		case "/304":
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("Content-Length", "1234")
			if r.Method != http.MethodHead {
				w.Write([]byte(strings.Repeat("z", 1234)))
			}
		}
	}
	h.swap(newRouter(prefix("/", 0)), backendOf(t, "ns/x:80", rec.addr()))
	// All on one connection: any framing mistake desynchronises the next
	// response.
	c := dialRaw(t, h.addr())
	res, body := c.roundTrip("HEAD", "HEAD /doc HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != 200 || res.ContentLength != 1234 || body != "" {
		t.Fatalf("HEAD: %d, length %d, body %q", res.StatusCode, res.ContentLength, body)
	}
	res, body = c.roundTrip("GET", "GET /204 HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != 204 || body != "" {
		t.Fatalf("204: %d %q", res.StatusCode, body)
	}
	res, body = c.roundTrip("GET", "GET /304 HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != 304 || body != "" || res.Header.Get("ETag") != `"v1"` {
		t.Fatalf("304: %d %q %v", res.StatusCode, body, res.Header)
	}
	res, body = c.roundTrip("GET", "GET /doc HTTP/1.1\r\nHost: x\r\n\r\n")
	if res.StatusCode != 200 || len(body) != 1234 {
		t.Fatalf("GET after HEAD/204/304: %d, %d bytes", res.StatusCode, len(body))
	}
}

func TestAbsoluteFormTarget(t *testing.T) {
	h := newHarness(t, Config{})
	rec := newRecorder(t, "foo")
	h.swap(newRouter(fakeRoute{host: "example.com", path: "/foo", exact: true}), backendOf(t, "ns/foo:80", rec.addr()))
	c := dialRaw(t, h.addr())
	res, _ := c.roundTrip("GET", "GET http://example.com/x/../foo?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	got := rec.next(t)
	if got.uri != "/foo?q=1" || got.host != "example.com" {
		t.Fatalf("backend saw %q host %q", got.uri, got.host)
	}
}

func TestClientIP(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:1234":    "192.0.2.1",
		"[2001:db8::1]:443": "2001:db8::1",
		"192.0.2.1":         "192.0.2.1",
		"2001:db8::1":       "2001:db8::1",
		"@":                 "@",
	} {
		if got := clientIP(in); got != want {
			t.Errorf("clientIP(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidRequestID(t *testing.T) {
	for in, want := range map[string]bool{
		"":                                     false,
		"a":                                    true,
		"550e8400-e29b-41d4-a716-446655440000": true,
		"YWJj+/=":                              true,
		"a.b_c:d":                              true,
		"a b":                                  false,
		"a\"b":                                 false,
		"é":                                    false,
		strings.Repeat("x", 128):               true,
		strings.Repeat("x", 129):               false,
	} {
		if got := validRequestID(in); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestRequestIDsUnique(t *testing.T) {
	var g requestIDs
	g.init()
	seen := make(map[string]bool, 10000)
	for i := 0; i < 10000; i++ {
		id := g.next()
		if !generatedID.MatchString(id) || seen[id] {
			t.Fatalf("id %d: %q invalid or repeated", i, id)
		}
		seen[id] = true
	}
}

func TestHasToken(t *testing.T) {
	tests := []struct {
		values []string
		token  string
		want   bool
	}{
		{[]string{"keep-alive, Upgrade"}, "upgrade", true},
		{[]string{"keep-alive", " upgrade "}, "Upgrade", true},
		{[]string{"upgraded"}, "upgrade", false},
		{[]string{"websocket, h2c"}, "h2c", true},
		{nil, "x", false},
		{[]string{",,"}, "", false},
	}
	for _, tt := range tests {
		if got := hasToken(tt.values, tt.token); got != tt.want {
			t.Errorf("hasToken(%q, %q) = %v, want %v", tt.values, tt.token, got, tt.want)
		}
	}
}

func TestRequestTarget(t *testing.T) {
	tests := []struct {
		uri, path, query string
		hasQuery, ok     bool
	}{
		{"/a/b?c=d", "/a/b", "c=d", true, true},
		{"/a?", "/a", "", true, true},
		{"/a", "/a", "", false, true},
		{"http://h/p?q", "/p", "q", true, true},
		{"http://h", "/", "", false, true},
		{"http://h?q=1", "/", "q=1", true, true},
		{"https://u@h:8/x/y", "/x/y", "", false, true},
		{"*", "*", "", false, true},
		// Everything RFC 3986 allows in a query passes unchanged, escapes
		// (even malformed ones) included.
		{"/a?" + queryChars, "/a", queryChars, true, true},
		{"/a?x=%zz%2", "/a", "x=%zz%2", true, true},
		// Bytes a query may not hold raw are escaped, not forwarded raw.
		{"/a?x HTTP/1.0", "/a", "x%20HTTP/1.0", true, true},
		{"/a?q=caf\xc3\xa9", "/a", "q=caf%C3%A9", true, true},
		{"/a?\"<>{}|\\^`#[]", "/a", "%22%3C%3E%7B%7D%7C%5C%5E%60%23%5B%5D", true, true},
		{"http://h?a b", "/", "a%20b", true, true},
		// Control bytes are refused.
		{"/a?x\r\nInjected: 1", "", "", true, false},
		{"/a?x\x00", "", "", true, false},
		{"/a?x\x7f", "", "", true, false},
		{"/a?x\ty", "", "", true, false},
	}
	for _, tt := range tests {
		r := &http.Request{RequestURI: tt.uri}
		p, q, hq, ok := requestTarget(r)
		if ok != tt.ok || ok && (p != tt.path || q != tt.query || hq != tt.hasQuery) {
			t.Errorf("requestTarget(%q) = %q, %q, %v, %v; want %q, %q, %v, %v", tt.uri, p, q, hq, ok, tt.path, tt.query, tt.hasQuery, tt.ok)
		}
	}
	r := httptest.NewRequest("GET", "/x%2Fy?z", nil)
	r.RequestURI = ""
	if p, q, _, _ := requestTarget(r); p != "/x%2Fy" || q != "z" {
		t.Errorf("in-process request: %q %q", p, q)
	}
}

// queryChars is every byte RFC 3986 allows raw in a query, and '%'.
const queryChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%"

func TestCleanQueryDoesNotAllocateWhenClean(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { cleanQuery("a=1&b=%2F&c=x:y@z/?") }); n != 0 {
		t.Fatalf("cleanQuery allocated %v times for a clean query", n)
	}
}

func ExampleProxy() {
	p := New(Config{})
	defer p.Close()
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r) // no Swap yet: not ready
	fmt.Println(w.Code)
	// Output: 503
}

func TestHTTP2Client(t *testing.T) {
	p := New(Config{})
	defer p.Close()
	front := httptest.NewUnstartedServer(p)
	front.EnableHTTP2 = true
	front.StartTLS()
	defer front.Close()
	rec := newRecorder(t, "x")
	p.Swap(newRouter(exact("/foo", 0)), newTestRegistry(t, backendOf(t, "ns/x:80", rec.addr())))
	c := front.Client()
	c.Timeout = testTimeout
	res, err := c.Get(front.URL + "/x/../fo%6F?q=%41")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != http.StatusOK {
		t.Fatalf("got %s %d", res.Proto, res.StatusCode)
	}
	got := rec.next(t)
	if got.uri != "/foo?q=%41" || got.header.Get("X-Forwarded-Proto") != "https" {
		t.Fatalf("backend saw %q, proto %q", got.uri, got.header.Get("X-Forwarded-Proto"))
	}
}
