package fastpath

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Backends that close keep-alive connections early, in every way a real one
// does: with stray bytes, idle timeouts, abrupt closes, Connection: close and
// resets. The fast path must never read stray bytes as an answer, and must
// fail no replayable request on a connection the upstream dropped.

// ecAction is what an ecBackend does with a connection after an answer.
type ecAction int

const (
	ecKeep  ecAction = iota
	ecClose          // close (FIN) right after the answer
	ecReset          // reset (RST: SetLinger(0), Close) right after it
)

// ecBackend is a raw TCP backend: answer gives the bytes for the n-th
// request on connection conn (both from 1) and what to do next. idle, when
// set, is how long a connection that has carried a request may wait for the
// next one; then it is closed, or reset with idleReset. after, when set,
// runs after each answer on the connection's goroutine.
type ecBackend struct {
	*tcpBackend
	idle      time.Duration
	idleReset bool
	answer    func(conn, n int64, req *http.Request, body string) (string, ecAction)
	after     func(conn, n int64, c net.Conn)

	reqs atomic.Int64
}

func ecNewBackend(t testing.TB, b *ecBackend) *ecBackend {
	t.Helper()
	b.tcpBackend = newTCPBackend(t, b.serveConn)
	return b
}

func ecResetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (b *ecBackend) serveConn(id int64, c net.Conn) {
	br := bufio.NewReader(c)
	for n := int64(1); ; n++ {
		if b.idle > 0 && n > 1 {
			// Idle between requests: wait so long for the next one.
			_ = c.SetReadDeadline(time.Now().Add(b.idle))
			if _, err := br.Peek(1); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && b.idleReset {
					ecResetConn(c)
					return
				}
				c.Close()
				return
			}
			_ = c.SetReadDeadline(time.Time{})
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			c.Close()
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			c.Close()
			return
		}
		b.reqs.Add(1)
		out, act := b.answer(id, n, req, string(body))
		if _, err := io.WriteString(c, out); err != nil {
			c.Close()
			return
		}
		switch act {
		case ecClose:
			c.Close()
			return
		case ecReset:
			ecResetConn(c)
			return
		}
		if b.after != nil {
			b.after(id, n, c)
		}
	}
}

func (b *ecBackend) addr() string { return b.ln.Addr().String() }

// ecBody is the body every soak backend answers with: it names the backend
// and echoes the request, so a misdirected or stale answer is caught.
func ecBody(name, method, uri, body string) string {
	return fmt.Sprintf("%s %s %s %d:%s", name, method, uri, len(body), body)
}

func ecOK(body, extra string) string {
	return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + extra +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// 1. Unsolicited bytes on an idle keep-alive connection: the backend answers
// a request, then about 100 ms later writes a complete fake answer ("evil")
// on the idle connection. The next request must get the backend's real
// answer, and reach the backend on a new connection.
//
// This test can fail: with the peek in pool.get limited to connections idle
// for over a second (`age > p.idleTimeout || age > int64(time.Second) &&
// !u.alive()`), the fast path reuses the connection, and the second request
// is answered "evil" (the stray bytes, already in the socket buffer, are read
// as its answer) while the backend sees it on connection 1.
func TestEarlyCloseUnsolicitedBytes(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		stray := make(chan struct{})
		var servedOn [3]atomic.Int64 // request number → connection
		var nreq atomic.Int64
		b := ecNewBackend(t, &ecBackend{
			answer: func(conn, n int64, req *http.Request, body string) (string, ecAction) {
				if k := nreq.Add(1); k < int64(len(servedOn)) {
					servedOn[k].Store(conn)
				}
				return ecOK("real "+req.URL.Path, ""), ecKeep
			},
			after: func(conn, n int64, c net.Conn) {
				if conn != 1 || n != 1 {
					return
				}
				time.Sleep(100 * time.Millisecond)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")
				close(stray)
			},
		})
		h.swap(nil, backendOf(t, "ns/stray:80", b.addr()))
		c := dialRaw(t, h.addr())
		if res, body := c.roundTrip("GET", get("a", "/one")); res.StatusCode != 200 || body != "real /one" {
			t.Fatalf("first answer %d %q", res.StatusCode, body)
		}
		select {
		case <-stray:
		case <-time.After(testTimeout):
			t.Fatal("the backend did not write its stray bytes")
		}
		if h.fastOn {
			// The fast path peeks every pooled connection before reuse;
			// loopback delivers at once, a little margin for a busy machine.
			time.Sleep(20 * time.Millisecond)
		} else {
			// net/http notices stray bytes only in its connection's read
			// goroutine, and reuses the connection if that runs late: wait
			// until it has dropped it (the backend then reads EOF).
			waitFor(t, "net/http to drop the connection", func() bool { return b.open.Load() == 0 })
		}
		res, body := c.roundTrip("GET", get("a", "/two"))
		if res.StatusCode != 200 || body != "real /two" {
			t.Fatalf("second answer %d %q, want 200 %q: stray bytes were read as an answer", res.StatusCode, body, "real /two")
		}
		if got := servedOn[2].Load(); got != 2 {
			t.Fatalf("the second request reached the backend on connection %d, want a new one (2)", got)
		}
		if got := b.conns.Load(); got != 2 {
			t.Fatalf("backend accepted %d connections, want 2", got)
		}
	})
}

