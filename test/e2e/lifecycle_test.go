package e2e

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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/torii-dev/torii/internal/server"
	"github.com/torii-dev/torii/internal/testcert"
	"github.com/torii-dev/torii/test/e2e/harness"
)

// lifeDefaultCertCN is the subject of the certificate Torii generates for
// handshakes no configured certificate matches (certstore.defaultCommonName).
const lifeDefaultCertCN = "Torii Default Certificate"

// lifeRotationBound is the bound from a TLS Secret update to the
// new certificate being served. It is only meaningful because the test
// polls with fresh handshakes at most lifePollInterval apart.
const (
	lifeRotationBound = 2 * time.Second
	lifePollInterval  = 10 * time.Millisecond
)

// lifeCert is a self-signed ECDSA certificate with its PEM encodings.
type lifeCert struct {
	leaf            *x509.Certificate
	certPEM, keyPEM []byte
	pool            *x509.CertPool // trusts exactly this certificate
}

// lifeNewCert creates a self-signed ECDSA P-256 server certificate for host.
func lifeNewCert(t *testing.T, cn, host string) lifeCert {
	t.Helper()
	c := testcert.SelfSigned(t, cn, host)
	return lifeCert{leaf: c.Leaf, certPEM: c.CertPEM, keyPEM: c.KeyPEM, pool: c.Pool}
}

func lifeTLSSecret(ns, name string, c lifeCert) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: c.certPEM, corev1.TLSPrivateKeyKey: c.keyPEM},
	}
}

// lifeHandshake does one fresh TLS handshake with Torii's HTTPS listener
// and returns the certificate it served for sni. It does not verify: it
// identifies which certificate is served, default one included.
func lifeHandshake(addr, sni string) (*x509.Certificate, error) {
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 2 * time.Second},
		Config:    &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}, // identifies the served certificate, default one included
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("no peer certificate")
	}
	return certs[0], nil
}

