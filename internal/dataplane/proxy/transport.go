package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxResponseHeaderBytes bounds an upstream's response header. Go's default
// of 10 MB lets one misbehaving backend pin that much memory per request.
const maxResponseHeaderBytes = 1 << 20

// initTransports builds the Transports every request shares: one for
// endpoints from EndpointSlices, one for ExternalName backends, whose
// connects are checked (see checkResolved).
func (p *Proxy) initTransports() {
	p.dialer = net.Dialer{
		Timeout: p.cfg.ConnectTimeout,
		// TCP keep-alive finds upstream connections that died silently
		// (node gone, NAT state dropped) while idle in the pool.
		KeepAlive: 30 * time.Second,
	}
	p.nameDialer = p.dialer
	p.nameDialer.Control = p.checkResolved
	p.transport = p.newTransport(p.dialEndpoint)
	p.externalTransport = p.newTransport(p.dialExternal)
}

// newTransport builds a Transport tuned for a proxy: large per-endpoint idle
// pools, HTTP/1.1 only, no proxy from the environment, no transparent gzip
// (the client's Accept-Encoding decides), and a dialer that marks connect
// failures so they can be retried and wraps connections in the upstream
// idle timeouts.
func (p *Proxy) newTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
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

// dialEndpoint is the dialer for endpoints from EndpointSlices, which are IP
// addresses. Only ExternalName backends have DNS names, and they use
// dialExternal; a name here gets its checks all the same.
func (p *Proxy) dialEndpoint(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &p.dialer
	if host, _, err := net.SplitHostPort(addr); err != nil || !isIPLiteral(host) {
		d = &p.nameDialer
	}
	return p.dial(ctx, d, network, addr)
}

// dialExternal is the dialer for ExternalName backends. Their address is
// whatever the Service's owner wrote, an IP address included (Kubernetes
// accepts "169.254.169.254" as a DNS name), so every connect is checked.
func (p *Proxy) dialExternal(ctx context.Context, network, addr string) (net.Conn, error) {
	return p.dial(ctx, &p.nameDialer, network, addr)
}

// dial connects and wraps the connection in the upstream idle timeouts.
// Wrapping errors in dialError, rather than recognising *net.OpError with Op
// "dial" afterwards, keeps the "nothing was sent" guarantee independent of
// how the Transport reports errors.
func (p *Proxy) dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, &dialError{err: err}
	}
	return p.newUpstreamConn(c), nil
}

func isIPLiteral(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// errForbiddenAddr is why a resolved ExternalName address was refused.
var errForbiddenAddr = errors.New("address not allowed for an ExternalName backend")

// checkResolved is nameDialer's Control: it refuses addresses an
// ExternalName Service must not reach. It runs on every address a name
// resolved to, just before the connect, so a DNS answer that changes
// between a check and the connect (rebinding) cannot slip past it. Loopback would expose Torii's own
// admin port (/debug/routes, metrics) and anything else bound to localhost;
// link-local includes the cloud metadata service (169.254.169.254) and its
// credentials; unspecified addresses connect to the local host; multicast is
// never a backend. The error fails the connect, which answers 502.
func (p *Proxy) checkResolved(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", errForbiddenAddr, address)
	}
	if why := forbiddenUpstream(ap.Addr(), p.cfg.AllowExternalNameLoopback); why != "" {
		return fmt.Errorf("%w: %s is %s", errForbiddenAddr, ap.Addr(), why)
	}
	return nil
}

// Well-known metadata addresses outside the link-local ranges: AWS's IPv6
// IMDS endpoint and Alibaba Cloud's.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
}

// nat64Prefix is the well-known NAT64 prefix (RFC 6052), which embeds an IPv4
// address in its last 32 bits.
var nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")

// forbiddenUpstream says why a DNS-named upstream must not connect to a, or
// "" if it may.
func forbiddenUpstream(a netip.Addr, allowLoopback bool) string {
	a = a.Unmap()
	if nat64Prefix.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case a.IsLoopback():
		if !allowLoopback {
			return "loopback"
		}
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsUnspecified() || a.Is4() && a.As4()[0] == 0:
		// 0.0.0.0/8 is "this network"; connecting to it reaches the
		// local host.
		return "unspecified"
	case a.IsMulticast():
		return "multicast"
	}
	for _, m := range metadataAddrs {
		if a.WithZone("") == m {
			return "a cloud metadata address"
		}
	}
	return ""
}

