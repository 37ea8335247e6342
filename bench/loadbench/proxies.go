package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Proxy names.
const (
	proxyDirect  = "direct"
	proxyNginx   = "nginx"
	proxyHAProxy = "haproxy"
	proxyTorii   = "torii"
	// proxyToriiNetHTTP is Torii with its HTTP/1 fast path off
	// (--http1-fast-path=false): every request on net/http, as HTTP/2
	// always is. Not in the default set; ask for it with -proxies.
	proxyToriiNetHTTP = "torii-nethttp"
)

var knownProxies = []string{proxyDirect, proxyNginx, proxyHAProxy, proxyTorii}

// allProxies are the names -proxies accepts.
var allProxies = append(slices.Clone(knownProxies), proxyToriiNetHTTP)

// endpoints are the listeners the load goes to.
type endpoints struct {
	HTTP  string // host:port, plain HTTP/1.1
	HTTPS string // host:port, TLS with ALPN h2 and http/1.1
}

// env is what every proxy start needs.
type env struct {
	paths    map[string]string // tool binaries
	self     string            // this program, for backend and gen
	torii    string            // bin/torii
	cert     *certFiles
	backend  endpoints
	workDir  string
	cpuProxy string // taskset CPU list for backend and proxy
	cpuLoad  string // taskset CPU list for the load generator
}

// runningProxy is a started proxy (nil proc for direct).
type runningProxy struct {
	name string
	proc *proc
	ep   endpoints
	logs []string // files the proxy writes its logs to
}

func (r *runningProxy) logBytes() int64 {
	var n int64
	for _, l := range r.logs {
		n += fileSize(l)
	}
	return n
}

func (r *runningProxy) stop() {
	if r != nil && r.proc != nil {
		r.proc.stop(3 * time.Second)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func freeAddrs(n int) ([]string, error) {
	var out []string
	seen := map[int]bool{}
	for len(out) < n {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, "127.0.0.1:"+strconv.Itoa(p))
	}
	return out, nil
}

// startProxy starts a fresh instance of the named proxy with its files in
// dir, and waits until it serves the backend over HTTP and HTTPS.
func (e *env) startProxy(ctx context.Context, name, dir string) (*runningProxy, error) {
	if name == proxyDirect {
		return &runningProxy{name: name, ep: e.backend}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(3)
	if err != nil {
		return nil, err
	}
	ep := endpoints{HTTP: addrs[0], HTTPS: addrs[1]}
	stderrLog := filepath.Join(dir, name+".log")
	taskset := []string{e.paths["taskset"], "-c", e.cpuProxy}
	var argv []string
	logs := []string{stderrLog}
	switch name {
	case proxyNginx:
		conf := nginxConf(dir, ep, e.backend.HTTP, e.cert)
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			if err := os.MkdirAll(filepath.Join(dir, "tmp", d), 0o755); err != nil {
				return nil, err
			}
		}
		errLog := filepath.Join(dir, "error.log")
		logs = append(logs, errLog)
		argv = append(taskset, e.paths["nginx"], "-p", dir+"/", "-c", confPath, "-e", errLog, "-g", "daemon off;")
	case proxyHAProxy:
		cfgPath := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(cfgPath, []byte(haproxyCfg(ep, e.backend.HTTP, e.cert)), 0o644); err != nil {
			return nil, err
		}
		argv = append(taskset, e.paths["haproxy"], "-f", cfgPath, "-db")
	case proxyTorii, proxyToriiNetHTTP:
		mdir := filepath.Join(dir, "manifests")
		if err := os.MkdirAll(mdir, 0o755); err != nil {
			return nil, err
		}
		if err := writeToriiManifests(mdir, e.backend.HTTP, e.cert); err != nil {
			return nil, err
		}
		argv = append(taskset, e.torii, "serve", "--manifests", mdir,
			"--http-addr", ep.HTTP, "--https-addr", ep.HTTPS, "--admin-addr", addrs[2],
			"--default-ssl-certificate", "bench/bench-tls",
			// Only how fast it stops at the end of a run; no effect on serving.
			"--shutdown-grace-period", "0s", "--drain-timeout", "1s")
		if name == proxyToriiNetHTTP {
			argv = append(argv, "--http1-fast-path=false")
		}
	default:
		return nil, fmt.Errorf("unknown proxy %q", name)
	}
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.Join(argv, " ")+"\n"), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc(name, stderrLog, argv, nil)
	if err != nil {
		return nil, err
	}
	rp := &runningProxy{name: name, proc: p, ep: ep, logs: logs}
	if err := waitReady(ctx, ep, e.cert, p, 20*time.Second); err != nil {
		rp.stop()
		b, _ := os.ReadFile(stderrLog)
		return nil, fmt.Errorf("%s not ready: %v\n%s", name, err, tail(string(b), 1500))
	}
	return rp, nil
}