// lifeHTTPSClient is a verifying HTTPS client that trusts only roots and
// dials Torii's HTTPS listener whatever the URL's host, so the URL's host
// is both the SNI name and the Host header. Every request uses a new
// connection (a new handshake).
func lifeHTTPSClient(t *testing.T, addr string, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// lifeHTTPSGet fetches url with client and returns status and body, or an
// error (such as a verification failure).
func lifeHTTPSGet(client *http.Client, url string) (int, string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// lifeKeepAlive is one HTTPS connection carrying HTTP/1.1 requests one
// after the other.
type lifeKeepAlive struct {
	conn *tls.Conn
	br   *bufio.Reader
}

func lifeDialKeepAlive(t *testing.T, addr, sni string, roots *x509.CertPool) *lifeKeepAlive {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: sni, RootCAs: roots, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("keep-alive connection: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &lifeKeepAlive{conn: conn, br: bufio.NewReader(conn)}
}

// get sends one request on the connection and reads the whole response.
func (k *lifeKeepAlive) get(host, path string) (int, string, error) {
	_ = k.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(k.conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(k.br, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.Close {
		return resp.StatusCode, string(body), fmt.Errorf("server asked to close the connection")
	}
	return resp.StatusCode, string(body), nil
}

func (k *lifeKeepAlive) peer() *x509.Certificate {
	return k.conn.ConnectionState().PeerCertificates[0]
}

func lifeCertName(c *x509.Certificate, known ...lifeCert) string {
	if c == nil {
		return "<none>"
	}
	for _, k := range known {
		if c.Equal(k.leaf) {
			return "CN=" + c.Subject.CommonName
		}
	}
	return "CN=" + c.Subject.CommonName + " (unknown)"
}

// TestTLSSecretLifecycle follows one TLS Secret through its life in
// Kubernetes mode: created after the Ingress that references it, rotated
// (measuring how soon new handshakes see the new certificate, while a
// connection opened before keeps working), and deleted (the default
// certificate returns, routing continues).
func TestTLSSecretLifecycle(t *testing.T) {
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := c.Client()
	const ns, host, secret = "tls-life", "secure.example", "secure-tls"
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: "torii"},
			Spec:       networkingv1.IngressClassSpec{Controller: "torii.dev/ingress-controller"},
		}, metav1.CreateOptions{})
		return err
	})
	createNamespaceAndService(t, ctx, c, ns, "secure", echoBackend(t, "secure"))

	srv := startTorii(t, c, server.KubeConfig{})
	httpAddr, httpsAddr := srv.HTTPAddr().String(), srv.HTTPSAddr().String()
	url := "https://" + host + "/"
	v1, v2 := lifeNewCert(t, "secure-v1", host), lifeNewCert(t, "secure-v2", host)

	ing := hostIngress(ns, "secure", "torii", host, "secure")
	ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{host}, SecretName: secret}}
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{})
		return err
	})
	// The Secret does not exist yet: plain HTTP routes, and HTTPS is
	// served with the default certificate.
	eventually(t, "HTTP route before the Secret exists", func() bool {
		code, body := get(httpAddr, host, "/")
		return code == 200 && body == "secure"
	})
	if got, err := lifeHandshake(httpsAddr, host); err != nil {
		t.Fatalf("handshake before the Secret exists: %v", err)
	} else if got.Subject.CommonName != lifeDefaultCertCN {
		t.Fatalf("before the Secret exists, served %s, want the default certificate", lifeCertName(got, v1, v2))
	}

	t.Run("secret created after the ingress is served", func(t *testing.T) {
		created := time.Now()
		mustCreate(t, func() error {
			_, err := cs.CoreV1().Secrets(ns).Create(ctx, lifeTLSSecret(ns, secret, v1), metav1.CreateOptions{})
			return err
		})
		eventually(t, "certificate v1 served for "+host, func() bool {
			got, err := lifeHandshake(httpsAddr, host)
			return err == nil && got.Equal(v1.leaf)
		})
		t.Logf("TLS Secret created -> certificate served: %v", time.Since(created).Round(time.Millisecond))
		// A verifying client that trusts only v1 gets the backend.
		code, body, err := lifeHTTPSGet(lifeHTTPSClient(t, httpsAddr, v1.pool), url)
		if err != nil || code != 200 || body != "secure" {
			t.Fatalf("verified HTTPS GET with v1 trusted: %d %q %v", code, body, err)
		}
	})

	t.Run("rotation serves the new certificate and keeps open connections", func(t *testing.T) {
		// Opened before the rotation and used once.
		ka := lifeDialKeepAlive(t, httpsAddr, host, v1.pool)
		if code, body, err := ka.get(host, "/"); err != nil || code != 200 || body != "secure" {
			t.Fatalf("first request on the keep-alive connection: %d %q %v", code, body, err)
		}

		sec, err := cs.CoreV1().Secrets(ns).Get(ctx, secret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sec.Data = lifeTLSSecret(ns, secret, v2).Data
		start := time.Now()
		if _, err := cs.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// Fresh handshakes, started at most lifePollInterval apart (a slow
		// handshake delays the next one, so the widest gap is recorded):
		// the measured time is accurate to one poll, which is what makes
		// the 2 s bound meaningful.
		var (
			rotated   time.Duration
			polls     int
			maxGap    time.Duration
			lastStart = start
			last      string
		)
		tick := time.NewTicker(lifePollInterval)
		defer tick.Stop()
		for deadline := start.Add(waitTimeout); rotated == 0; {
			now := time.Now()
			if now.After(deadline) || polls > 100000 {
				t.Fatalf("certificate v2 not served %v after the Secret update (%d handshakes, last served %s)", time.Since(start), polls, last)
			}
			maxGap = max(maxGap, now.Sub(lastStart))
			lastStart = now
			polls++
			got, err := lifeHandshake(httpsAddr, host)
			switch {
			case err != nil:
				last = err.Error()
			case got.Equal(v2.leaf):
				rotated = time.Since(start)
			case got.Equal(v1.leaf):
				last = lifeCertName(got, v1)
			default:
				t.Fatalf("during rotation a handshake got %s, want v1 or v2", lifeCertName(got, v1, v2))
			}
			<-tick.C
		}
		t.Logf("TLS Secret rotation -> new certificate served: %v (%d handshakes, widest gap between poll starts %v)",
			rotated.Round(time.Millisecond), polls, maxGap.Round(time.Millisecond))
		if rotated > lifeRotationBound {
			t.Errorf("rotation took %v, want at most %v", rotated, lifeRotationBound)
		}
		// The rotation is stable: every new handshake now gets v2, and a
		// client trusting only v2 verifies it while one trusting only v1
		// no longer does.
		for i := range 10 {
			if got, err := lifeHandshake(httpsAddr, host); err != nil || !got.Equal(v2.leaf) {
				t.Fatalf("handshake %d after the rotation: %s, %v", i, lifeCertName(got, v1, v2), err)
			}
		}
		if code, body, err := lifeHTTPSGet(lifeHTTPSClient(t, httpsAddr, v2.pool), url); err != nil || code != 200 || body != "secure" {
			t.Fatalf("verified HTTPS GET with v2 trusted: %d %q %v", code, body, err)
		}
		if _, _, err := lifeHTTPSGet(lifeHTTPSClient(t, httpsAddr, v1.pool), url); err == nil {
			t.Fatal("a client trusting only v1 still verified a new connection after the rotation")
		}

		// The connection opened before the rotation is the same TLS
		// session: it still answers, and still shows v1.
		for i := range 3 {
			code, body, err := ka.get(host, "/")
			if err != nil || code != 200 || body != "secure" {
				t.Fatalf("request %d on the pre-rotation keep-alive connection: %d %q %v", i+2, code, body, err)
			}
		}
		if got := ka.peer(); !got.Equal(v1.leaf) {
			t.Fatalf("pre-rotation connection shows %s, want v1", lifeCertName(got, v1, v2))
		}
	})

	t.Run("deleting the secret falls back to the default certificate", func(t *testing.T) {
		start := time.Now()
		if err := cs.CoreV1().Secrets(ns).Delete(ctx, secret, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		var got *x509.Certificate
		eventually(t, "default certificate after the delete", func() bool {
			var err error
			got, err = lifeHandshake(httpsAddr, host)
			return err == nil && !got.Equal(v2.leaf)
		})
		t.Logf("TLS Secret deleted -> default certificate served: %v", time.Since(start).Round(time.Millisecond))
		if got.Subject.CommonName != lifeDefaultCertCN || got.Equal(v1.leaf) {
			t.Fatalf("after the delete, served %s, want the default certificate", lifeCertName(got, v1, v2))
		}
		if _, _, err := lifeHTTPSGet(lifeHTTPSClient(t, httpsAddr, v2.pool), url); err == nil {
			t.Fatal("a client trusting only v2 still verified a new connection after the delete")
		}
		// Routing continues, over HTTP and over HTTPS with the default
		// certificate.
		if code, body := get(httpAddr, host, "/"); code != 200 || body != "secure" {
			t.Fatalf("HTTP after the delete: %d %q", code, body)
		}
		insecure := &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // the default certificate is self-signed for no name
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, httpsAddr)
			},
		}
		t.Cleanup(insecure.CloseIdleConnections)
		if code, body, err := lifeHTTPSGet(&http.Client{Transport: insecure, Timeout: 5 * time.Second}, url); err != nil || code != 200 || body != "secure" {
			t.Fatalf("HTTPS with the default certificate after the delete: %d %q %v", code, body, err)
		}
	})
}

