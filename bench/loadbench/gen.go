package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// genResult is what "loadbench gen" prints (one JSON object on stdout).
type genResult struct {
	Mode      string  `json:"mode"`
	Requests  int64   `json:"requests"` // completed responses
	Errors    int64   `json:"errors"`   // dial, handshake, read or write failures
	Non2xx    int64   `json:"non2xx"`
	Dropped   int64   `json:"dropped"` // rate mode: issued but never sent (>1s past the end)
	Resumed   int64   `json:"resumed"` // TLS handshakes that resumed a session (must be 0)
	DurationS float64 `json:"duration_s"`
	P50us     float64 `json:"p50_us"`
	P90us     float64 `json:"p90_us"`
	P99us     float64 `json:"p99_us"`
	P999us    float64 `json:"p999_us"`
	MaxUs     float64 `json:"max_us"`
	MeanUs    float64 `json:"mean_us"`
	// Rate mode: how late the scheduler issued requests relative to their
	// ideal due time (timer granularity; not part of the latency).
	IssueLagP50us float64 `json:"issue_lag_p50_us,omitempty"`
	IssueLagP99us float64 `json:"issue_lag_p99_us,omitempty"`
	FirstError    string  `json:"first_error,omitempty"`
}

// genConfig drives one generator run.
type genConfig struct {
	Mode     string // "newconn" or "rate"
	Addr     string
	TLS      bool
	Path     string
	Conns    int
	Duration time.Duration
	Rate     int
}

// genMain is "loadbench gen": the generator for the scenarios wrk and h2load
// cannot do (full TLS handshakes per request, open-loop fixed rate).
func genMain(args []string) error {
	fs := flag.NewFlagSet("loadbench gen", flag.ContinueOnError)
	var c genConfig
	fs.StringVar(&c.Mode, "mode", "newconn", "newconn (a new connection per request, closed loop) or rate (open loop, keep-alive)")
	fs.StringVar(&c.Addr, "addr", "", "host:port")
	fs.BoolVar(&c.TLS, "tls", false, "use TLS")
	fs.StringVar(&c.Path, "path", "/100", "request path")
	fs.IntVar(&c.Conns, "conns", 64, "concurrent connections")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "run time")
	fs.IntVar(&c.Rate, "rate", 5000, "requests per second (rate mode)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.Addr == "" || c.Conns < 1 || c.Duration <= 0 || c.Duration > time.Hour {
		return errors.New("gen: need -addr, -conns >= 1 and 0 < -duration <= 1h")
	}
	var res genResult
	switch c.Mode {
	case "newconn":
		res = runNewConn(c)
	case "rate":
		if c.Rate < 1 {
			return errors.New("gen: -rate must be >= 1")
		}
		res = runRate(c)
	default:
		return fmt.Errorf("gen: unknown mode %q", c.Mode)
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// clientTLS never resumes (no session cache) and offers X25519 only, like
// the OpenSSL 3.0 clients (wrk, h2load) used for the other TLS scenarios.
func clientTLS() *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // the certificate is checked once at readiness
		ServerName:         benchHost,
		NextProtos:         []string{"http/1.1"},
		CurvePreferences:   []tls.CurveID{tls.X25519},
		MinVersion:         tls.VersionTLS12,
	}
}

// counters is shared by the workers of one run.
type counters struct {
	requests, errors, non2xx, dropped, resumed atomic.Int64
	mu                                         sync.Mutex
	firstErr                                   string
}

func (c *counters) fail(err error) {
	c.errors.Add(1)
	c.mu.Lock()
	if c.firstErr == "" {
		c.firstErr = err.Error()
	}
	c.mu.Unlock()
}

func requestBytes(c genConfig, close bool) []byte {
	s := "GET " + c.Path + " HTTP/1.1\r\nHost: " + c.Addr + "\r\nUser-Agent: loadbench\r\n"
	if close {
		s += "Connection: close\r\n"
	}
	return []byte(s + "\r\n")
}

