package certstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/model"
)

// pemCert returns a self-signed certificate for hosts as a model.Certificate
// and the serial number that identifies it in handshakes.
func pemCert(t testing.TB, id string, hosts ...string) (model.Certificate, string) {
	t.Helper()
	cert, err := SelfSigned(hosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return model.Certificate{
		ID:      id,
		Hosts:   hosts,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, cert.Leaf.SerialNumber.String()
}

func serialOf(t testing.TB, c *tls.Certificate) string {
	t.Helper()
	if c == nil || c.Leaf == nil {
		t.Fatalf("certificate %v has no leaf", c)
	}
	return c.Leaf.SerialNumber.String()
}

func TestGetCertificateSelection(t *testing.T) {
	def, err := SelfSigned([]string{"default.invalid"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	exact, exactSerial := pemCert(t, "ns/exact", "www.example.com")
	wild, wildSerial := pemCert(t, "ns/wild", "*.example.com", "*.other.test")
	apex, apexSerial := pemCert(t, "ns/apex", "example.com")
	s := New(&def)
	if errs := s.Update([]model.Certificate{apex, exact, wild}); len(errs) != 0 {
		t.Fatal(errs)
	}
	defSerial := def.Leaf.SerialNumber.String()

	tests := []struct {
		name string
		sni  string
		want string
	}{
		{"exact beats wildcard", "www.example.com", exactSerial},
		{"exact is case-insensitive", "WWW.Example.COM", exactSerial},
		{"trailing dot ignored", "www.example.com.", exactSerial},
		{"wildcard one label", "api.example.com", wildSerial},
		{"wildcard case-insensitive", "API.EXAMPLE.COM", wildSerial},
		{"second wildcard of same cert", "x.other.test", wildSerial},
		{"wildcard not two labels", "a.b.example.com", defSerial},
		{"wildcard not apex", "other.test", defSerial},
		{"apex exact", "example.com", apexSerial},
		{"unknown name", "unknown.test", defSerial},
		{"missing SNI", "", defSerial},
		{"empty first label", ".example.com", defSerial},
		{"lone dot", ".", defSerial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.sni})
			if err != nil {
				t.Fatal(err)
			}
			if serial := serialOf(t, got); serial != tt.want {
				t.Errorf("SNI %q: got serial %s, want %s", tt.sni, serial, tt.want)
			}
		})
	}
}

func TestGetCertificateWithoutDefault(t *testing.T) {
	c, serial := pemCert(t, "ns/a", "a.test")
	s := New(nil)
	if errs := s.Update([]model.Certificate{c}); len(errs) != 0 {
		t.Fatal(errs)
	}
	got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	if err != nil || serialOf(t, got) != serial {
		t.Fatalf("a.test: got %v, %v", got, err)
	}
	if got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.test"}); err == nil {
		t.Fatalf("b.test: got %v, want an error without a default certificate", got)
	}
}

func TestFirstCertificateWinsDuplicateHost(t *testing.T) {
	first, firstSerial := pemCert(t, "ns/a", "dup.test")
	second, _ := pemCert(t, "ns/b", "dup.test")
	s := New(nil)
	s.Update([]model.Certificate{first, second})
	got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "dup.test"})
	if err != nil || serialOf(t, got) != firstSerial {
		t.Fatalf("got %v, %v; want the first certificate", got, err)
	}
}

func TestUpdateSkipsBadPEM(t *testing.T) {
	good, goodSerial := pemCert(t, "ns/good", "good.test")
	other, _ := pemCert(t, "ns/other", "other.test")
	badPEM := model.Certificate{ID: "ns/bad-pem", Hosts: []string{"bad.test"}, CertPEM: []byte("not pem"), KeyPEM: []byte("nope")}
	mismatched := model.Certificate{ID: "ns/mismatch", Hosts: []string{"mismatch.test"}, CertPEM: good.CertPEM, KeyPEM: other.KeyPEM}

	s := New(nil)
	errs := s.Update([]model.Certificate{badPEM, good, mismatched})
	if len(errs) != 2 {
		t.Fatalf("got %d errors (%v), want 2", len(errs), errs)
	}
	for _, host := range []string{"bad.test", "mismatch.test"} {
		if c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: host}); err == nil {
			t.Errorf("%s: got %v, want no certificate", host, c)
		}
	}
	got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "good.test"})
	if err != nil || serialOf(t, got) != goodSerial {
		t.Fatalf("good.test: got %v, %v", got, err)
	}
}

