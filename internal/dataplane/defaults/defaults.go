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

// RenewSlack is how far a deadline may fall behind "now + timeout" before it
// is pushed forward. Renewing on every read or write would cost a runtime
// timer update each time (and a message to the connection's serve loop on
// HTTP/2); with the slack a busy transfer renews at most about once a
// second, and the time an operation gets stays between 15/16 of the timeout
// and all of it.
func RenewSlack(timeout time.Duration) time.Duration {
	return min(timeout/16, time.Second)
}

// Or sets *v to def when *v is zero or negative.
func Or[T time.Duration | int](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
