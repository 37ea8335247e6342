package harness

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Bounds on every wait the harness makes. They are generous because the
// e2e suite shares two CPU cores with the race detector and other packages;
// a healthy start takes a few seconds.
const (
	// StartTimeout bounds Start: etcd healthy plus the API server ready.
	StartTimeout = 2 * time.Minute
	// apiserverReadyTimeout bounds one API server start (also on restart).
	apiserverReadyTimeout = 90 * time.Second
	// etcdReadyTimeout bounds etcd reporting healthy.
	etcdReadyTimeout = 30 * time.Second
	// apiserverStopGrace is how long a stopped API server may take to
	// drain before it is killed.
	apiserverStopGrace = 20 * time.Second
	// pollInterval paces readiness polls: short, as start-up time is test
	// time, but not a busy loop.
	pollInterval = 50 * time.Millisecond
	// logTailLines is how much of each component log a failure shows.
	logTailLines = 40
	// startAttempts covers the rare loss of a chosen port to another
	// process between choosing it and the component binding it.
	startAttempts = 3
)

// Options adjust a cluster. The zero value is what tests normally want.
type Options struct {
	// Dir holds etcd's data, the API server's certificates, keys, the
	// kubeconfig and the component logs. Empty: a new temporary directory
	// that Close removes.
	Dir string
	// BinDir holds kube-apiserver and etcd. Empty: $TORII_E2E_BIN_DIR, else
	// the repository's bin/ as built by hack/e2e-tools.sh.
	BinDir string
	// APIServerFlags are appended to the API server's command line (later
	// flags win), e.g. "--feature-gates=...".
	APIServerFlags []string
	// Logf, if set, receives progress lines (start and restart timings).
	Logf func(format string, args ...any)
}

// Cluster is a running etcd plus kube-apiserver. Its methods are safe for
// concurrent use.
type Cluster struct {
	opts   Options
	dir    string
	ownDir bool
	bins   binaries
	token  string

	etcdURL, etcdPeerURL string
	apiPort              int
	host                 string // https://127.0.0.1:<apiPort>
	ca                   []byte // PEM bundle from the API server's cert dir

	kv         *etcdKV
	cfg        *rest.Config
	client     kubernetes.Interface
	kubeconfig string

	mu        sync.Mutex // guards the processes
	etcd      *process
	apiserver *process // nil while stopped

	closeOnce sync.Once
	closeErr  error
}

// Start runs a cluster for the test and stops it when the test ends,
// whether it passed, failed or panicked. It fails the test (never skips)
// when the binaries are missing or the cluster does not become ready.
func Start(t testing.TB) *Cluster { return StartWithOptions(t, Options{}) }

// StartWithOptions is Start with options. Without opts.Dir the cluster lives
// in t.TempDir(); without opts.Logf progress goes to t.Logf.
func StartWithOptions(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Dir == "" {
		// Created before the Cleanup below is registered, so it is removed
		// after the processes writing into it are dead.
		opts.Dir = t.TempDir()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	c, err := StartContext(ctx, opts)
	if err != nil {
		t.Fatalf("e2e harness: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("e2e harness: test failed; component logs:\n%s", c.LogTails(logTailLines))
		}
		if err := c.Close(); err != nil {
			t.Errorf("e2e harness: %v", err)
		}
	})
	return c
}

