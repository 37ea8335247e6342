package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// maxResponseHeaderBytes bounds an upstream's response header. Go's default
// of 10 MB lets one misbehaving backend pin that much memory per request.
const maxResponseHeaderBytes = 1 << 20

// newTransport builds the one Transport every request shares, tuned for a
// proxy: large per-endpoint idle pools, HTTP/1.1 only, no proxy from the
// environment, no transparent gzip (the client's Accept-Encoding decides),
// and a dialer that marks connect failures so they can be retried.
func (p *Proxy) newTransport() *http.Transport {
	p.dialer = net.Dialer{
		Timeout: p.cfg.ConnectTimeout,
		// TCP keep-alive finds upstream connections that died silently
		// (node gone, NAT state dropped) while idle in the pool.
		KeepAlive: 30 * time.Second,
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            p.dialContext,
		MaxIdleConns:           0, // no global cap; MaxIdleConnsPerHost bounds each endpoint
		MaxIdleConnsPerHost:    p.cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        p.cfg.IdleConnTimeout,
		ResponseHeaderTimeout:  p.cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		ForceAttemptHTTP2:      false,
		Protocols:              &protocols,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
}

// dialError marks an error from connecting to an endpoint: nothing of the
// request was sent, so it may be retried on another endpoint.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect upstream: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dialContext is the Transport's dialer. Wrapping its errors, rather than
// recognising *net.OpError with Op "dial" afterwards, keeps the "nothing was
// sent" guarantee independent of how the Transport reports errors.
func (p *Proxy) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := p.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &dialError{err: err}
	}
	return c, nil
}

func isDialError(err error) bool {
	var de *dialError
	return errors.As(err, &de)
}

// isTimeout reports whether err is a timeout: a connect or response-header
// timeout, or a deadline on the request context.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