func TestUpdateReusesParsedCertificates(t *testing.T) {
	a, _ := pemCert(t, "ns/a", "a.test")
	b, _ := pemCert(t, "ns/b", "b.test")
	s := New(nil)
	s.Update([]model.Certificate{a, b})
	first, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})

	// Same content under a fresh copy of the bytes and with new hosts: the
	// cache is keyed by content, so the parsed certificate is reused.
	a2 := a
	a2.CertPEM = append([]byte(nil), a.CertPEM...)
	a2.Hosts = []string{"a.test", "alias.test"}
	s.Update([]model.Certificate{a2})
	second, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	alias, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "alias.test"})
	if first != second || first != alias {
		t.Fatalf("unchanged certificate was parsed again: %p, %p, %p", first, second, alias)
	}
	if got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.test"}); err == nil {
		t.Fatalf("b.test still served after its removal: %v", got)
	}
	if len(s.cache) != 1 {
		t.Fatalf("cache holds %d entries, want only the current snapshot's 1", len(s.cache))
	}

	// A dropped certificate that comes back is parsed anew.
	s.Update([]model.Certificate{a, b})
	third, _ := s.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	if third != first {
		t.Fatalf("certificate kept across snapshots was re-parsed")
	}
}

// TestSwapUnderConcurrentHandshakes runs real handshakes on loopback while
// snapshots alternate between two certificates for the same name. Every
// handshake must get one of the two, never an error or the default.
func TestSwapUnderConcurrentHandshakes(t *testing.T) {
	const (
		clients    = 4
		dialsEach  = 10
		maxSwaps   = 1_000_000
		testBudget = 30 * time.Second
	)
	def, err := SelfSigned(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	gen1, serial1 := pemCert(t, "ns/one", "swap.test")
	gen2, serial2 := pemCert(t, "ns/two", "*.test")
	s := New(&def)
	s.Update([]model.Certificate{gen1})

	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var serverWG sync.WaitGroup
	serverWG.Add(1)
	go func() {
		defer serverWG.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serverWG.Add(1)
			go func() {
				defer serverWG.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(testBudget))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				// Wait for the client to hang up, so that it can read the
				// handshake's final flight before the connection goes away.
				io.Copy(io.Discard, c)
			}()
		}
	}()
	defer serverWG.Wait()
	defer ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), testBudget)
	defer cancel()
	var (
		wg       sync.WaitGroup
		seen1    atomic.Int64
		seen2    atomic.Int64
		failures = make(chan error, clients)
		dialer   = &tls.Dialer{Config: &tls.Config{
			ServerName:         "swap.test",
			InsecureSkipVerify: true,
			// Classic X25519 keeps handshakes cheap under the race detector.
			CurvePreferences: []tls.CurveID{tls.X25519},
		}}
		stopSwaps = make(chan struct{})
	)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range dialsEach {
				c, err := dialer.DialContext(ctx, "tcp", ln.Addr().String())
				if err != nil {
					failures <- err
					return
				}
				serial := c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
				c.Close()
				switch serial {
				case serial1:
					seen1.Add(1)
				case serial2:
					seen2.Add(1)
				default:
					failures <- errors.New("handshake served an unexpected certificate " + serial)
					return
				}
			}
		}()
	}
	// Swap for as long as handshakes run, so that they overlap.
	swapDone := make(chan int)
	go func() {
		i := 0
		for ; i < maxSwaps; i++ {
			select {
			case <-stopSwaps:
				swapDone <- i
				return
			default:
			}
			if i%2 == 0 {
				s.Update([]model.Certificate{gen2})
			} else {
				s.Update([]model.Certificate{gen1})
			}
		}
		swapDone <- i
	}()
	wg.Wait()
	close(stopSwaps)
	if n := <-swapDone; n < 2 {
		t.Fatalf("only %d swaps happened during the handshakes", n)
	}
	close(failures)
	for err := range failures {
		t.Error(err)
	}
	if seen1.Load()+seen2.Load() != clients*dialsEach {
		t.Fatalf("completed %d+%d handshakes, want %d", seen1.Load(), seen2.Load(), clients*dialsEach)
	}

	// After the last swap every new handshake sees the final snapshot.
	s.Update([]model.Certificate{gen2})
	c, err := dialer.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String(); got != serial2 {
		t.Fatalf("after the final swap got serial %s, want %s", got, serial2)
	}
}