// StartContext runs a cluster until Close, for callers without a testing.TB
// such as TestMain (call Close before os.Exit). ctx bounds the start only.
// On error nothing is left running.
func StartContext(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	bins, err := findBinaries(opts.BinDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{opts: opts, bins: bins, dir: opts.Dir}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "torii-e2e-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	}
	if err := c.prepare(); err != nil {
		c.Close()
		return nil, err
	}
	t0 := time.Now()
	for attempt := 1; ; attempt++ {
		err = c.startProcesses(ctx)
		if err == nil {
			break
		}
		portLost := strings.Contains(c.LogTails(logTailLines), "address already in use")
		c.stopProcesses()
		if !portLost || attempt == startAttempts || ctx.Err() != nil {
			c.Close()
			return nil, err
		}
		c.opts.Logf("e2e harness: a chosen port was taken meanwhile; retrying with new ports (attempt %d)", attempt+1)
	}
	c.opts.Logf("e2e harness: etcd %s and kube-apiserver %s ready in %v (dir %s)", c.etcdURL, c.host, time.Since(t0).Round(time.Millisecond), c.dir)
	return c, nil
}

// prepare writes the credentials every API server start uses.
func (c *Cluster) prepare() error {
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return err
	}
	c.token = hex.EncodeToString(tok)
	// token,user,uid,"groups": system:masters is cluster-admin and bypasses
	// RBAC, so the harness client can set up anything; tests that need less
	// privilege use ImpersonatingConfig.
	tokens := fmt.Sprintf("%s,torii-e2e-admin,torii-e2e-admin,\"system:masters\"\n", c.token)
	if err := os.WriteFile(c.path("tokens.csv"), []byte(tokens), 0o600); err != nil {
		return err
	}
	// The service-account signing key: ECDSA because generating it is
	// instant, where a 2048-bit RSA key costs a noticeable fraction of a
	// second on every Start.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(c.path("sa.key"), keyPEM, 0o600); err != nil {
		return err
	}
	return os.MkdirAll(c.path("certs"), 0o755)
}

// startProcesses starts etcd and the API server on fresh ports and builds
// the clients. etcd's data directory is recreated, because it records the
// peer URL it was first started with.
func (c *Cluster) startProcesses(ctx context.Context) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	c.etcdURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	c.etcdPeerURL = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c.apiPort = ports[2]
	c.host = fmt.Sprintf("https://127.0.0.1:%d", c.apiPort)
	c.kv = newEtcdKV(c.etcdURL)

	if err := os.RemoveAll(c.path("etcd")); err != nil {
		return err
	}
	t0 := time.Now()
	if err := c.startEtcd(ctx); err != nil {
		return err
	}
	tEtcd := time.Since(t0)
	c.mu.Lock()
	err = c.startAPIServerLocked(ctx)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.opts.Logf("e2e harness: etcd healthy after %v, kube-apiserver ready after %v more", tEtcd.Round(time.Millisecond), (time.Since(t0) - tEtcd).Round(time.Millisecond))
	if err := c.buildClients(); err != nil {
		return err
	}
	// /readyz does not wait for the system namespaces; tests may put objects
	// in "default" straight away.
	return poll(ctx, apiserverReadyTimeout, "namespace default to exist", c.apiserver, func(ctx context.Context) (bool, error) {
		_, err := c.client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{})
		return err == nil, nil
	})
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	args := []string{
		"--name=default",
		"--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + c.etcdURL,
		"--advertise-client-urls=" + c.etcdURL,
		"--listen-peer-urls=" + c.etcdPeerURL,
		"--initial-advertise-peer-urls=" + c.etcdPeerURL,
		"--initial-cluster=default=" + c.etcdPeerURL,
		// PutEndpointSlice writes through the JSON gateway.
		"--enable-grpc-gateway=true",
		// The data is thrown away after the test; fsync would only make
		// every write wait for the disk.
		"--unsafe-no-fsync=true",
		// A lone member on loopback has no peers to lose: short raft
		// timings let it elect itself in ~0.1 s instead of up to ~2 s.
		"--heartbeat-interval=10",
		"--election-timeout=100",
	}
	p, err := startProcess("etcd", c.bins.etcd, args, c.dir, c.path("etcd.log"))
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.etcd = p
	c.mu.Unlock()
	hc := &http.Client{Timeout: 2 * time.Second}
	return poll(ctx, etcdReadyTimeout, "etcd to report healthy at "+c.etcdURL+"/health", p, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.etcdURL+"/health", nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		var h struct {
			Health string `json:"health"`
		}
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&h) == nil && h.Health == "true", nil
	})
}

