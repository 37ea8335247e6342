// Package proxy is Torii's HTTP request forwarder: the http.Handler that
// canonicalises the request path, routes by Host and path through the live
// routing table, and relays the request to a backend endpoint over a shared,
// keep-alive HTTP/1.1 transport.
//
// It is written for the hot path of an internet-facing proxy rather than for
// generality: the incoming request is rewritten in place instead of cloned,
// constant header values are shared, the body copy buffer is pooled, and no
// goroutine is started except the second copy direction of an upgraded
// (WebSocket) tunnel. A routing table and its backend handles are installed
// with Proxy.Swap; each request loads them once, so swaps never disturb
// requests, keep-alive connections or tunnels already in progress.
package proxy
