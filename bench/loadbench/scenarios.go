package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Load tools.
const (
	toolWrk    = "wrk"
	toolH2load = "h2load"
	toolGen    = "gen" // this program's own generator
)

// scenario is one kind of load.
type scenario struct {
	Name    string
	Desc    string
	Tool    string
	TLS     bool
	Conns   int
	Streams int // h2load -m: concurrent streams per connection
	Body    int // response body size, bytes
	NewConn bool
	Rate    int // fixed rate, req/s (gen rate mode)
}

// Path is the backend path serving the scenario's body size.
func (s scenario) Path() string { return "/" + strconv.Itoa(s.Body) }

// allScenarios in report order.
func allScenarios(rate int) []scenario {
	return []scenario{
		{Name: "ka64-100b", Desc: "HTTP/1.1 keep-alive, 64 conns, 100 B", Tool: toolWrk, Conns: 64, Body: 100},
		{Name: "ka64-10k", Desc: "HTTP/1.1 keep-alive, 64 conns, 10 KiB", Tool: toolWrk, Conns: 64, Body: 10 << 10},
		{Name: "ka256-100b", Desc: "HTTP/1.1 keep-alive, 256 conns, 100 B", Tool: toolWrk, Conns: 256, Body: 100},
		{Name: "ka256-10k", Desc: "HTTP/1.1 keep-alive, 256 conns, 10 KiB", Tool: toolWrk, Conns: 256, Body: 10 << 10},
		{Name: "close-100b", Desc: "new TCP connection per request (Connection: close), 64 concurrent, 100 B", Tool: toolWrk, Conns: 64, Body: 100, NewConn: true},
		{Name: "tls-ka64-100b", Desc: "TLS keep-alive, 64 conns, 100 B", Tool: toolWrk, TLS: true, Conns: 64, Body: 100},
		{Name: "tls-new-100b", Desc: "new TLS connection per request, full handshake (TLS 1.3, X25519, ECDSA P-256), 64 concurrent, 100 B", Tool: toolGen, TLS: true, Conns: 64, Body: 100, NewConn: true},
		{Name: "h2-c64m4-100b", Desc: "HTTP/2 over TLS (h2load), 64 conns x 4 streams, 100 B", Tool: toolH2load, TLS: true, Conns: 64, Streams: 4, Body: 100},
		{Name: fmt.Sprintf("rate%s-100b", shortCount(rate)), Desc: fmt.Sprintf("fixed rate %d req/s, open loop, 64 keep-alive conns, 100 B", rate), Tool: toolGen, Conns: 64, Body: 100, Rate: rate},
	}
}

// shortCount renders 5000 as "5k", 2500 as "2500".
func shortCount(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// selectScenarios picks scenarios by comma-separated names ("all" or empty
// for every one).
func selectScenarios(list string, rate int) ([]scenario, error) {
	all := allScenarios(rate)
	if list == "" || list == "all" {
		return all, nil
	}
	byName := map[string]scenario{}
	var names []string
	for _, s := range all {
		byName[s.Name] = s
		names = append(names, s.Name)
	}
	var out []scenario
	seen := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		s, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q (have %s)", n, strings.Join(names, ", "))
		}
		seen[n] = true
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("no scenario selected")
	}
	return out, nil
}

// loadResult is what a load tool measured.
type loadResult struct {
	Requests  int64
	DurationS float64
	RPS       float64
	P50us     float64
	P90us     float64
	P99us     float64
	P999us    float64
	MaxUs     float64
	Errors    int64 // connect/read/write/timeouts
	Non2xx    int64
	Extra     map[string]any
}