// ecStats is what a soak client saw.
type ecStats struct {
	gets, gets200             int
	posts, posts200, posts502 int
	ikPosts, ikPosts200       int // POSTs with an Idempotency-Key
	ikPosts502                int
	redials                   int
}

func (s *ecStats) add(o ecStats) {
	s.gets += o.gets
	s.gets200 += o.gets200
	s.posts += o.posts
	s.posts200 += o.posts200
	s.posts502 += o.posts502
	s.ikPosts += o.ikPosts
	s.ikPosts200 += o.ikPosts200
	s.ikPosts502 += o.ikPosts502
	s.redials += o.redials
}

const (
	ecClients     = 8
	ecRequests    = 200             // per client connection at most
	ecSoakFor     = 2 * time.Second // and for at most so long
	ecRequestWait = 5 * time.Second // a request taking longer hangs
)

// ecSoakHosts are the soak's backends, by Host (the index is the backend's).
var ecSoakHosts = []string{"idle.example", "nth.example", "cc.example", "rst.example"}

// ecSoakClient sends up to ecRequests requests on one keep-alive
// connection (a new one when the proxy closes it), rotating over the
// backends: GETs, POSTs and POSTs with an Idempotency-Key, with short
// pauses now and then so that pooled connections sit idle for about as
// long as the backends' idle timeouts.
func ecSoakClient(addr string, id int, until time.Time) (ecStats, []string) {
	var st ecStats
	var errs []string
	fail := func(format string, a ...any) {
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf("client %d: ", id)+fmt.Sprintf(format, a...))
		}
	}
	rnd := rand.New(rand.NewPCG(uint64(id), 42))
	var nc net.Conn
	var br *bufio.Reader
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	for i := 0; i < ecRequests && time.Now().Before(until) && len(errs) == 0; i++ {
		if nc == nil {
			c, err := net.DialTimeout("tcp", addr, ecRequestWait)
			if err != nil {
				fail("dial: %v", err)
				return st, errs
			}
			nc, br = c, bufio.NewReader(c)
			st.redials++
		}
		host := ecSoakHosts[(id+i)%len(ecSoakHosts)]
		uri := fmt.Sprintf("/c%d/r%d", id, i)
		method, reqBody, extra := "GET", "", ""
		switch i % 6 {
		case 2, 4:
			method, reqBody = "POST", fmt.Sprintf("post-%d-%d", id, i)
		case 5:
			method, reqBody = "POST", fmt.Sprintf("ik-%d-%d", id, i)
			extra = fmt.Sprintf("Idempotency-Key: k-%d-%d\r\n", id, i)
		}
		raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%s", method, uri, host, extra)
		if method == "POST" {
			raw += fmt.Sprintf("Content-Type: text/plain\r\nContent-Length: %d\r\n", len(reqBody))
		}
		raw += "\r\n" + reqBody
		_ = nc.SetDeadline(time.Now().Add(ecRequestWait))
		if _, err := io.WriteString(nc, raw); err != nil {
			fail("%s %s %s: write: %v", method, host, uri, err)
			return st, errs
		}
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			fail("%s %s %s: no answer (hang or close): %v", method, host, uri, err)
			return st, errs
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			fail("%s %s %s: body: %v", method, host, uri, err)
			return st, errs
		}
		want := ecBody(strings.TrimSuffix(host, ".example"), method, uri, reqBody)
		okAnswer := res.StatusCode == 200 && string(got) == want
		switch {
		case method == "GET":
			st.gets++
			if !okAnswer {
				fail("GET %s %s: %d %q, want 200 %q", host, uri, res.StatusCode, got, want)
			} else {
				st.gets200++
			}
		default:
			// A POST may fail with a 502; its counts are by whether it had
			// an Idempotency-Key.
			kind, n, n200, n502 := "POST", &st.posts, &st.posts200, &st.posts502
			if extra != "" {
				kind, n, n200, n502 = "POST (Idempotency-Key)", &st.ikPosts, &st.ikPosts200, &st.ikPosts502
			}
			*n++
			switch {
			case okAnswer:
				*n200++
			case res.StatusCode == 502:
				*n502++
			default:
				fail("%s %s %s: %d %q, want 200 %q or a 502", kind, host, uri, res.StatusCode, got, want)
			}
		}
		if res.Close {
			nc.Close()
			nc = nil
		}
		if i%2 == 1 {
			time.Sleep(time.Duration(rnd.IntN(20)) * time.Millisecond)
		}
	}
	return st, errs
}

