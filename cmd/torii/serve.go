package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/torii-dev/torii/internal/server"
)

// serveFlags registers the flags of `torii serve` (shared with `torii demo`)
// on fs and returns a function that builds the server configuration once fs
// is parsed.
func serveFlags(fs *flag.FlagSet) func(stderr io.Writer) (server.Config, error) {
	cfg := server.Config{}
	fs.StringVar(&cfg.ManifestDir, "manifests", "", "directory of Kubernetes YAML manifests to serve (watched for changes); without it Torii watches the Kubernetes API")
	fs.StringVar(&cfg.Kube.Kubeconfig, "kubeconfig", "", "kubeconfig file for Kubernetes mode (default: the in-cluster config)")
	fs.Var(&stringList{&cfg.Kube.WatchNamespaces}, "watch-namespace", "namespace to watch (repeatable; default: all)")
	fs.Var(&commaList{&cfg.Kube.PublishStatusAddress}, "publish-status-address", "comma-separated IPs or hostnames written to Ingress status")
	fs.StringVar(&cfg.Kube.PublishService, "publish-service", "", "Service <namespace>/<name> whose load-balancer addresses are written to Ingress status")
	fs.StringVar(&cfg.Kube.ElectionID, "election-id", "torii-leader", "name of the Lease electing the replica that writes status and events")
	fs.StringVar(&cfg.Kube.ElectionNamespace, "election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the election Lease (default: $POD_NAMESPACE, else default)")
	fs.BoolVar(&cfg.Kube.UpdateStatusOnShutdown, "update-status-on-shutdown", true, "the last replica to stop clears the Ingress status it published")
	apiQPS := fs.Float64("kube-api-qps", 50, "sustained requests per second to the API server (status writes, Events, Lease renewals)")
	fs.IntVar(&cfg.Kube.APIBurst, "kube-api-burst", 100, "burst of requests to the API server above --kube-api-qps")
	fs.BoolVar(&cfg.Kube.Dedicated.Enabled, "enable-dedicated", false, "dedicated mode: Ingresses of classes whose IngressClassConfig says mode Dedicated get a proxy Deployment and load balancer of their own (needs the IngressClassConfig CRD)")
	fs.StringVar(&cfg.Kube.Dedicated.Image, "dedicated-image", "", "image of the dedicated proxies (default ghcr.io/torii-dev/torii:<this version>)")
	fs.BoolVar(&cfg.Kube.Dedicated.PublishClusterIP, "publish-cluster-ip", false, "dedicated mode: also write the dedicated Service's ClusterIP into the Ingress status")
	fs.Var(&stringList{&cfg.Kube.OnlyIngresses}, "only-ingress", "run as a dedicated proxy serving only Ingress <namespace>/<name> (repeatable, one namespace; set by the controller in dedicated mode)")
	fs.StringVar(&cfg.Kube.OnlyIngressClass, "only-ingress-class", "", "with --only-ingress: the IngressClass of those Ingresses")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", ":8080", "plain HTTP listener address (empty disables)")
	fs.StringVar(&cfg.HTTPSAddr, "https-addr", ":8443", "HTTPS listener address (empty disables)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", ":10254", "admin listener address: /healthz, /readyz, /metrics, /debug/routes (empty disables)")
	fs.StringVar(&cfg.Translate.ControllerName, "controller-name", "torii.dev/ingress-controller", "IngressClass spec.controller value this controller owns")
	fs.StringVar(&cfg.Translate.IngressClass, "ingress-class", "torii", "legacy kubernetes.io/ingress.class annotation value this controller owns")
	fs.BoolVar(&cfg.Translate.WatchIngressWithoutClass, "watch-ingress-without-class", false, "also serve Ingresses that name no class")
	fs.StringVar(&cfg.DefaultSSLCertificate, "default-ssl-certificate", "", "TLS Secret <namespace>/<name> served when no certificate matches (default: self-signed, generated at start)")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "time allowed to read a client's request headers")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", 75*time.Second, "keep-alive idle timeout for client connections")
	fs.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", 60<<10, "maximum size of a client's request headers")
	fs.DurationVar(&cfg.Proxy.ConnectTimeout, "upstream-connect-timeout", 5*time.Second, "timeout for connecting to an upstream endpoint")
	fs.DurationVar(&cfg.Proxy.ResponseHeaderTimeout, "upstream-response-header-timeout", 60*time.Second, "timeout for an upstream's response headers")
	fs.DurationVar(&cfg.Proxy.UpstreamReadTimeout, "upstream-read-timeout", 60*time.Second, "longest pause between two reads of an upstream's response body (nginx proxy_read_timeout)")
	fs.DurationVar(&cfg.Proxy.UpstreamSendTimeout, "upstream-send-timeout", 60*time.Second, "longest pause between two writes of a request body to an upstream (nginx proxy_send_timeout)")
	fs.DurationVar(&cfg.Proxy.ClientBodyTimeout, "client-body-timeout", 60*time.Second, "longest pause between two reads of a client's request body (408 after it)")
	fs.DurationVar(&cfg.Proxy.ClientSendTimeout, "client-send-timeout", 60*time.Second, "longest pause between two writes of a response to a client; an HTTP/2 connection whose client accepts no bytes for this long is closed")
	fs.DurationVar(&cfg.Proxy.TunnelIdleTimeout, "tunnel-idle-timeout", 60*time.Second, "WebSocket and other upgraded connections close after this long without traffic either way")
	fs.BoolVar(&cfg.Proxy.AllowExternalNameLoopback, "externalname-allow-loopback", false, "let ExternalName Services reach loopback addresses (local development only; link-local and metadata addresses stay refused)")
	fs.IntVar(&cfg.Proxy.MaxIdleConnsPerHost, "upstream-max-idle-conns", 1024, "idle keep-alive connections kept per upstream endpoint")
	fs.BoolVar(&cfg.Proxy.RejectEncodedSlash, "reject-encoded-slash", false, "answer 400 to paths containing %2F, %5C or a backslash instead of forwarding them encoded")
	fs.DurationVar(&cfg.ShutdownGracePeriod, "shutdown-grace-period", 5*time.Second, "on SIGTERM, how long readiness is false before listeners stop accepting")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 20*time.Second, "on shutdown, how long in-flight requests may take to finish")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve net/http/pprof on the admin listener")
	fastPath := fs.Bool("http1-fast-path", true, "serve HTTP/1.1 requests with Torii's own HTTP/1 fast path and send body-less HTTP/2 requests upstream over its connection pool (unusual requests go to net/http); false serves everything with net/http")
	fs.StringVar(&cfg.Webhook.Addr, "webhook-addr", "", "HTTPS address of the validating admission webhook for Ingresses, POST /validate/ingress (empty disables)")
	fs.StringVar(&cfg.Webhook.CertSecret, "webhook-cert-secret", "", "TLS Secret <namespace>/<name> in which Torii generates and renews the webhook's certificate and CA (Kubernetes mode)")
	fs.StringVar(&cfg.Webhook.ConfigName, "webhook-config-name", "", "ValidatingWebhookConfiguration whose webhooks get the generated CA as caBundle (with --webhook-cert-secret)")
	fs.StringVar(&cfg.Webhook.Service, "webhook-service", "", "the webhook's Service, in the Secret's namespace; the certificate covers <service>.<namespace>.svc (default: the Secret's name without a trailing -cert)")
	fs.Var(&stringList{&cfg.Webhook.Hosts}, "webhook-cert-host", "further DNS name or IP address for the generated certificate (repeatable), e.g. 127.0.0.1 for a webhook called by URL")
	fs.StringVar(&cfg.Webhook.CertFile, "webhook-cert-file", "", "webhook serving certificate (PEM), e.g. from cert-manager; re-read when it changes")
	fs.StringVar(&cfg.Webhook.KeyFile, "webhook-key-file", "", "webhook serving key (PEM), with --webhook-cert-file")
	fs.DurationVar(&cfg.Webhook.Timeout, "webhook-timeout", 4*time.Second, "longest time one admission review may take (503 after it); keep it below the ValidatingWebhookConfiguration's timeoutSeconds")
	fs.IntVar(&cfg.Webhook.MaxConcurrent, "webhook-max-concurrent", 4, "admission reviews judged at once; request bodies held are bounded to this many times 9 MiB")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	return func(stderr io.Writer) (server.Config, error) {
		log, err := newLogger(stderr, *logLevel, *logFormat)
		if err != nil {
			return cfg, err
		}
		cfg.Logger = log
		cfg.Version = version
		if *apiQPS <= 0 || *apiQPS > 10000 || cfg.Kube.APIBurst <= 0 || cfg.Kube.APIBurst > 100000 {
			return cfg, fmt.Errorf("--kube-api-qps must be in (0, 10000] and --kube-api-burst in [1, 100000]")
		}
		cfg.Kube.APIQPS = float32(*apiQPS) // client-go wants a float32
		cfg.DisableHTTP1FastPath = !*fastPath

		// The downward API names the pod (see deploy/torii.yaml).
		cfg.Kube.PodName = os.Getenv("POD_NAME")
		cfg.Kube.PodNamespace = os.Getenv("POD_NAMESPACE")
		return cfg, nil
	}
}

// stringList is a repeatable string flag.
type stringList struct{ values *[]string }

func (l *stringList) String() string {
	if l.values == nil {
		return ""
	}
	return strings.Join(*l.values, ",")
}

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l.values = append(*l.values, v)
	return nil
}

// commaList is a flag holding a comma-separated list.
type commaList struct{ values *[]string }

func (l *commaList) String() string {
	if l.values == nil {
		return ""
	}
	return strings.Join(*l.values, ",")
}

func (l *commaList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			*l.values = append(*l.values, item)
		}
	}
	return nil
}

func serveCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("torii serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	build := serveFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg, err := build(stderr)
	if err != nil {
		return err
	}
	return serve(ctx, cfg)
}

// serve runs a server until ctx is done.
func serve(ctx context.Context, cfg server.Config) error {
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("torii serving", "version", version, "manifests", cfg.ManifestDir,
		"http", addrString(srv.HTTPAddr()), "https", addrString(srv.HTTPSAddr()), "admin", addrString(srv.AdminAddr()),
		"webhook", addrString(srv.WebhookAddr()))
	return srv.Run(ctx)
}

func addrString(a net.Addr) string {
	if a == nil {
		return "disabled"
	}
	return a.String()
}
