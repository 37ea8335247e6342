package fastpath

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// benchRequest is the request of proxy.BenchmarkProxy as a browser-ish
// client sends it.
const benchRequest = "GET /api/v1/users/42?expand=1 HTTP/1.1\r\n" +
	"Host: example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\n" +
	"Accept: application/json\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=0123456789abcdef\r\n" +
	"\r\n"

var benchRequestBytes = []byte(benchRequest)

// benchBackend is proxy's rawBackend: a keep-alive HTTP/1.1 server for
// body-less requests that allocates nothing per request.
func benchBackend(b *testing.B) string {
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
						if len(line) <= 2 {
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

// benchClient is a keep-alive client that sends benchRequest and reads the
// (known-length) response without allocating.
type benchClient struct {
	c   net.Conn
	buf []byte
}

func newBenchClient(b *testing.B, addr string) *benchClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return &benchClient{c: c, buf: make([]byte, 4096)}
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	clHeader = []byte("\r\nContent-Length: ")
)

func (bc *benchClient) do() error {
	if _, err := bc.c.Write(benchRequestBytes); err != nil {
		return err
	}
	n := 0
	for {
		k, err := bc.c.Read(bc.buf[n:])
		if err != nil {
			return err
		}
		n += k
		end := bytes.Index(bc.buf[:n], crlfcrlf)
		if end < 0 {
			continue
		}
		i := bytes.Index(bc.buf[:end], clHeader)
		if i < 0 {
			return io.ErrUnexpectedEOF
		}
		j := i + len(clHeader)
		l := 0
		for bc.buf[j] >= '0' && bc.buf[j] <= '9' {
			l = l*10 + int(bc.buf[j]-'0')
			j++
		}
		if n >= end+4+l {
			if !bytes.HasPrefix(bc.buf, []byte("HTTP/1.1 200 ")) {
				return io.ErrUnexpectedEOF
			}
			return nil
		}
	}
}

func benchmarkListener(b *testing.B, fastOn bool) {
	h := newHarness(b, fastOn, harnessOpts{})
	h.swap(nil, backendOf(b, "ns/x:80", benchBackend(b)))
	b.Run("serial", func(b *testing.B) {
		bc := newBenchClient(b, h.addr())
		b.ReportAllocs()
		for b.Loop() {
			if err := bc.do(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			bc := newBenchClient(b, h.addr())
			for pb.Next() {
				if err := bc.do(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkFastPath measures a keep-alive request end to end through the
// listener with the fast path: a raw client, the fast path, a loopback
// backend, all in this process. allocs/op is the whole process's, client
// and backend included (which allocate nothing).
func BenchmarkFastPath(b *testing.B) { benchmarkListener(b, true) }

// BenchmarkNetHTTPPath is BenchmarkFastPath through the same listener
// without the fast path: guard, net/http's server, the proxy and its
// Transport.
func BenchmarkNetHTTPPath(b *testing.B) { benchmarkListener(b, false) }

// BenchmarkParseRequest measures the fast path's head parsing (the guard's
// check included) of benchRequest.
func BenchmarkParseRequest(b *testing.B) {
	s := newTestServer()
	defer s.Close()
	head := []byte(benchRequest)
	var r request
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		r.reset()
		if !s.parseRequest(head, &r) {
			b.Fatal("handed off")
		}
	}
}

// BenchmarkUpstreamHead measures building the upstream request head.
func BenchmarkUpstreamHead(b *testing.B) {
	s := newTestServer()
	defer s.Close()
	var r request
	if !s.parseRequest([]byte(benchRequest), &r) {
		b.Fatal("handed off")
	}
	c := &conn{s: s, clientIP: "192.0.2.10", localPort: strconv.Itoa(80)}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = c.appendUpstreamHead(buf[:0], &r)
	}
}

// BenchmarkPeek measures the non-blocking check of an idle pooled
// connection, which requests that cannot be replayed make before reuse.
func BenchmarkPeek(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	u := &upConn{nc: nc}
	b.ReportAllocs()
	for b.Loop() {
		if !u.alive() {
			b.Fatal("dead")
		}
	}
}

// BenchmarkTransport measures one round trip of Transport, the upstream
// side of the proxy's net/http path (HTTP/2 streams), against a loopback
// backend: request head, pooled connection, response head and body.
func BenchmarkTransport(b *testing.B) {
	s := newTestServer()
	defer s.Close()
	benchmarkRoundTripper(b, s.Transport(nil))
}

// BenchmarkHTTPTransport is BenchmarkTransport with net/http's Transport,
// configured as the proxy configures it, for comparison.
func BenchmarkHTTPTransport(b *testing.B) {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true, Protocols: &protocols}
	defer tr.CloseIdleConnections()
	benchmarkRoundTripper(b, tr)
}

func benchmarkRoundTripper(b *testing.B, rt http.RoundTripper) {
	addr := benchBackend(b)
	req, err := http.NewRequest("GET", "http://"+addr+"/api/v1/users/42?expand=1", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Host = "example.com"
	for k, v := range map[string]string{
		"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) bench", "Accept": "application/json",
		"X-Forwarded-For": "192.0.2.10", "X-Request-Id": "0123456789abcdef0123456789abcdef",
	} {
		req.Header.Set(k, v)
	}
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		res, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.ReadFull(res.Body, buf[:5])
		if _, err := res.Body.Read(buf); err != io.EOF || n != 5 {
			b.Fatalf("body: %d %v", n, err)
		}
		res.Body.Close()
	}
}