func TestTLSConfig(t *testing.T) {
	def, err := SelfSigned([]string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := New(&def)
	cfg := s.TLSConfig()
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x", cfg.MinVersion)
	}
	if len(cfg.NextProtos) != 2 || cfg.NextProtos[0] != "h2" || cfg.NextProtos[1] != "http/1.1" {
		t.Errorf("NextProtos = %q", cfg.NextProtos)
	}
	for _, id := range cfg.CipherSuites {
		for _, insecure := range tls.InsecureCipherSuites() {
			if id == insecure.ID {
				t.Errorf("insecure suite %s configured", insecure.Name)
			}
		}
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	dial := func(cfg *tls.Config) (tls.ConnectionState, error) {
		d := &tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer c.Close()
		return c.(*tls.Conn).ConnectionState(), nil
	}
	if _, err := dial(&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 handshake succeeded")
	}
	if _, err := dial(&tls.Config{
		InsecureSkipVerify: true,
		MaxVersion:         tls.VersionTLS12,
		CipherSuites:       []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
	}); err == nil {
		t.Error("static-RSA key exchange was accepted")
	}
	st, err := dial(&tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN = %q, want h2", st.NegotiatedProtocol)
	}
	st, err = dial(&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.NegotiatedProtocol != "http/1.1" || st.Version != tls.VersionTLS13 {
		t.Errorf("ALPN = %q, version %x", st.NegotiatedProtocol, st.Version)
	}
}

func TestSelfSigned(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cert, err := SelfSigned([]string{"example.test", "192.0.2.1"}, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		t.Fatal("Leaf not set")
	}
	if leaf.Subject.CommonName != "Torii Default Certificate" {
		t.Errorf("CN = %q", leaf.Subject.CommonName)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Hour)) || !leaf.NotAfter.Equal(now.AddDate(1, 0, 0)) {
		t.Errorf("validity %v .. %v", leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("key algorithm %v", leaf.PublicKeyAlgorithm)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "example.test" || len(leaf.IPAddresses) != 1 {
		t.Errorf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if leaf.IsCA {
		t.Error("self-signed serving certificate is a CA")
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "example.test", Roots: pool, CurrentTime: now}); err != nil {
		t.Errorf("verify: %v", err)
	}
}

func BenchmarkGetCertificate(b *testing.B) {
	s := New(nil)
	c, _ := pemCert(b, "ns/w", "*.example.com")
	s.Update([]model.Certificate{c})
	hello := &tls.ClientHelloInfo{ServerName: "api.example.com"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetCertificate(hello); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSetDefaultReplacesTheFallback(t *testing.T) {
	first, err := SelfSigned(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	second, err := SelfSigned(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := New(&first)
	hello := &tls.ClientHelloInfo{ServerName: "unknown.example"}
	if got, _ := s.GetCertificate(hello); got != &first {
		t.Fatalf("before SetDefault: got %p, want the initial default %p", got, &first)
	}
	s.SetDefault(&second)
	if got, _ := s.GetCertificate(hello); got != &second {
		t.Fatalf("after SetDefault: got %p, want the new default %p", got, &second)
	}
	s.SetDefault(nil)
	if got, err := s.GetCertificate(hello); err == nil {
		t.Fatalf("with no default: got %p, want a handshake error", got)
	}
}