// lifeLoad is a steady request loop against Torii plus a /readyz poller,
// bounded in count and time, recording every failure.
type lifeLoad struct {
	ok, readyOK atomic.Int64
	mu          sync.Mutex
	failures    []string // the first few
	nFailed     int
	stop        chan struct{}
	wg          sync.WaitGroup
}

func (l *lifeLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nFailed++
	if len(l.failures) < 10 {
		l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
	}
}

func (l *lifeLoad) failed() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nFailed, append([]string(nil), l.failures...)
}

// lifeStartLoad starts workers goroutines alternating between the hosts
// (each must answer with its body) and one /readyz poller. Each stops
// after maxCount iterations, maxTime, or Stop.
func lifeStartLoad(t *testing.T, addr, adminAddr string, hosts map[string]string, workers, maxCount int, maxTime time.Duration) *lifeLoad {
	l := &lifeLoad{stop: make(chan struct{})}
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	deadline := time.Now().Add(maxTime)
	running := func(i int) bool {
		if i >= maxCount || time.Now().After(deadline) {
			return false
		}
		select {
		case <-l.stop:
			return false
		default:
			return true
		}
	}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; running(i); i++ {
				host := names[(i+w)%len(names)]
				code, body := get(addr, host, "/")
				if code != 200 || body != hosts[host] {
					l.fail("GET %s: %d %q", host, code, body)
				} else {
					l.ok.Add(1)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		client := &http.Client{Timeout: 2 * time.Second}
		for i := 0; running(i); i++ {
			resp, err := client.Get("http://" + adminAddr + "/readyz")
			if err != nil {
				l.fail("/readyz: %v", err)
			} else {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					l.fail("/readyz: %d", resp.StatusCode)
				} else {
					l.readyOK.Add(1)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(l.Stop)
	return l
}

// Stop ends the loops and waits for them; it is idempotent.
func (l *lifeLoad) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// TestAPIServerOutage stops the API server for a few seconds under a
// steady request loop: Torii must keep serving its last routes and stay
// ready throughout, and pick up changes again once the API is back.
func TestAPIServerOutage(t *testing.T) {
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := c.Client()
	const ns = "outage"
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: "torii"},
			Spec:       networkingv1.IngressClassSpec{Controller: "torii.dev/ingress-controller"},
		}, metav1.CreateOptions{})
		return err
	})
	createNamespaceAndService(t, ctx, c, ns, "alpha", echoBackend(t, "alpha"))
	createNamespaceAndService(t, ctx, c, ns, "beta", echoBackend(t, "beta"))
	srv := startTorii(t, c, server.KubeConfig{})
	addr, adminAddr := srv.HTTPAddr().String(), srv.AdminAddr().String()
	for _, name := range []string{"alpha", "beta"} {
		mustCreate(t, func() error {
			_, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, hostIngress(ns, name, "torii", name+".example", name), metav1.CreateOptions{})
			return err
		})
	}
	hosts := map[string]string{"alpha.example": "alpha", "beta.example": "beta"}
	eventually(t, "both routes", func() bool {
		for h, want := range hosts {
			if code, body := get(addr, h, "/"); code != 200 || body != want {
				return false
			}
		}
		return true
	})

	// 2 workers at most 20000 requests each, 2 ms apart: far longer than
	// the outage phase needs, which is checked below.
	load := lifeStartLoad(t, addr, adminAddr, hosts, 2, 20000, 60*time.Second)
	eventually(t, "the load loop running", func() bool { return load.ok.Load() > 20 && load.readyOK.Load() > 2 })

	okBefore, readyBefore := load.ok.Load(), load.readyOK.Load()
	outageStart := time.Now()
	if err := c.StopAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		t.Fatal("the API answered while stopped")
	}
	time.Sleep(3 * time.Second)
	okDown, readyDown := load.ok.Load()-okBefore, load.readyOK.Load()-readyBefore
	startCalled := time.Now()
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	okOutage := load.ok.Load() - okBefore
	t.Logf("API server outage: stopping took %v, stopped for %v, starting took %v (API unavailable ~%v); %d good requests and %d ready answers from stop to start, %d good requests from stop until the API was ready again",
		stopped.Sub(outageStart).Round(time.Millisecond), startCalled.Sub(stopped).Round(time.Millisecond),
		restarted.Sub(startCalled).Round(time.Millisecond), restarted.Sub(outageStart).Round(time.Millisecond), okDown, readyDown, okOutage)
	if n, fails := load.failed(); n != 0 {
		t.Fatalf("%d failed requests or /readyz answers during the outage; first: %s", n, strings.Join(fails, "; "))
	}
	// The loops really covered the outage (not stopped by their bounds).
	if okDown < 100 || readyDown < 20 {
		t.Fatalf("the loops did not cover the outage: %d requests and %d ready answers while the API was down", okDown, readyDown)
	}

	t.Run("new ingress after the restart is served", func(t *testing.T) {
		createNamespaceAndService(t, ctx, c, ns, "gamma", echoBackend(t, "gamma"))
		mustCreate(t, func() error {
			_, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, hostIngress(ns, "gamma", "torii", "gamma.example", "gamma"), metav1.CreateOptions{})
			return err
		})
		created := time.Now()
		eventually(t, "the post-restart Ingress routed", func() bool {
			code, body := get(addr, "gamma.example", "/")
			return code == 200 && body == "gamma"
		})
		t.Logf("API server restart -> new Ingress served: %v after the API was ready (%v after the Ingress was created)",
			time.Since(restarted).Round(time.Millisecond), time.Since(created).Round(time.Millisecond))
	})

	load.Stop()
	if n, fails := load.failed(); n != 0 {
		t.Fatalf("%d failed requests or /readyz answers after the restart; first: %s", n, strings.Join(fails, "; "))
	}
	t.Logf("load loop: %d good requests, %d ready answers in all", load.ok.Load(), load.readyOK.Load())

	t.Run("endpoint change after the restart shifts traffic", func(t *testing.T) {
		alpha2 := echoBackend(t, "alpha-2")
		changed := time.Now()
		putSlice(t, ctx, c, ns, "alpha", alpha2) // replaces alpha's only endpoint
		eventually(t, "alpha traffic on the new endpoint", func() bool {
			code, body := get(addr, "alpha.example", "/")
			return code == 200 && body == "alpha-2"
		})
		t.Logf("EndpointSlice change after the restart -> traffic shifted: %v", time.Since(changed).Round(time.Millisecond))
		for i := range 20 {
			if code, body := get(addr, "alpha.example", "/"); code != 200 || body != "alpha-2" {
				t.Fatalf("request %d after the shift: %d %q", i, code, body)
			}
		}
		if code, body := get(addr, "beta.example", "/"); code != 200 || body != "beta" {
			t.Fatalf("beta after alpha's endpoint change: %d %q", code, body)
		}
	})
}

