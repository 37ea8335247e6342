package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/torii-dev/torii/internal/model"
)

// fixedRouter sends everything to backend 0 without allocating, so the
// benchmarks measure the proxy rather than a fake router.
type fixedRouter struct{ route model.Route }

func (f *fixedRouter) Match(string, string) (*model.Route, int, bool) { return &f.route, 0, true }

// discardWriter is a reusable http.ResponseWriter that drops the body.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Flush()                      {}

// cannedRoundTripper answers every request with the same response without
// allocating, so a benchmark through it counts the handler's own work only.
type cannedRoundTripper struct {
	res  http.Response
	body bytes.Reader
	data []byte
}

func newCannedRoundTripper() *cannedRoundTripper {
	c := &cannedRoundTripper{data: []byte("hello")}
	c.res = http.Response{
		StatusCode:    200,
		ContentLength: 5,
		Header: http.Header{
			"Content-Length": {"5"},
			"Content-Type":   {"text/plain"},
			"Date":           {"Mon, 01 Jan 2026 00:00:00 GMT"},
		},
		Body: io.NopCloser(&c.body),
	}
	return c
}

func (c *cannedRoundTripper) RoundTrip(*http.Request) (*http.Response, error) {
	c.body.Reset(c.data)
	return &c.res, nil
}

// benchRequest is a typical browser-ish GET as net/http's server would hand
// it over.
func benchRequest() *http.Request {
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80})
	r := httptest.NewRequest("GET", "http://example.com/api/v1/users/42?expand=1", nil).WithContext(ctx)
	r.RequestURI = "/api/v1/users/42?expand=1"
	r.RemoteAddr = "192.0.2.10:54321"
	r.Body = http.NoBody
	return r
}

// resetRequestHeader refills h with a fixed client header set without
// allocating (the map keeps its capacity; the slices are shared constants).
func resetRequestHeader(h http.Header, template http.Header) {
	clear(h)
	for k, v := range template {
		h[k] = v
	}
}

var benchClientHeader = http.Header{
	"User-Agent":      {"Mozilla/5.0 (X11; Linux x86_64) bench"},
	"Accept":          {"application/json"},
	"Accept-Encoding": {"gzip, deflate, br"},
	"Accept-Language": {"en-US,en;q=0.9"},
	"Cookie":          {"session=0123456789abcdef"},
}

// BenchmarkProxyHandler measures the handler alone: an in-memory upstream,
// no network, so allocs/op is what the proxy allocates per request.
//
// "reused-maps" refills the same request and response header maps, showing
// the handler's own allocations. "fresh-maps" gives every request new maps,
// as net/http does, so it also counts map growth caused by the headers the
// proxy adds; subtract the 2 allocations the benchmark makes itself (the
// two maps net/http would have made anyway).
func BenchmarkProxyHandler(b *testing.B) {
	p := New(Config{})
	defer p.Close()
	p.roundTripper = newCannedRoundTripper()
	backends := newTestRegistry(&testing.T{}, model.Backend{ID: "ns/x:80", Endpoints: []model.Endpoint{{Address: "127.0.0.1", Port: 1}}})
	p.Swap(&fixedRouter{}, backends)
	b.Run("reused-maps", func(b *testing.B) {
		r := benchRequest()
		w := &discardWriter{h: make(http.Header)}
		b.ReportAllocs()
		for b.Loop() {
			resetRequestHeader(r.Header, benchClientHeader)
			clear(w.h)
			p.ServeHTTP(w, r)
			if w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
		}
	})
	b.Run("fresh-maps", func(b *testing.B) {
		r := benchRequest()
		w := &discardWriter{}
		b.ReportAllocs()
		for b.Loop() {
			r.Header = make(http.Header, len(benchClientHeader))
			resetRequestHeader(r.Header, benchClientHeader)
			w.h = make(http.Header)
			p.ServeHTTP(w, r)
			if w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
		}
	})
}

// rawBackend is a minimal keep-alive HTTP/1.1 server for body-less requests
// that allocates nothing per request, so benchmarks through it count the
// proxy and its Transport rather than a backend.
func rawBackend(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 { // end of the request head
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// BenchmarkProxy measures the whole handler against a loopback backend: the
// real Transport, connection pool and wire round trip included.
func BenchmarkProxy(b *testing.B) {
	p := New(Config{})
	defer p.Close()
	backends := newTestRegistry(&testing.T{}, backendOfB(b, "ns/x:80", rawBackend(b)))
	p.Swap(&fixedRouter{}, backends)
	b.Run("serial", func(b *testing.B) {
		r := benchRequest()
		w := &discardWriter{h: make(http.Header)}
		b.ReportAllocs()
		for b.Loop() {
			resetRequestHeader(r.Header, benchClientHeader)
			clear(w.h)
			p.ServeHTTP(w, r)
			if w.code != 200 {
				b.Fatalf("status %d", w.code)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			r := benchRequest()
			w := &discardWriter{h: make(http.Header)}
			for pb.Next() {
				resetRequestHeader(r.Header, benchClientHeader)
				clear(w.h)
				p.ServeHTTP(w, r)
				if w.code != 200 {
					b.Errorf("status %d", w.code)
					return
				}
			}
		})
	})
}

// BenchmarkEndToEnd drives a real client through a real front server, the
// proxy and a loopback backend; allocations include client and server.
func BenchmarkEndToEnd(b *testing.B) {
	p := New(Config{})
	defer p.Close()
	p.Swap(&fixedRouter{}, newTestRegistry(&testing.T{}, backendOfB(b, "ns/x:80", rawBackend(b))))
	front := httptest.NewServer(p)
	defer front.Close()
	client := front.Client()
	req, _ := http.NewRequest("GET", front.URL+"/api/v1/users/42", nil)
	b.ReportAllocs()
	for b.Loop() {
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
}

func BenchmarkRequestID(b *testing.B) {
	var g requestIDs
	g.init()
	b.ReportAllocs()
	for b.Loop() {
		_ = g.next()
	}
}

// BenchmarkRequestIDCryptoRand is the alternative requestIDs was measured
// against.
func BenchmarkRequestIDCryptoRand(b *testing.B) {
	b.ReportAllocs()
	var raw [16]byte
	for b.Loop() {
		rand.Read(raw[:])
		_ = hex.EncodeToString(raw[:])
	}
}

func backendOfB(b *testing.B, id, addr string) model.Backend {
	b.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	var n int32
	for _, c := range port {
		n = n*10 + int32(c-'0')
	}
	return model.Backend{ID: id, Endpoints: []model.Endpoint{{Address: host, Port: n}}}
}

// BenchmarkBaselineTransport is a bare http.Transport round trip to the same
// loopback backend, without the proxy: BenchmarkProxy minus this is what the
// proxy adds.
func BenchmarkBaselineTransport(b *testing.B) {
	addr := rawBackend(b)
	tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v1/users/42?expand=1", nil)
	req.Header = benchClientHeader.Clone()
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		res, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := res.Body.Read(buf); err != nil {
				break
			}
		}
		res.Body.Close()
	}
}