func (c *Cluster) apiserverArgs() []string {
	args := []string{
		"--bind-address=127.0.0.1",
		// Explicit, so start-up never depends on the host's default route.
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.apiPort),
		// Generated on first start and reused on restarts, so clients keep
		// trusting the same certificate.
		"--cert-dir=" + c.path("certs"),
		"--etcd-servers=" + c.etcdURL,
		// PutEndpointSlice writes objects exactly as stored under these
		// settings; they are the defaults, spelled out because the harness
		// depends on them.
		"--etcd-prefix=" + etcdPrefix,
		"--storage-media-type=application/vnd.kubernetes.protobuf",
		"--token-auth-file=" + c.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.path("sa.key"),
		"--service-account-signing-key-file=" + c.path("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		// No reconciler: it would publish 127.0.0.1 as the endpoint of the
		// "kubernetes" Service, which nothing here uses.
		"--endpoint-reconciler-type=none",
		// On SIGTERM, end open watches within a second. Without it the
		// server's graceful shutdown waits for every watch connection (an
		// informer's never goes idle) until its 60 s shutdown timeout, and
		// StopAPIServer would have to kill it instead.
		"--shutdown-watch-termination-grace-period=1s",
	}
	return append(args, c.opts.APIServerFlags...)
}

// startAPIServerLocked starts the API server and waits for /readyz. c.mu
// must be held.
func (c *Cluster) startAPIServerLocked(ctx context.Context) error {
	if c.apiserver != nil {
		if done, _ := c.apiserver.exited(); !done {
			return errors.New("kube-apiserver is already running")
		}
	}
	p, err := startProcess("kube-apiserver", c.bins.apiserver, c.apiserverArgs(), c.dir, c.path("kube-apiserver.log"))
	if err != nil {
		return err
	}
	c.apiserver = p
	var hc *http.Client
	err = poll(ctx, apiserverReadyTimeout, "kube-apiserver /readyz at "+c.host, p, func(ctx context.Context) (bool, error) {
		if hc == nil {
			// The serving certificate appears in the cert dir shortly
			// after start; until then there is nothing to trust.
			ca, err := os.ReadFile(c.path("certs", "apiserver.crt"))
			if err != nil {
				return false, nil
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return false, nil // still being written
			}
			c.ca = ca
			hc = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			}}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.host+"/readyz", nil)
		if err != nil {
			return false, err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK, nil
	})
	if hc != nil {
		hc.CloseIdleConnections()
	}
	if err != nil {
		_ = p.kill()
		c.apiserver = nil
	}
	return err
}

// buildClients makes the admin rest.Config, clientset and kubeconfig.
func (c *Cluster) buildClients() error {
	c.cfg = &rest.Config{
		Host:            c.host,
		BearerToken:     c.token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.ca},
		// Setup code creates many objects (up to 1k Ingresses); client-go's
		// default 5 QPS would make that the slowest part of a test.
		QPS:       1000,
		Burst:     2000,
		UserAgent: "torii-e2e-harness",
	}
	cs, err := kubernetes.NewForConfig(c.cfg)
	if err != nil {
		return err
	}
	c.client = cs
	c.kubeconfig = c.path("kubeconfig")
	return WriteKubeconfig(c.kubeconfig, c.cfg)
}

// poll calls check every pollInterval until it reports done, returns an
// error, p (if any) exits, ctx ends or timeout passes. Failures name what
// was awaited and carry the tail of p's log.
func poll(ctx context.Context, timeout time.Duration, what string, p *process, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if p != nil {
			if done, werr := p.exited(); done {
				return fmt.Errorf("waiting for %s: %s %w (%v); last lines of %s:\n%s", what, p.name, errExited, werr, p.logPath, p.tail(logTailLines))
			}
		}
		ok, err := check(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("waiting for %s: %v", what, context.Cause(ctx))
			if p != nil {
				msg += fmt.Sprintf("; last lines of %s:\n%s", p.logPath, p.tail(logTailLines))
			}
			return errors.New(msg)
		case <-tick.C:
		}
	}
}

// RESTConfig returns a copy of the cluster-admin client configuration
// (bearer token, CA of the API server's generated certificate).
func (c *Cluster) RESTConfig() *rest.Config { return rest.CopyConfig(c.cfg) }