// wrkLua makes wrk print its summary and exact latency percentiles as one
// JSON line (only done() is defined, so wrk's fast static request path is
// kept).
const wrkLua = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "LOADBENCH {\"duration_us\":%.0f,\"requests\":%.0f,\"bytes\":%.0f,\"connect_errors\":%.0f,\"read_errors\":%.0f,\"write_errors\":%.0f,\"status_errors\":%.0f,\"timeouts\":%.0f,\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"p999_us\":%.0f,\"max_us\":%.0f,\"mean_us\":%.2f}\n",
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
`

// wrkJSON is the line wrkLua prints.
type wrkJSON struct {
	DurationUs    float64 `json:"duration_us"`
	Requests      int64   `json:"requests"`
	Bytes         int64   `json:"bytes"`
	ConnectErrors int64   `json:"connect_errors"`
	ReadErrors    int64   `json:"read_errors"`
	WriteErrors   int64   `json:"write_errors"`
	StatusErrors  int64   `json:"status_errors"`
	Timeouts      int64   `json:"timeouts"`
	P50us         float64 `json:"p50_us"`
	P90us         float64 `json:"p90_us"`
	P99us         float64 `json:"p99_us"`
	P999us        float64 `json:"p999_us"`
	MaxUs         float64 `json:"max_us"`
	MeanUs        float64 `json:"mean_us"`
}

// parseWrk reads wrk's output: the LOADBENCH JSON line when present (exact
// figures), else wrk's own text (--latency).
func parseWrk(out string) (loadResult, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "LOADBENCH ")
		if !ok {
			continue
		}
		var w wrkJSON
		if err := json.Unmarshal([]byte(rest), &w); err != nil {
			return loadResult{}, fmt.Errorf("wrk summary line: %w", err)
		}
		if w.DurationUs <= 0 {
			return loadResult{}, errors.New("wrk summary: zero duration")
		}
		d := w.DurationUs / 1e6
		return loadResult{
			Requests: w.Requests, DurationS: d, RPS: float64(w.Requests) / d,
			P50us: w.P50us, P90us: w.P90us, P99us: w.P99us, P999us: w.P999us, MaxUs: w.MaxUs,
			Errors: w.ConnectErrors + w.ReadErrors + w.WriteErrors + w.Timeouts,
			Non2xx: w.StatusErrors,
			Extra: map[string]any{
				"connect_errors": w.ConnectErrors, "read_errors": w.ReadErrors,
				"write_errors": w.WriteErrors, "timeouts": w.Timeouts, "bytes": w.Bytes,
			},
		}, nil
	}
	return parseWrkText(out)
}

var (
	reWrkTotal   = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m|h),`)
	reWrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reWrkPct     = regexp.MustCompile(`^\s*(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	reWrkSocket  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reWrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reWrkLatency = regexp.MustCompile(`^\s*Latency\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s|m|h)`)
)

// parseWrkText parses wrk --latency text output (no p99.9 there).
func parseWrkText(out string) (loadResult, error) {
	var r loadResult
	var haveTotal, haveRPS bool
	for _, line := range strings.Split(out, "\n") {
		if m := reWrkTotal.FindStringSubmatch(line); m != nil {
			r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
			r.DurationS = toMicros(m[2], m[3]) / 1e6
			haveTotal = true
		}
		if m := reWrkRPS.FindStringSubmatch(line); m != nil {
			r.RPS, _ = strconv.ParseFloat(m[1], 64)
			haveRPS = true
		}
		if m := reWrkPct.FindStringSubmatch(line); m != nil {
			v := toMicros(m[2], m[3])
			switch m[1] {
			case "50":
				r.P50us = v
			case "90":
				r.P90us = v
			case "99":
				r.P99us = v
			}
		}
		if m := reWrkLatency.FindStringSubmatch(line); m != nil {
			r.MaxUs = toMicros(m[1], m[2])
		}
		if m := reWrkSocket.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				r.Errors += n
			}
		}
		if m := reWrkNon2xx.FindStringSubmatch(line); m != nil {
			r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	if !haveTotal || !haveRPS {
		return r, errors.New("wrk output has no request total or Requests/sec line")
	}
	return r, nil
}

// toMicros converts a wrk-formatted time ("512.00us", "1.20ms", "2.00s").
func toMicros(num, unit string) float64 {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0
	}
	switch unit {
	case "us":
		return v
	case "ms":
		return v * 1e3
	case "s":
		return v * 1e6
	case "m":
		return v * 60e6
	case "h":
		return v * 3600e6
	}
	return 0
}

var (
	reH2Finished = regexp.MustCompile(`finished in ([0-9.]+)(us|ms|s|m|h), ([0-9.]+) req/s`)
	reH2Requests = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	reH2Status   = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	reH2Proto    = regexp.MustCompile(`Application protocol: (\S+)`)
)

// parseH2load parses h2load's summary. Latency percentiles are not in it;
// they come from the per-request log (parseH2loadLog).
func parseH2load(out string) (loadResult, string, error) {
	var r loadResult
	var proto string
	var haveFin, haveReq bool
	for _, line := range strings.Split(out, "\n") {
		if m := reH2Finished.FindStringSubmatch(line); m != nil {
			r.DurationS = toMicros(m[1], m[2]) / 1e6
			r.RPS, _ = strconv.ParseFloat(m[3], 64)
			haveFin = true
		}
		if m := reH2Requests.FindStringSubmatch(line); m != nil {
			var v [7]int64
			for i := range v {
				v[i], _ = strconv.ParseInt(m[i+1], 10, 64)
			}
			r.Requests = v[2]      // done
			r.Errors = v[5] + v[6] // errored + timeout
			r.Extra = map[string]any{"total": v[0], "started": v[1], "succeeded": v[3], "failed": v[4], "errored": v[5], "timeout": v[6]}
			haveReq = true
		}
		if m := reH2Status.FindStringSubmatch(line); m != nil {
			for _, s := range m[2:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				r.Non2xx += n
			}
		}
		if m := reH2Proto.FindStringSubmatch(line); m != nil {
			proto = m[1]
		}
	}
	if !haveFin || !haveReq {
		return r, proto, errors.New("h2load output has no 'finished in' or 'requests:' line")
	}
	return r, proto, nil
}

// parseH2loadLog reads h2load --log-file lines (start time µs since epoch,
// status, request time µs, tab separated) and returns the request times,
// sorted, in µs.
func parseH2loadLog(r io.Reader) ([]float64, error) {
	var out []float64
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(strings.TrimSpace(sc.Text()), "\t")
		if len(f) < 3 {
			continue
		}
		v, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, fmt.Errorf("h2load log line %q: %w", sc.Text(), err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Float64s(out)
	return out, nil
}

// percentileSorted is the nearest-rank percentile of sorted values (0 when
// there are none).
func percentileSorted(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps 99.9% of 1000 at rank 999 despite float rounding.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}