// upstreamConn applies UpstreamReadTimeout and UpstreamSendTimeout to an
// upstream connection as deadlines renewed before every read and write.
//
// The Transport reads a pooled connection all the time, idle or not (its
// read loop waits on it to notice the upstream closing), so the read
// deadline cannot tell waiting for a response from waiting in the pool.
// Writes therefore renew it as well: a request being written (a long upload
// included) keeps the wait for its answer from timing out, and an idle
// connection is closed after UpstreamReadTimeout without traffic, never in
// the middle of a request. From a write until the answer's first bytes the
// read deadline also leaves room for ResponseHeaderTimeout, whose expiry
// answers 504 at once, where a read error on a reused connection could make
// the Transport retry the request; once the answer flows, UpstreamReadTimeout
// applies between reads again.
//
// The Transport's read and write loops run concurrently, so renewals take a
// mutex, though only when due.
type upstreamConn struct {
	net.Conn
	readTimeout, afterWrite, sendTimeout int64
	readSlack, sendSlack                 int64

	mu         sync.Mutex
	readUntil  atomic.Int64 // read deadline last set, monoNow units
	writeUntil atomic.Int64
	// awaiting is set by a write and cleared by the next read that
	// returns data: an answer is due, and ResponseHeaderTimeout bounds
	// the wait for it.
	awaiting atomic.Bool
	tunnel   atomic.Bool // the read deadline is lifted for good
}

func (p *Proxy) newUpstreamConn(c net.Conn) *upstreamConn {
	read := p.cfg.UpstreamReadTimeout
	return &upstreamConn{
		Conn:        c,
		readTimeout: int64(read),
		afterWrite:  int64(max(read, p.cfg.ResponseHeaderTimeout+time.Second)),
		sendTimeout: int64(p.cfg.UpstreamSendTimeout),
		readSlack:   renewSlack(read),
		sendSlack:   renewSlack(p.cfg.UpstreamSendTimeout),
	}
}

func (c *upstreamConn) Read(b []byte) (int, error) {
	if !c.tunnel.Load() {
		if c.awaiting.Load() {
			c.renewRead(monoNow()+c.afterWrite, false)
		} else {
			c.renewRead(monoNow()+c.readTimeout, true)
		}
	}
	n, err := c.Conn.Read(b)
	// The read loop's wait usually began before the request was written;
	// data now means the answer is flowing, whenever the wait began.
	if n > 0 && c.awaiting.Load() {
		c.awaiting.Store(false)
	}
	return n, err
}

func (c *upstreamConn) Write(b []byte) (int, error) {
	now := monoNow()
	if want := now + c.sendTimeout; want-c.writeUntil.Load() >= c.sendSlack {
		c.mu.Lock()
		if want-c.writeUntil.Load() >= c.sendSlack {
			c.writeUntil.Store(want)
			_ = c.Conn.SetWriteDeadline(monoTime(want))
		}
		c.mu.Unlock()
	}
	if !c.tunnel.Load() {
		c.awaiting.Store(true)
		c.renewRead(now+c.afterWrite, false)
	}
	return c.Conn.Write(b)
}

// renewRead moves the read deadline to want unless the one set is within
// the slack of it. Unless back is set it only moves the deadline later:
// while an answer is awaited, the longer deadline a write set stands.
func (c *upstreamConn) renewRead(want int64, back bool) {
	if !c.readDue(want, back) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.readDue(want, back) || c.tunnel.Load() {
		return
	}
	c.readUntil.Store(want)
	_ = c.Conn.SetReadDeadline(monoTime(want))
}

func (c *upstreamConn) readDue(want int64, back bool) bool {
	d := want - c.readUntil.Load()
	return d >= c.readSlack || back && -d >= c.readSlack
}

// CloseWrite half-closes the connection, which a tunnel uses to pass on the
// client's EOF; embedding net.Conn alone would hide it.
func (c *upstreamConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// enterTunnel lifts the read deadline for good: an upgraded connection is
// bounded by the tunnel's idle timeout instead, which counts traffic in both
// directions. The write deadline stays.
func (c *upstreamConn) enterTunnel() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tunnel.Store(true)
	_ = c.Conn.SetReadDeadline(time.Time{})
}

// ConnectFailure is implemented by the connect errors of round trippers
// other than the proxy's own Transports (the fast path's, see
// Proxy.WrapRoundTripper): nothing was sent, so the request may go to
// another endpoint.
type ConnectFailure interface{ ConnectFailure() }

func isDialError(err error) bool {
	var de *dialError
	var cf ConnectFailure
	return errors.As(err, &de) || errors.As(err, &cf)
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
