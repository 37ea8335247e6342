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

// halfClosedIdleTimeout ends a tunnel one side of which has finished sending
// when the other side sends nothing for this long. A fully open tunnel has no
// idle limit (applications keep their own pings); a half-closed one would
// otherwise be held forever by a peer that never closes.
const halfClosedIdleTimeout = 60 * time.Second

// tunnel completes a protocol upgrade (WebSocket or other): it relays the
// upstream's 101 to the client over the hijacked connection and then copies
// bytes both ways until the tunnel ends.
func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request, start time.Time, res *http.Response, upgrade bool) {
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
// side supports it; any error, or a half-closed tunnel idle for
// halfClosedIdleTimeout, closes both.
func (p *Proxy) splice(client net.Conn, clientReader io.Reader, back io.ReadWriteCloser) {
	t := &tunnelState{client: client, back: back, base: time.Now(), idleLimit: p.halfClosedIdle}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pipe(t, back, clientReader)
	}()
	p.pipe(t, client, back)
	<-done
	t.stop()
}

// tunnelState is what the two directions of a tunnel share.
type tunnelState struct {
	client    net.Conn
	back      io.ReadWriteCloser
	base      time.Time
	idleLimit time.Duration
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

// startIdleWatch bounds the time a half-closed tunnel may sit idle.
func (t *tunnelState) startIdleWatch() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		return
	}
	t.timer = time.AfterFunc(t.idleLimit, t.checkIdle)
}

func (t *tunnelState) checkIdle() {
	idle := time.Since(t.base) - time.Duration(t.lastRead.Load())
	if idle >= t.idleLimit {
		t.abort()
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Reset(t.idleLimit - idle)
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
// a half-close, which leaves the other direction running under the idle
// watch; anything else ends the whole tunnel.
func (p *Proxy) pipe(t *tunnelState, dst io.Writer, src io.Reader) {
	bp := p.tunnelBufs.Get().(*[]byte)
	defer p.tunnelBufs.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			t.lastRead.Store(int64(time.Since(t.base)))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				t.abort()
				return
			}
		}
		if err == io.EOF {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				t.startIdleWatch()
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