// 2. Early-close soak: concurrent keep-alive clients send GETs and small
// POSTs to four backends that drop keep-alive connections early:
//
//   - idle: net/http with a 10 ms IdleTimeout, so pooled connections are
//     closed (FIN) while idle, often just as they are reused;
//   - nth: closes abruptly after every 3rd answer, without Connection: close;
//   - cc: says Connection: close on every 2nd answer, and closes;
//   - rst: resets (SetLinger(0), Close) connections idle for 10 ms, and
//     every 5th connection right after its 2nd answer.
//
// Every GET must get 200 and its own answer; a POST its own 200 answer or a
// 502 (a request that reached a connection the upstream was closing cannot
// be replayed), never a wrong answer or a hang. On the fast path a POST
// with an Idempotency-Key is replayed, so it must never fail either. No
// upstream connection may be left open beyond what the clients' concurrency
// needs.
func TestEarlyCloseSoak(t *testing.T) {
	both(t, harnessOpts{}, func(t *testing.T, h *harness) {
		idle := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, ecBody("idle", r.Method, r.RequestURI, string(body)))
		}))
		idle.Config.IdleTimeout = 10 * time.Millisecond
		var idleOpen, idleConns atomic.Int64
		idle.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				idleConns.Add(1)
				idleOpen.Add(1)
			case http.StateClosed, http.StateHijacked:
				idleOpen.Add(-1)
			}
		}
		idle.Start()
		t.Cleanup(idle.Close)

		nth := ecNewBackend(t, &ecBackend{
			answer: func(conn, n int64, req *http.Request, body string) (string, ecAction) {
				out := ecOK(ecBody("nth", req.Method, req.RequestURI, body), "")
				if n%3 == 0 {
					return out, ecClose
				}
				return out, ecKeep
			},
		})
		cc := ecNewBackend(t, &ecBackend{
			answer: func(conn, n int64, req *http.Request, body string) (string, ecAction) {
				if n%2 == 0 {
					return ecOK(ecBody("cc", req.Method, req.RequestURI, body), "Connection: close\r\n"), ecClose
				}
				return ecOK(ecBody("cc", req.Method, req.RequestURI, body), ""), ecKeep
			},
		})
		rst := ecNewBackend(t, &ecBackend{
			idle:      10 * time.Millisecond,
			idleReset: true,
			answer: func(conn, n int64, req *http.Request, body string) (string, ecAction) {
				out := ecOK(ecBody("rst", req.Method, req.RequestURI, body), "")
				if conn%5 == 0 && n == 2 {
					return out, ecReset
				}
				return out, ecKeep
			},
		})
		h.swap(map[string]int{"idle.example": 0, "nth.example": 1, "cc.example": 2, "rst.example": 3},
			backendOf(t, "ns/idle:80", idle.Listener.Addr().String()),
			backendOf(t, "ns/nth:80", nth.addr()),
			backendOf(t, "ns/cc:80", cc.addr()),
			backendOf(t, "ns/rst:80", rst.addr()))

		start := time.Now()
		until := start.Add(ecSoakFor)
		var (
			mu    sync.Mutex
			total ecStats
			errs  []string
			wg    sync.WaitGroup
		)
		for id := range ecClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, e := ecSoakClient(h.addr(), id, until)
				mu.Lock()
				total.add(st)
				errs = append(errs, e...)
				mu.Unlock()
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(ecSoakFor + 2*ecRequestWait):
			t.Fatal("soak clients did not finish: a request hangs")
		}
		elapsed := time.Since(start)
		for _, e := range errs {
			t.Error(e)
		}
		t.Logf("%v: GET %d/%d ok; POST %d ok, %d 502 of %d; POST with Idempotency-Key %d ok, %d 502 of %d; %d client connections",
			elapsed.Round(time.Millisecond), total.gets200, total.gets, total.posts200, total.posts502, total.posts,
			total.ikPosts200, total.ikPosts502, total.ikPosts, total.redials)
		t.Logf("backend connections: idle %d, nth %d (%d requests), cc %d (%d), rst %d (%d)",
			idleConns.Load(), nth.conns.Load(), nth.reqs.Load(), cc.conns.Load(), cc.reqs.Load(), rst.conns.Load(), rst.reqs.Load())
		if total.gets == 0 || total.posts == 0 || total.ikPosts == 0 {
			t.Fatalf("the soak sent too little: %+v", total)
		}
		if h.fastOn && total.ikPosts502 > 0 {
			t.Errorf("%d POSTs with an Idempotency-Key failed on the fast path; they are replayable", total.ikPosts502)
		}

		// No connection leak: once the clients are done, each backend keeps
		// at most one connection per concurrent request (fast path: one
		// upstream connection per request in flight; net/http's Transport
		// may dial a few more while waiting for an idle one).
		limit := int64(ecClients)
		if !h.fastOn {
			limit = 2 * ecClients
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			open := map[string]int64{"idle": idleOpen.Load(), "nth": nth.open.Load(), "cc": cc.open.Load(), "rst": rst.open.Load()}
			var over []string
			for name, n := range open {
				if n > limit {
					over = append(over, fmt.Sprintf("%s: %d", name, n))
				}
			}
			if len(over) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("upstream connections left open, more than %d: %v", limit, over)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