// lifeSetDefaultClass sets or removes the default-class annotation on the
// IngressClass name.
func lifeSetDefaultClass(t *testing.T, ctx context.Context, cs kubernetes.Interface, name string, isDefault bool) {
	t.Helper()
	ic, err := cs.NetworkingV1().IngressClasses().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if isDefault {
		if ic.Annotations == nil {
			ic.Annotations = map[string]string{}
		}
		ic.Annotations[networkingv1.AnnotationIsDefaultIngressClass] = "true"
	} else {
		delete(ic.Annotations, networkingv1.AnnotationIsDefaultIngressClass)
	}
	if _, err := cs.NetworkingV1().IngressClasses().Update(ctx, ic, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestClassOwnership checks which Ingresses Torii serves and publishes
// status on: class-less ones through the default IngressClass, the legacy
// annotation, never another controller's class, and class-less ones no
// longer once the class stops being the default.
//
// The DefaultIngressClass admission plugin (enabled by default) fills in
// spec.ingressClassName on Ingresses created without a class while a default
// class exists, so a genuinely class-less Ingress must be created before the
// class is marked default; one created afterwards gets the field and is
// owned through it.
func TestClassOwnership(t *testing.T) {
	c := harness.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cs := c.Client()
	const ns, published = "classes", "203.0.113.9"
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: "other"},
			Spec:       networkingv1.IngressClassSpec{Controller: "example.com/other-controller"},
		}, metav1.CreateOptions{})
		return err
	})
	createNamespaceAndService(t, ctx, c, ns, "web", echoBackend(t, "web"))
	srv := startTorii(t, c, server.KubeConfig{PublishStatusAddress: []string{published}})
	addr := srv.HTTPAddr().String()
	ings := cs.NetworkingV1().Ingresses(ns)

	// (a) no class at all, created while no class is the default.
	classless := hostIngress(ns, "classless", "", "classless.example", "web")
	classless.Spec.IngressClassName = nil
	if got, err := ings.Create(ctx, classless, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	} else if got.Spec.IngressClassName != nil {
		t.Fatalf("with no default class, admission set ingressClassName %q", *got.Spec.IngressClassName)
	}
	mustCreate(t, func() error {
		_, err := cs.NetworkingV1().IngressClasses().Create(ctx, &networkingv1.IngressClass{
			ObjectMeta: metav1.ObjectMeta{Name: "torii", Annotations: map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}},
			Spec:       networkingv1.IngressClassSpec{Controller: "torii.dev/ingress-controller"},
		}, metav1.CreateOptions{})
		return err
	})
	// (b) the legacy annotation and no field.
	legacy := hostIngress(ns, "legacy", "", "legacy.example", "web")
	legacy.Spec.IngressClassName = nil
	legacy.Annotations = map[string]string{lifeAnnotationIngressClass: "torii"}
	if got, err := ings.Create(ctx, legacy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	} else if got.Spec.IngressClassName != nil {
		t.Fatalf("admission set ingressClassName %q on an Ingress with the class annotation", *got.Spec.IngressClassName)
	}
	// (c) another controller's class.
	mustCreate(t, func() error {
		_, err := ings.Create(ctx, hostIngress(ns, "foreign", "other", "foreign.example", "web"), metav1.CreateOptions{})
		return err
	})

	t.Run("class-less and legacy annotation are owned", func(t *testing.T) {
		eventually(t, "class-less and legacy Ingresses routed", func() bool {
			c1, b1 := get(addr, "classless.example", "/")
			c2, b2 := get(addr, "legacy.example", "/")
			return c1 == 200 && b1 == "web" && c2 == 200 && b2 == "web"
		})
		eventually(t, "status published on the class-less and legacy Ingresses", func() bool {
			a, b := statusIPs(t, ctx, cs, ns, "classless"), statusIPs(t, ctx, cs, ns, "legacy")
			return len(a) == 1 && a[0] == published && len(b) == 1 && b[0] == published
		})
	})

	t.Run("another controller's class is left alone", func(t *testing.T) {
		// Torii has published status on the owned Ingresses, so it has
		// seen all three; for another second the foreign one must stay
		// unrouted and its status untouched.
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if code, body := get(addr, "foreign.example", "/"); code != 404 {
				t.Fatalf("Ingress of class other answered %d %q, want 404", code, body)
			}
			if ips := statusIPs(t, ctx, cs, ns, "foreign"); len(ips) != 0 {
				t.Fatalf("Ingress of class other got status %v", ips)
			}
		}
	})

	t.Run("class-less Ingress created while a default exists is defaulted", func(t *testing.T) {
		// The admission plugin reads IngressClasses from its own informer,
		// which may not have seen the new default yet: retry until it has.
		var got *networkingv1.Ingress
		for i := 0; ; i++ {
			ing := hostIngress(ns, "defaulted", "", "defaulted.example", "web")
			ing.Spec.IngressClassName = nil
			var err error
			if got, err = ings.Create(ctx, ing, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if got.Spec.IngressClassName != nil {
				break
			}
			if i >= 50 {
				t.Fatal("admission never defaulted ingressClassName")
			}
			if err := ings.Delete(ctx, "defaulted", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if *got.Spec.IngressClassName != "torii" {
			t.Fatalf("defaulted ingressClassName = %q, want torii", *got.Spec.IngressClassName)
		}
		eventually(t, "defaulted Ingress routed", func() bool {
			code, body := get(addr, "defaulted.example", "/")
			return code == 200 && body == "web"
		})
	})

	t.Run("removing the default annotation releases class-less Ingresses", func(t *testing.T) {
		lifeSetDefaultClass(t, ctx, cs, "torii", false)
		start := time.Now()
		eventually(t, "class-less route gone", func() bool { code, _ := get(addr, "classless.example", "/"); return code == 404 })
		eventually(t, "Torii's status removed from the class-less Ingress", func() bool { return len(statusIPs(t, ctx, cs, ns, "classless")) == 0 })
		t.Logf("default class annotation removed -> class-less Ingress released: %v", time.Since(start).Round(time.Millisecond))
		// The others are unaffected: the legacy annotation and the
		// defaulted field name the class itself.
		for _, h := range []string{"legacy.example", "defaulted.example"} {
			if code, body := get(addr, h, "/"); code != 200 || body != "web" {
				t.Fatalf("%s after the default annotation was removed: %d %q", h, code, body)
			}
		}
		if ips := statusIPs(t, ctx, cs, ns, "legacy"); len(ips) != 1 || ips[0] != published {
			t.Fatalf("legacy Ingress status after the default annotation was removed: %v", ips)
		}
		if ips := statusIPs(t, ctx, cs, ns, "foreign"); len(ips) != 0 {
			t.Fatalf("Ingress of class other got status %v", ips)
		}
	})
}

// lifeAnnotationIngressClass is the legacy class annotation
// (networking/v1beta1.AnnotationIngressClass), spelled out so as not to
// import a deprecated API group.
const lifeAnnotationIngressClass = "kubernetes.io/ingress.class"
