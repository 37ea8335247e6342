package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tunnelBufferSize is the copy buffer of each tunnel direction. A tunnel
// holds its two buffers for its whole life, and WebSocket connections are
// many and mostly idle, so this is far smaller than the response buffer.
const tunnelBufferSize = 8 << 10

// halfClosedIdleTimeout caps the idle limit of a tunnel one side of which
// has finished sending, whatever TunnelIdleTimeout is: a peer that never
// closes its side would otherwise hold it for the full limit, an hour if so
// configured, with nothing left to say in one direction.
const halfClosedIdleTimeout = 60 * time.Second

// tunnel completes a protocol upgrade (WebSocket or other): it relays the
// upstream's 101 to the client over the hijacked connection and then copies
// bytes both ways until the tunnel ends.
func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request, o *outbound, start time.Time, res *http.Response, upgrade bool) {
	back, ok := res.Body.(io.ReadWriteCloser)
	resProto := firstToken(res.Header["Upgrade"])
	if !upgrade || !ok || resProto == "" || !hasToken(r.Header["Upgrade"], resProto) {
		// A switch nobody asked for, or to a protocol the client did not
		// offer: relaying it would hand the client a connection speaking
		// something it does not expect.
		res.Body.Close()
		p.fail(w, start, &p.pages.badGateway, failProtocol)
		return
	}
	defer back.Close()
	if o.upConn != nil {
		// From here on the tunnel's idle timeout applies, not the wait
		// for a response.
		o.upConn.enterTunnel()
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.logUpstream(r.Context(), "hijack for upgrade", "", err)
		p.fail(w, start, &p.pages.badGateway, failProtocol)
		return
	}
	defer conn.Close()

	h := make(http.Header, len(res.Header)+3)
	copyResponseHeader(h, res.Header)
	h["Connection"] = p.hdr.upgrade
	h["Upgrade"] = res.Header["Upgrade"]
	h["Server"] = p.hdr.server
	// The server no longer writes for us: the 101 goes out by hand. Hijack
	// reset brw.Writer onto the connection, so nothing else is pending.
	// Like every write to the client, bounded by ClientSendTimeout.
	_ = conn.SetWriteDeadline(time.Now().Add(p.cfg.ClientSendTimeout))
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	_ = h.Write(brw)
	_, _ = brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		p.observe(statusClientClosed, start)
		return
	}
	p.observe(http.StatusSwitchingProtocols, start)
	// brw.Reader may hold bytes the client sent right after its request
	// (eager WebSocket frames); reading through it forwards them first.
	p.splice(conn, brw.Reader, back)
}

// splice copies client→backend on a new goroutine and backend→client on this
// one. An EOF on one side is passed on as a half-close of the other, if that
// side supports it; any error closes both. The tunnel is also closed when no
// bytes flowed either way for TunnelIdleTimeout (halfClosedIdleTimeout at
// most once half-closed), and when a write to the client blocks for
// ClientSendTimeout. Writes to the backend are bounded by the upstream
// connection's own send timeout.
func (p *Proxy) splice(client net.Conn, clientReader io.Reader, back io.ReadWriteCloser) {
	t := &tunnelState{client: client, back: back, base: time.Now()}
	t.idleLimit.Store(int64(p.cfg.TunnelIdleTimeout))
	t.startIdleWatch()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pipe(t, back, clientReader, nil)
	}()
	sd := newIdleDeadline(p.cfg.ClientSendTimeout)
	p.pipe(t, client, back, &sd)
	<-done
	t.stop()
}

// tunnelState is what the two directions of a tunnel share.
type tunnelState struct {
	client    net.Conn
	back      io.ReadWriteCloser
	base      time.Time
	idleLimit atomic.Int64 // nanoseconds
	lastRead  atomic.Int64 // nanoseconds since base
	closeOnce sync.Once
	mu        sync.Mutex
	timer     *time.Timer
}

// abort closes both connections, which unblocks the other direction.
func (t *tunnelState) abort() {
	t.closeOnce.Do(func() {
		t.client.Close()
		t.back.Close()
	})
}

// startIdleWatch starts the idle timer. It checks the time since the last
// read when it fires rather than being reset on every read, which would
// cost a timer update per read.
func (t *tunnelState) startIdleWatch() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.timer = time.AfterFunc(time.Duration(t.idleLimit.Load()), t.checkIdle)
}

// halfClosed lowers the idle limit once one direction has ended.
func (t *tunnelState) halfClosed(limit time.Duration) {
	for {
		cur := t.idleLimit.Load()
		if cur <= int64(limit) || t.idleLimit.CompareAndSwap(cur, int64(limit)) {
			break
		}
	}
	// The timer may be set for the old, longer limit.
	t.checkIdle()
}

func (t *tunnelState) checkIdle() {
	limit := time.Duration(t.idleLimit.Load())
	idle := time.Since(t.base) - time.Duration(t.lastRead.Load())
	if idle >= limit {
		t.abort()
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Reset(limit - idle)
	}
}

func (t *tunnelState) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}

// pipe copies src to dst until src ends. A clean EOF is passed on to dst as
// a half-close, which leaves the other direction running under the shorter
// half-closed idle limit; anything else ends the whole tunnel. If sd is
// non-nil, dst is the client connection and gets a write deadline renewed
// before every write.
func (p *Proxy) pipe(t *tunnelState, dst io.Writer, src io.Reader, sd *idleDeadline) {
	bp := p.tunnelBufs.Get().(*[]byte)
	defer p.tunnelBufs.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			t.lastRead.Store(int64(time.Since(t.base)))
			if sd != nil {
				if dl, ok := sd.renew(); ok {
					_ = t.client.SetWriteDeadline(dl)
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				t.abort()
				return
			}
		}
		if err == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				t.halfClosed(p.halfClosedIdle)
				return
			}
			t.abort()
			return
		}
		if err != nil {
			t.abort()
			return
		}
	}
}

// firstToken returns the first comma-separated token of header values.
func firstToken(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[0]
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	return strings.Trim(v, " \t")
}
