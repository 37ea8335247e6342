package server

import (
	"net/http"

	"github.com/torii-dev/torii/internal/dataplane/fastpath"
	"github.com/torii-dev/torii/internal/dataplane/listener"
	"github.com/torii-dev/torii/internal/dataplane/proxy"
)

// newFastPath builds the HTTP/1 fast path unless Config.DisableHTTP1FastPath,
// sharing the proxy's routing table, settings and metrics, and returns
// it for the listeners (nil, an empty interface, when disabled).
func (s *Server) newFastPath() listener.FastPath {
	if s.cfg.DisableHTTP1FastPath {
		return nil
	}
	p, ok := s.dp.Handler().(*proxy.Proxy)
	if !ok {
		return nil
	}
	pc := p.Settings()
	s.fast = fastpath.New(fastpath.Config{
		Proxy:                 p,
		ConnectTimeout:        pc.ConnectTimeout,
		ResponseHeaderTimeout: pc.ResponseHeaderTimeout,
		IdleConnTimeout:       pc.IdleConnTimeout,
		UpstreamReadTimeout:   pc.UpstreamReadTimeout,
		UpstreamSendTimeout:   pc.UpstreamSendTimeout,
		ClientBodyTimeout:     pc.ClientBodyTimeout,
		ClientSendTimeout:     pc.ClientSendTimeout,
		MaxIdleConnsPerHost:   pc.MaxIdleConnsPerHost,
		MaxConnectAttempts:    pc.MaxConnectAttempts,
		RejectEncodedSlash:    pc.RejectEncodedSlash,
		ServerHeader:          pc.ServerHeader,
		Metrics:               s.metrics,
		Logger:                s.log,
	})
	// HTTP/2 streams and the HTTP/1 requests the fast path hands off
	// reach upstreams through its pool too, when they carry no body.
	p.WrapRoundTripper(func(tr http.RoundTripper) http.RoundTripper { return s.fast.Transport(tr) })
	return s.fast
}

// closeFastPath releases the fast path's idle upstream connections.
func (s *Server) closeFastPath() {
	if s.fast != nil {
		s.fast.Close()
	}
}
