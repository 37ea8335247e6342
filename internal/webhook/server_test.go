package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/torii-dev/torii/internal/store"
	"github.com/torii-dev/torii/internal/webhook/certs"
)

// TestServerTLSAndRotation serves reviews over TLS, refuses handshakes
// before a certificate exists, and serves a rotated certificate from the
// next connection on, without a restart.
func TestServerTLSAndRotation(t *testing.T) {
	holder := &certs.Holder{}
	srv, err := NewServer(ServerConfig{
		Addr:           "127.0.0.1:0",
		Handler:        newTestHandler(t, objects(t, baseObjects)),
		GetCertificate: holder.GetCertificate,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	url := "https://" + srv.Addr().String()

	a := mustGenerate(t)
	b := mustGenerate(t)
	body := reviewBody(t, admissionv1.Create, pathIngress("new", "/a/../b", "Exact", "web"), nil)
	call := func(ca []byte, method, path string) (*http.Response, error) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
		defer c.CloseIdleConnections()
		req, _ := http.NewRequest(method, url+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return c.Do(req)
	}

	if _, err := call(a.CACert, http.MethodPost, Path); err == nil {
		t.Fatal("a handshake succeeded before any certificate was set")
	}
	if _, err := holder.SetPEM(a.Cert, a.Key); err != nil {
		t.Fatal(err)
	}
	resp, err := call(a.CACert, http.MethodPost, Path)
	if err != nil {
		t.Fatal(err)
	}
	review := decodeHTTPReview(t, resp)
	if review.Response.Allowed || review.Response.Result == nil {
		t.Errorf("an invalid Ingress was allowed over TLS: %+v", review.Response)
	}
	if resp, err := call(a.CACert, http.MethodPost, "/validate/other"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("another path: %v %v, want 404", resp, err)
	}

	// Rotate: new connections get the new certificate.
	if changed, err := holder.SetPEM(b.Cert, b.Key); err != nil || !changed {
		t.Fatalf("SetPEM: %v %v", changed, err)
	}
	if _, err := call(a.CACert, http.MethodPost, Path); err == nil {
		t.Error("the old CA still verifies after rotation")
	}
	if resp, err := call(b.CACert, http.MethodPost, Path); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("after rotation: %v %v", resp, err)
	}
}

func decodeHTTPReview(t *testing.T, resp *http.Response) admissionv1.AdmissionReview {
	t.Helper()
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, buf.String())
	}
	var r admissionv1.AdmissionReview
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil || r.Response == nil {
		t.Fatalf("response %s: %v", buf.String(), err)
	}
	return r
}

func mustGenerate(t *testing.T) certs.Bundle {
	t.Helper()
	b, err := certs.Generate([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReviewDoesNotModifyItsInput(t *testing.T) {
	objs := objects(t, baseObjects)
	before := *objs
	ingresses := append([]*networkingv1.Ingress(nil), objs.Ingresses...)
	snapshot := objs.Ingresses[0].DeepCopy()
	cand := pathIngress("old", "/api", "Prefix", "web") // replaces shop/old
	v, _ := Review(testConfig, objs, cand, nil)
	if !v.Owned || !v.Allowed() || v.Ref.Name != "old" {
		t.Errorf("verdict %+v", v)
	}
	if len(objs.Ingresses) != len(ingresses) || objs.Ingresses[0] != ingresses[0] || len(before.Ingresses) != len(objs.Ingresses) {
		t.Error("Review changed the view's Ingress slice")
	}
	if !reflect.DeepEqual(snapshot, objs.Ingresses[0]) {
		t.Error("Review changed a stored Ingress")
	}
	view := WithIngress(objs, cand)
	if len(view.Ingresses) != 1 || view.Ingresses[0] != cand {
		t.Errorf("WithIngress did not replace shop/old: %d Ingresses", len(view.Ingresses))
	}
	if len(WithIngress(nil, cand).Ingresses) != 1 {
		t.Error("WithIngress(nil) lost the candidate")
	}
	if v, _ := Review(testConfig, &store.Objects{}, cand, nil); v.Owned {
		t.Error("owned without any IngressClass")
	}
}

// startTLSServer serves h over TLS with a fresh certificate and returns
// its address and CA.
func startTLSServer(t *testing.T, h http.Handler, logger *slog.Logger) (string, []byte) {
	t.Helper()
	holder := &certs.Holder{}
	b := mustGenerate(t)
	if _, err := holder.SetPEM(b.Cert, b.Key); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{Addr: "127.0.0.1:0", Handler: h, GetCertificate: holder.GetCertificate, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv.Addr().String(), b.CACert
}

// TestServerTLSPolicy: TLS 1.2 at least, AEAD suites only with 1.2,
// TLS 1.3 when the client offers it, and HTTP/1.1 only.
func TestServerTLSPolicy(t *testing.T) {
	addr, ca := startTLSServer(t, newTestHandler(t, objects(t, baseObjects)), nil)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	dial := func(cfg *tls.Config) (*tls.Conn, error) {
		cfg.RootCAs, cfg.ServerName = pool, "127.0.0.1"
		return tls.Dial("tcp", addr, cfg)
	}
	if c, err := dial(&tls.Config{MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	if c, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		c.Close()
		t.Error("a TLS 1.2 handshake with a CBC suite succeeded")
	}
	c, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	c.Close()
	c, err = dial(&tls.Config{NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	state := c.ConnectionState()
	c.Close()
	if state.Version != tls.VersionTLS13 || state.NegotiatedProtocol != "http/1.1" {
		t.Errorf("version %x, ALPN %q; want TLS 1.3 and http/1.1 (no HTTP/2)", state.Version, state.NegotiatedProtocol)
	}
	// An HTTP/2-capable client ends up on HTTP/1.1.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
	}}
	defer client.CloseIdleConnections()
	body := reviewBody(t, admissionv1.Create, pathIngress("new", "/new", "Prefix", "web"), nil)
	resp, err := client.Post("https://"+addr+Path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 1 {
		t.Errorf("protocol %s, want HTTP/1.1", resp.Proto)
	}
	decodeHTTPReview(t, resp)
}

// TestServerErrorLog: failed handshakes are logged at debug level, other
// server errors as warnings.
func TestServerErrorLog(t *testing.T) {
	var buf bytes.Buffer
	logs := &syncWriter{w: &buf}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	addr, _ := startTLSServer(t, newTestHandler(t, objects(t, baseObjects)), logger)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: plain\r\n\r\n")
	_, _ = io.ReadAll(c)
	c.Close()
	waitFor(t, "the handshake error in the log", func() bool {
		logs.mu.Lock()
		defer logs.mu.Unlock()
		return strings.Contains(buf.String(), "TLS handshake error")
	})
	logs.mu.Lock()
	line := buf.String()
	logs.mu.Unlock()
	if !strings.Contains(line, "level=DEBUG") || strings.Contains(line, "level=WARN") {
		t.Errorf("handshake error logged as %q, want debug level", line)
	}

	var direct bytes.Buffer
	w := serverErrorWriter{slog.New(slog.NewTextHandler(&direct, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	_, _ = w.Write([]byte("http: panic serving 10.0.0.1:1234: boom\n"))
	_, _ = w.Write([]byte("http: TLS handshake error from 10.0.0.1:1234: EOF\n"))
	lines := strings.Split(strings.TrimSpace(direct.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "time=") || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[1], "level=DEBUG") {
		t.Errorf("levels: %q", lines)
	}
}
