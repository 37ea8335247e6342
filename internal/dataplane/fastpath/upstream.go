package fastpath

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/torii-dev/torii/internal/dataplane/defaults"
)

// upConn is one upstream connection. It is used by one request at a time.
type upConn struct {
	nc     net.Conn
	hp     *hostPool
	idleAt int64 // monoNow when it went idle
	reused bool
	// rdl and wdl are the read and write deadlines last set, in monoNow
	// units; 0 means none.
	rdl, wdl int64
	peek     peeker
}

// setReadDeadline moves the read deadline to want unless the one set is
// within slack of it.
func (u *upConn) setReadDeadline(want, slack int64) {
	if d := want - u.rdl; d >= slack || -d >= slack {
		u.rdl = want
		_ = u.nc.SetReadDeadline(monoTime(want))
	}
}

func (u *upConn) setWriteDeadline(want, slack int64) {
	if d := want - u.wdl; d >= slack || -d >= slack {
		u.wdl = want
		_ = u.nc.SetWriteDeadline(monoTime(want))
	}
}

func (u *upConn) close() { _ = u.nc.Close() }

// read reads into p with the read deadline at deadline (within slack).
func (u *upConn) read(p []byte, deadline, slack int64) (int, error) {
	u.setReadDeadline(deadline, slack)
	return u.nc.Read(p)
}

// hostPool holds the idle connections to one endpoint, most recently used
// last.
type hostPool struct {
	mu      sync.Mutex
	idle    []*upConn
	dead    bool // removed from the pool's map: connections put back are closed
	lastUse int64
}

// pool is the per-endpoint idle connection pool. Endpoints from
// EndpointSlices and ExternalName backends have separate maps (as the proxy
// has separate Transports), so their connections never mix.
type pool struct {
	dialer, nameDialer net.Dialer
	maxIdle            int
	idleTimeout        int64

	mu    sync.RWMutex
	hosts [2]map[string]*hostPool

	reapEvery time.Duration
	startOnce sync.Once
	stop      chan struct{}
	stopOnce  sync.Once
	reaper    sync.WaitGroup
}

func newPool(dialer, nameDialer net.Dialer, maxIdle int, idleTimeout time.Duration) *pool {
	p := &pool{
		dialer:      dialer,
		nameDialer:  nameDialer,
		maxIdle:     maxIdle,
		idleTimeout: int64(idleTimeout),
		hosts:       [2]map[string]*hostPool{{}, {}},
		reapEvery:   min(max(idleTimeout/4, time.Second), 30*time.Second),
		stop:        make(chan struct{}),
	}
	return p
}

func (p *pool) host(addr string, external bool) *hostPool {
	i := 0
	if external {
		i = 1
	}
	p.mu.RLock()
	hp := p.hosts[i][addr]
	p.mu.RUnlock()
	if hp != nil {
		return hp
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if hp = p.hosts[i][addr]; hp == nil {
		hp = &hostPool{}
		p.hosts[i][addr] = hp
	}
	return hp
}

// dialError marks an error from connecting: nothing was sent, so the request
// may be retried on another endpoint.
type dialError struct{ err error }

func (e *dialError) Error() string { return "connect upstream: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// ConnectFailure marks the error for the proxy (proxy.ConnectFailure),
// which then tries another endpoint when the Transport returns it.
func (e *dialError) ConnectFailure() {}

// get returns a connection to addr: the most recently used idle one unless
// fresh is set, else a new one. Every pooled connection is peeked before
// reuse (one non-blocking recv, about a microsecond): one the upstream
// closed, or one carrying bytes nobody asked for, is dropped, so a stray
// byte from a misbehaving upstream can never be read as the next answer.
func (p *pool) get(addr string, external, fresh bool) (*upConn, error) {
	hp := p.host(addr, external)
	for !fresh {
		hp.mu.Lock()
		n := len(hp.idle)
		if n == 0 {
			hp.mu.Unlock()
			break
		}
		u := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		hp.mu.Unlock()
		age := monoNow() - u.idleAt
		if age > p.idleTimeout || !u.alive() {
			u.close()
			continue
		}
		u.reused = true
		return u, nil
	}
	d := &p.dialer
	if external || !isIPLiteral(addr) {
		d = &p.nameDialer
	}
	nc, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, &dialError{err: err}
	}
	return &upConn{nc: nc, hp: hp}, nil
}

// put returns a connection whose last exchange ended cleanly to its pool.
func (p *pool) put(u *upConn) {
	// The reaper starts with the first idle connection, so a pool that
	// is never used (or a Server that never starts) runs no goroutine.
	p.startOnce.Do(func() {
		select {
		case <-p.stop:
		default:
			p.reaper.Add(1)
			go p.reap(p.reapEvery)
		}
	})
	u.idleAt = monoNow()
	hp := u.hp
	hp.mu.Lock()
	if hp.dead || len(hp.idle) >= p.maxIdle {
		hp.mu.Unlock()
		u.close()
		return
	}
	hp.idle = append(hp.idle, u)
	hp.lastUse = u.idleAt
	hp.mu.Unlock()
}

// alive reports whether an idle connection is still usable: the upstream
// has neither closed it nor sent anything unasked.
func (u *upConn) alive() bool {
	if u.rdl != 0 && u.rdl <= monoNow() {
		// An expired deadline would fail the check before it looks.
		u.rdl = 0
		_ = u.nc.SetReadDeadline(time.Time{})
	}
	return u.peek.alive(u.nc)
}

func isIPLiteral(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	_, err = netip.ParseAddr(host)
	return err == nil
}

// reap closes idle connections past the idle timeout and forgets endpoints
// unused for as long, every interval, until close.
func (p *pool) reap(interval time.Duration) {
	defer p.reaper.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		p.sweep(monoNow() - p.idleTimeout)
	}
}

// sweep closes connections idle since before cutoff (all of them for a
// cutoff in the future) and removes endpoints without connections unused
// since before it.
func (p *pool) sweep(cutoff int64) {
	var expired []*upConn
	p.mu.Lock()
	for i := range p.hosts {
		for addr, hp := range p.hosts[i] {
			hp.mu.Lock()
			k := 0
			for k < len(hp.idle) && hp.idle[k].idleAt < cutoff {
				k++
			}
			if k > 0 {
				expired = append(expired, hp.idle[:k]...)
				n := copy(hp.idle, hp.idle[k:])
				clear(hp.idle[n:])
				hp.idle = hp.idle[:n]
			}
			if len(hp.idle) == 0 && hp.lastUse < cutoff {
				hp.dead = true
				delete(p.hosts[i], addr)
			}
			hp.mu.Unlock()
		}
	}
	p.mu.Unlock()
	for _, u := range expired {
		u.close()
	}
}

// close stops the reaper and closes every idle connection. The pool stays
// usable; connections it keeps from then on are dropped when found expired
// at reuse.
func (p *pool) close() {
	p.stopOnce.Do(func() { close(p.stop) })
	p.reaper.Wait()
	p.sweep(monoNow() + 1)
}

func isDialError(err error) bool {
	var de *dialError
	return errors.As(err, &de)
}

// isTimeout reports whether err is a timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// The deadlines are kept on the monotonic clock, as the proxy's are.
var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

func monoTime(ns int64) time.Time { return monoBase.Add(time.Duration(ns)) }

// slackFor is defaults.RenewSlack in monoNow's units: renewing at most about
// once a second keeps timer updates off the per-request path.
func slackFor(timeout int64) int64 {
	return int64(defaults.RenewSlack(time.Duration(timeout)))
}