// waitReady polls until GET /100 answers 200 with the 100-byte body on both
// listeners and the TLS listener presents our certificate.
func waitReady(ctx context.Context, ep endpoints, cert *certFiles, p *proc, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ServerName: benchHost},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	check := func(url string, tlsWanted bool) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || len(body) != 100 {
			return fmt.Errorf("%s: status %d, %d bytes", url, resp.StatusCode, len(body))
		}
		if tlsWanted {
			if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
				return fmt.Errorf("%s: no TLS", url)
			}
			if !bytes.Equal(resp.TLS.PeerCertificates[0].Raw, cert.DER) {
				return fmt.Errorf("%s: presents another certificate (%s)", url, resp.TLS.PeerCertificates[0].Subject)
			}
		}
		return nil
	}
	var last error
	for {
		if p != nil && p.exited() {
			return fmt.Errorf("exited: %v", p.err)
		}
		last = check("http://"+ep.HTTP+"/100", false)
		if last == nil {
			last = check("https://"+ep.HTTPS+"/100", true)
			if last == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%v (last: %v)", ctx.Err(), last)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// nginxConf is nginx as a reverse proxy the way an ingress controller runs
// it: one worker, no access log, HTTP/1.1 keep-alive upstream, forwarded
// headers, TLS with HTTP/2 on the second listener.
func nginxConf(dir string, ep endpoints, backend string, cert *certFiles) string {
	t := func(d string) string { return filepath.Join(dir, "tmp", d) }
	return `# generated by bench/loadbench
worker_processes 1;
pid ` + filepath.Join(dir, "nginx.pid") + `;
error_log ` + filepath.Join(dir, "error.log") + ` warn;

events {
    worker_connections 16384;
}

http {
    access_log off;
    server_tokens off;
    client_body_temp_path ` + t("client_body") + `;
    proxy_temp_path ` + t("proxy") + `;
    fastcgi_temp_path ` + t("fastcgi") + `;
    uwsgi_temp_path ` + t("uwsgi") + `;
    scgi_temp_path ` + t("scgi") + `;

    # Client keep-alive like Torii's defaults (75 s idle, no request cap;
    # nginx closes after 1000 requests by default).
    keepalive_timeout 75s;
    keepalive_requests 1000000;

    ssl_certificate ` + cert.CertPath + `;
    ssl_certificate_key ` + cert.KeyPath + `;
    ssl_protocols TLSv1.2 TLSv1.3;

    upstream backend {
        server ` + backend + `;
        keepalive 256;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }

    server {
        listen ` + ep.HTTP + ` backlog=4096;
        listen ` + ep.HTTPS + ` ssl http2 backlog=4096;

        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Request-ID $request_id;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Forwarded-Port $server_port;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
`
}

// haproxyCfg is the HAProxy equivalent: one thread, connection reuse to the
// backend, the same forwarded headers, no logging.
func haproxyCfg(ep endpoints, backend string, cert *certFiles) string {
	return `# generated by bench/loadbench
global
    nbthread 1
    maxconn 8000
    ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 75s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 75s
    http-reuse always

frontend fe
    bind ` + ep.HTTP + `
    bind ` + ep.HTTPS + ` ssl crt ` + cert.BundlePath + ` alpn h2,http/1.1
    maxconn 8000
    option forwardfor
    unique-id-format %[uuid()]
    unique-id-header X-Request-ID
    http-request set-header X-Real-IP %[src]
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Port %[dst_port]
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    default_backend be

backend be
    server s1 ` + backend + `
`
}

// writeToriiManifests writes the IngressClass, Service, EndpointSlice,
// Ingress and TLS Secret Torii serves.
func writeToriiManifests(dir, backend string, cert *certFiles) error {
	host, port, err := net.SplitHostPort(backend)
	if err != nil {
		return err
	}
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	files := map[string]string{
		"00-class.yaml": `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: torii
spec:
  controller: torii.dev/ingress-controller
`,
		"10-backend.yaml": `apiVersion: v1
kind: Service
metadata:
  name: backend
  namespace: bench
spec:
  ports:
    - name: http
      port: 80
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-1
  namespace: bench
  labels:
    kubernetes.io/service-name: backend
addressType: IPv4
ports:
  - name: http
    port: ` + port + `
endpoints:
  - addresses: ["` + host + `"]
    conditions:
      ready: true
`,
		"20-ingress.yaml": `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: bench
spec:
  ingressClassName: torii
  rules:
    - http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: backend
                port:
                  number: 80
`,
		"30-secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: bench-tls
  namespace: bench
type: kubernetes.io/tls
stringData:
  tls.crt: |
` + indent(cert.CertPEM) + `
  tls.key: |
` + indent(cert.KeyPEM) + `
`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startBackend starts the Go backend pinned with the proxy.
func (e *env) startBackend(ctx context.Context, outDir string) (*proc, error) {
	if e.backend.HTTP == "" {
		addrs, err := freeAddrs(2)
		if err != nil {
			return nil, err
		}
		e.backend = endpoints{HTTP: addrs[0], HTTPS: addrs[1]}
	}
	argv := []string{e.paths["taskset"], "-c", e.cpuProxy, e.self, "backend",
		"-addr", e.backend.HTTP, "-tls-addr", e.backend.HTTPS, "-cert", e.cert.CertPath, "-key", e.cert.KeyPath}
	p, err := startProc("backend", filepath.Join(outDir, "backend.log"), argv, nil)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, e.backend, e.cert, p, 20*time.Second); err != nil {
		p.stop(time.Second)
		return nil, errors.New("backend not ready: " + err.Error())
	}
	return p, nil
}
