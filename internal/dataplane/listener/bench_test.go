package listener

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// browserHead is a typical browser request head (about 600 bytes).
const browserHead = "GET /static/app.js?v=3 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/\r\n" +
	"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; consent=yes\r\n" +
	"Sec-Fetch-Dest: script\r\n" +
	"Sec-Fetch-Mode: no-cors\r\n" +
	"Sec-Fetch-Site: same-origin\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

func BenchmarkParseHead(b *testing.B) {
	h := []byte(browserHead)
	b.SetBytes(int64(len(h)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseHead(h); !ok {
			b.Fatal("refused")
		}
	}
}

// benchmarkGuardStream reads a pipelined stream of requests through a guard
// with net/http's 4 KiB reads and reports the guard's throughput.
func benchmarkGuardStream(b *testing.B, one string) {
	const requests = 64
	stream := []byte(strings.Repeat(one, requests))
	buf := make([]byte, 4096)
	pool := &bufPool{}
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		sc := &scriptConn{data: stream}
		raw := &trackedConn{Conn: sc, srv: &Server{}}
		g := newGuard(raw, raw, pool, DefaultMaxHeaderBytes+4096, DefaultReadHeaderTimeout)
		n := 0
		for {
			k, err := g.Read(buf)
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if n != len(stream) || g.in.heads != requests {
			b.Fatalf("released %d of %d bytes, %d heads", n, len(stream), g.in.heads)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*requests), "ns/request")
}

func BenchmarkGuardGET(b *testing.B) { benchmarkGuardStream(b, browserHead) }

func BenchmarkGuardPOST(b *testing.B) {
	body := strings.Repeat("x", 2000)
	benchmarkGuardStream(b, "POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n"+body)
}

func BenchmarkGuardChunked(b *testing.B) {
	chunk := strings.Repeat("y", 1000)
	benchmarkGuardStream(b, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n"+chunk+"\r\n3e8;ext=1\r\n"+chunk+"\r\n0\r\n\r\n")
}

// BenchmarkKeepAlive compares one keep-alive HTTP/1.1 request at a time
// through the Server (guard included) with a bare net/http server.
func BenchmarkKeepAlive(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	run := func(b *testing.B, addr string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		req := []byte(browserHead)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	b.Run("listener", func(b *testing.B) {
		s, err := New(Config{HTTPAddr: "127.0.0.1:0", Handler: handler})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		run(b, s.HTTPAddr().String())
		cancel()
		<-done
	})
	b.Run("net-http", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: handler}
		go srv.Serve(ln)
		run(b, ln.Addr().String())
		srv.Close()
	})
}