// ImpersonatingConfig returns a copy of the admin configuration that acts as
// user in groups, for tests that need RBAC to apply (e.g. Torii's
// least-privilege role). Write it with WriteKubeconfig for a subprocess.
func (c *Cluster) ImpersonatingConfig(user string, groups ...string) *rest.Config {
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return cfg
}

// Client returns a cluster-admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Kubeconfig returns the path of a kubeconfig file for the cluster-admin
// configuration, e.g. for `torii serve --kubeconfig`.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// Host returns the API server URL, https://127.0.0.1:<port>. It stays the
// same across RestartAPIServer.
func (c *Cluster) Host() string { return c.host }

// EtcdURL returns etcd's client URL.
func (c *Cluster) EtcdURL() string { return c.etcdURL }

// Dir returns the directory holding the cluster's data and logs.
func (c *Cluster) Dir() string { return c.dir }

// StopAPIServer stops the API server with SIGTERM, as a node shutdown or a
// rolling update would, and kills it if it has not exited within 20 s (or
// ctx's deadline, if sooner). etcd keeps running. It is a no-op when the API
// server is already stopped.
func (c *Cluster) StopAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.apiserver == nil {
		return nil
	}
	grace := apiserverStopGrace
	if d, ok := ctx.Deadline(); ok && time.Until(d) < grace {
		grace = max(time.Until(d), 0)
	}
	t0 := time.Now()
	err := c.apiserver.stop(grace)
	c.apiserver = nil
	c.opts.Logf("e2e harness: kube-apiserver stopped in %v", time.Since(t0).Round(time.Millisecond))
	return err
}

// StartAPIServer starts a stopped API server on the same address with the
// same certificate and credentials, and waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.etcd == nil {
		return errors.New("cluster is closed")
	}
	t0 := time.Now()
	if err := c.startAPIServerLocked(ctx); err != nil {
		return err
	}
	c.opts.Logf("e2e harness: kube-apiserver ready again in %v", time.Since(t0).Round(time.Millisecond))
	return nil
}

// RestartAPIServer stops the API server (SIGTERM) and starts it again.
// Clients built from RESTConfig, Client and Kubeconfig keep working once it
// is back; watches must reconnect, as they would in a real cluster.
func (c *Cluster) RestartAPIServer(ctx context.Context) error {
	if err := c.StopAPIServer(ctx); err != nil {
		return err
	}
	return c.StartAPIServer(ctx)
}

// LogTails returns the last n lines of each component's log, for failure
// reports.
func (c *Cluster) LogTails(n int) string {
	var b strings.Builder
	for _, name := range []string{"etcd", "kube-apiserver"} {
		p := c.path(name + ".log")
		fmt.Fprintf(&b, "----- %s (last %d lines of %s)\n%s\n", name, n, p, tailFile(p, n))
	}
	return b.String()
}

// stopProcesses kills both components without grace: their data is
// disposable and a graceful API server shutdown only costs time here.
func (c *Cluster) stopProcesses() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	if c.apiserver != nil {
		errs = append(errs, c.apiserver.kill())
		c.apiserver = nil
	}
	if c.etcd != nil {
		errs = append(errs, c.etcd.kill())
		c.etcd = nil
	}
	return errors.Join(errs...)
}

// Close kills the components, waits until they are reaped, and removes the
// directory if the harness created it. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.stopProcesses()
		if c.ownDir {
			if err := os.RemoveAll(c.dir); err != nil {
				c.closeErr = errors.Join(c.closeErr, err)
			}
		}
	})
	return c.closeErr
}

func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.dir}, elem...)...)
}

// WriteKubeconfig writes cfg (host, CA, bearer token, impersonation) as a
// kubeconfig file with a single context.
func WriteKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["e2e"] = &clientcmdapi.AuthInfo{
		Token:             cfg.BearerToken,
		Impersonate:       cfg.Impersonate.UserName,
		ImpersonateGroups: cfg.Impersonate.Groups,
	}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "e2e"}
	kc.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*kc, path)
}
