package defaults

import "time"

// Defaults applied to zero (or negative) Config fields.
const (
	ConnectTimeout        = 5 * time.Second
	ResponseHeaderTimeout = 60 * time.Second
	IdleConnTimeout       = 90 * time.Second
	MaxIdleConnsPerHost   = 1024
	MaxConnectAttempts    = 3
	ServerHeader          = "torii"
	// The idle timeouts below follow nginx's defaults (proxy_read_timeout,
	// proxy_send_timeout, client_body_timeout, send_timeout; ingress-nginx
	// also bounds WebSockets by proxy-read-timeout, 60s).
	UpstreamReadTimeout = 60 * time.Second
	UpstreamSendTimeout = 60 * time.Second
	ClientBodyTimeout   = 60 * time.Second
	ClientSendTimeout   = 60 * time.Second
	TunnelIdleTimeout   = 60 * time.Second
)

// Or sets *v to def when *v is zero or negative.
func Or[T time.Duration | int](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
