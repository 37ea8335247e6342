package listener

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/torii-dev/torii/internal/dataplane/certstore"
)

// protoHandler reports how the request arrived. tls comes from r.TLS alone:
// net/http sets it for HTTP/1 through the guard (whose ConnectionState
// method stands in for a *tls.Conn's) and the HTTP/2 server for h2.
func protoHandler(w http.ResponseWriter, r *http.Request) {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	st := r.TLS
	sni := ""
	if st != nil {
		sni = st.ServerName
	}
	fmt.Fprintf(w, "proto=%s tls=%v sni=%s local=%v", r.Proto, st != nil, sni, local)
}

// tlsSetup returns a server TLS config from certstore and a client config
// trusting it.
func tlsSetup(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	cert, err := certstore.SelfSigned([]string{"localhost", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert.Leaf)
	return certstore.New(&cert).TLSConfig(), &tls.Config{RootCAs: roots, ServerName: "localhost"}
}

func get(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func h2cClient() *http.Client {
	return &http.Client{Timeout: ioTimeout, Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func TestH2CPriorKnowledge(t *testing.T) {
	ts := startServer(t, Config{Handler: http.HandlerFunc(protoHandler)})
	addr := ts.HTTPAddr().String()
	want := fmt.Sprintf("proto=HTTP/2.0 tls=false sni= local=%s", addr)
	if got := get(t, h2cClient(), "http://"+addr+"/"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// HTTP/1.1 on the same listener still works.
	h1 := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{}}
	want = fmt.Sprintf("proto=HTTP/1.1 tls=false sni= local=%s", addr)
	if got := get(t, h1, "http://"+addr+"/"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestTLSALPN(t *testing.T) {
	serverTLS, clientTLS := tlsSetup(t)
	ts := startServer(t, Config{HTTPSAddr: "127.0.0.1:0", TLSConfig: serverTLS, Handler: http.HandlerFunc(protoHandler)})
	addr := ts.HTTPSAddr().String()
	url := "https://" + addr + "/"
	t.Run("h2", func(t *testing.T) {
		client := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: clientTLS.Clone(), ForceAttemptHTTP2: true}}
		want := fmt.Sprintf("proto=HTTP/2.0 tls=true sni=localhost local=%s", addr)
		if got := get(t, client, url); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("http/1.1", func(t *testing.T) {
		cfg := clientTLS.Clone()
		cfg.NextProtos = []string{"http/1.1"}
		client := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: cfg}}
		want := fmt.Sprintf("proto=HTTP/1.1 tls=true sni=localhost local=%s", addr)
		if got := get(t, client, url); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("no ALPN", func(t *testing.T) {
		d := &tls.Dialer{Config: clientTLS.Clone(), NetDialer: &net.Dialer{Timeout: ioTimeout}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "" {
			t.Fatalf("negotiated %q", p)
		}
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("proto=HTTP/1.1 tls=true sni=localhost local=%s", addr)
		if got := bodyOf(resp); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

func TestTLSGuardRejects(t *testing.T) {
	serverTLS, clientTLS := tlsSetup(t)
	ts := startServer(t, Config{HTTPSAddr: "127.0.0.1:0", TLSConfig: serverTLS})
	cfg := clientTLS.Clone()
	cfg.NextProtos = []string{"http/1.1"}
	d := &tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: ioTimeout}}
	c, err := d.Dial("tcp", ts.HTTPSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nPOST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	raw, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, raw)
	}
	resps := responses(t, string(raw))
	if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != 400 {
		t.Fatalf("got %q", raw)
	}
	if got := ts.seen(); len(got) != 1 || got[0] != "/ok" {
		t.Fatalf("handler saw %q", got)
	}
}

func TestPlainHTTPOnTLSPort(t *testing.T) {
	serverTLS, _ := tlsSetup(t)
	ts := startServer(t, Config{HTTPSAddr: "127.0.0.1:0", TLSConfig: serverTLS})
	raw, closed := rawExchange(t, ts.HTTPSAddr(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if !closed || !strings.HasPrefix(raw, "HTTP/1.0 400 Bad Request\r\n") {
		t.Fatalf("closed=%v %q", closed, raw)
	}
}

func TestTLSHandshakeTimeout(t *testing.T) {
	serverTLS, clientTLS := tlsSetup(t)
	ts := startServer(t, Config{HTTPSAddr: "127.0.0.1:0", TLSConfig: serverTLS, ReadHeaderTimeout: time.Second})
	stuck, err := net.DialTimeout("tcp", ts.HTTPSAddr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	stuck.SetDeadline(time.Now().Add(ioTimeout))
	start := time.Now()
	io.WriteString(stuck, "\x16\x03\x01")
	// A client that never finishes its handshake does not hold up others.
	client := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: clientTLS}}
	if got := get(t, client, "https://"+ts.HTTPSAddr().String()+"/ok"); got != `GET /ok body=""` {
		t.Fatalf("got %q", got)
	}
	if n, err := stuck.Read(make([]byte, 1)); err == nil {
		t.Fatalf("stuck handshake got %d bytes instead of being closed", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stuck handshake closed after %v", d)
	}
}

func TestHTTP2GracefulDrain(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	ts := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	})})
	addr := ts.HTTPAddr().String()
	client := h2cClient()
	// Open the connection first, so that the slow request is in flight on
	// an established HTTP/2 connection when draining starts.
	if got := get(t, client, "http://"+addr+"/warm"); got != "done /warm" {
		t.Fatalf("warm-up: %q", got)
	}
	got := make(chan string, 1)
	go func() {
		resp, err := client.Get("http://" + addr + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	select {
	case <-started:
	case <-time.After(ioTimeout):
		t.Fatal("request never reached the handler")
	}
	stopped := make(chan error, 1)
	go func() { stopped <- ts.stop() }()
	waitRefused(t, addr)
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned %v with a stream in flight", err)
	default:
	}
	close(release)
	select {
	case body := <-got:
		if body != "done /slow" {
			t.Fatalf("in-flight stream: %q", body)
		}
	case <-time.After(ioTimeout):
		t.Fatal("in-flight stream did not finish")
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Serve did not return")
	}
}

func TestH2CPrefaceOnlyAtStart(t *testing.T) {
	ts := startServer(t, Config{})
	// A preface with the wrong tail is an HTTP/1 request line for HTTP/2.0,
	// which is refused.
	raw, closed := rawExchange(t, ts.HTTPAddr(), "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
	if !closed || !strings.HasPrefix(raw, "HTTP/1.1 400 Bad Request\r\n") {
		t.Fatalf("closed=%v %q", closed, raw)
	}
	// A slow client sending the preface a byte at a time still gets HTTP/2.
	c, err := net.DialTimeout("tcp", ts.HTTPAddr().String(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	for i := range len(h2Preface) {
		if _, err := io.WriteString(c, h2Preface[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	fr := http2.NewFramer(c, bufio.NewReader(c))
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*http2.SettingsFrame); !ok {
		t.Fatalf("first frame %T, want SETTINGS", f)
	}
}