// runNewConn: Conns workers, each in a loop: connect (and handshake), one
// request with Connection: close, read the response, wait for the server to
// close, close. Latency is connect start to end of response.
func runNewConn(c genConfig) genResult {
	req := requestBytes(c, true)
	cfg := clientTLS()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	var cnt counters
	lats := make([][]time.Duration, c.Conns)
	start := time.Now()
	deadline := start.Add(c.Duration)
	var wg sync.WaitGroup
	for w := 0; w < c.Conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			br := bufio.NewReaderSize(nil, 16<<10)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				status, resumed, err := oneNewConn(dialer, cfg, c, req, br, t0)
				if err != nil {
					cnt.fail(err)
					time.Sleep(time.Millisecond) // no hot loop against a dead listener
					continue
				}
				lats[w] = append(lats[w], time.Since(t0))
				cnt.requests.Add(1)
				if status/100 != 2 {
					cnt.non2xx.Add(1)
				}
				if resumed {
					cnt.resumed.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	return finish("newconn", &cnt, lats, time.Since(start), nil)
}

func oneNewConn(dialer *net.Dialer, cfg *tls.Config, c genConfig, req []byte, br *bufio.Reader, t0 time.Time) (status int, resumed bool, err error) {
	raw, err := dialer.Dial("tcp", c.Addr)
	if err != nil {
		return 0, false, err
	}
	conn := raw
	defer func() { conn.Close() }()
	_ = raw.SetDeadline(t0.Add(10 * time.Second))
	if c.TLS {
		tc := tls.Client(raw, cfg)
		if err := tc.Handshake(); err != nil {
			return 0, false, err
		}
		resumed = tc.ConnectionState().DidResume
		conn = tc
	}
	if _, err := conn.Write(req); err != nil {
		return 0, resumed, err
	}
	br.Reset(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, resumed, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, resumed, err
	}
	// Let the server close first (its side keeps the TIME_WAIT, as with a
	// real client), bounded.
	_ = raw.SetReadDeadline(time.Now().Add(time.Second))
	_, _ = io.Copy(io.Discard, br)
	return resp.StatusCode, resumed, nil
}

// rateItem is one issued request of the open-loop scheduler.
type rateItem struct{ issued time.Time }

// runRate is an open-loop generator: request i is due at start + i/rate.
// A dispatcher sleeps until the next due time and then issues every request
// that is due, stamping the issue time; workers (one keep-alive connection
// each) take issued requests from an unbounded-enough queue. Latency runs
// from the issue time to the end of the response, so requests that wait
// for a free connection behind a slow response are charged for the wait.
// Go timers wake up with ~1 ms granularity, so requests are issued in small
// bursts (rate/1000 per tick); the lag between due and issue time is
// reported separately and not counted as latency.
func runRate(c genConfig) genResult {
	req := requestBytes(c, false)
	var cnt counters
	queue := make(chan rateItem, c.Rate*4+1024)
	lats := make([][]time.Duration, c.Conns)
	interval := float64(time.Second) / float64(c.Rate)
	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(c.Duration)
	var wg sync.WaitGroup
	for w := 0; w < c.Conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for it := range queue {
				if time.Since(end) > time.Second {
					cnt.dropped.Add(1)
					continue
				}
				if conn == nil {
					var err error
					if conn, err = dialKeepAlive(c); err != nil {
						conn = nil
						cnt.fail(err)
						continue
					}
					br = bufio.NewReaderSize(conn, 32<<10)
				}
				status, err := keepAliveRequest(conn, br, req)
				if err != nil {
					cnt.fail(err)
					conn.Close()
					conn = nil
					continue
				}
				lats[w] = append(lats[w], time.Since(it.issued))
				cnt.requests.Add(1)
				if status/100 != 2 {
					cnt.non2xx.Add(1)
				}
			}
		}(w)
	}
	var lags []time.Duration
	for i := 0; ; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		lags = append(lags, now.Sub(due))
		select {
		case queue <- rateItem{issued: now}:
		default:
			cnt.dropped.Add(1) // queue full: the target is far beyond capacity
		}
	}
	close(queue)
	wg.Wait()
	res := finish("rate", &cnt, lats, time.Since(start), lags)
	return res
}

func dialKeepAlive(c genConfig) (net.Conn, error) {
	raw, err := net.DialTimeout("tcp", c.Addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if !c.TLS {
		return raw, nil
	}
	tc := tls.Client(raw, clientTLS())
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}

func keepAliveRequest(conn net.Conn, br *bufio.Reader, req []byte) (int, error) {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(req); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.Close {
		return resp.StatusCode, errors.New("server closed the keep-alive connection")
	}
	return resp.StatusCode, nil
}

func finish(mode string, cnt *counters, perWorker [][]time.Duration, elapsed time.Duration, lags []time.Duration) genResult {
	var all []time.Duration
	for _, l := range perWorker {
		all = append(all, l...)
	}
	us := durationsToMicros(all)
	sort.Float64s(us)
	res := genResult{
		Mode:       mode,
		Requests:   cnt.requests.Load(),
		Errors:     cnt.errors.Load(),
		Non2xx:     cnt.non2xx.Load(),
		Dropped:    cnt.dropped.Load(),
		Resumed:    cnt.resumed.Load(),
		DurationS:  elapsed.Seconds(),
		P50us:      percentileSorted(us, 50),
		P90us:      percentileSorted(us, 90),
		P99us:      percentileSorted(us, 99),
		P999us:     percentileSorted(us, 99.9),
		MaxUs:      percentileSorted(us, 100),
		MeanUs:     mean(us),
		FirstError: cnt.firstErr,
	}
	if len(lags) > 0 {
		l := durationsToMicros(lags)
		sort.Float64s(l)
		res.IssueLagP50us = percentileSorted(l, 50)
		res.IssueLagP99us = percentileSorted(l, 99)
	}
	return res
}

func durationsToMicros(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v) / float64(time.Microsecond)
	}
	return out
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
