package main

import (
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
)

// Real wrk 4.1.0 output with the LOADBENCH line of wrkLua.
const wrkOutJSON = `Running 2s test @ http://127.0.0.1:33615/100
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.18ms    7.29ms  71.68ms   96.23%
    Req/Sec    20.59k     3.23k   26.01k    60.00%
  Latency Distribution
     50%    2.51ms
     75%    3.77ms
     90%    5.85ms
     99%   49.40ms
  42390 requests in 2.09s, 10.35MB read
Requests/sec:  20239.45
Transfer/sec:      4.94MB
LOADBENCH {"duration_us":2094424,"requests":42390,"bytes":10851840,"connect_errors":1,"read_errors":2,"write_errors":3,"status_errors":7,"timeouts":4,"p50_us":2506,"p90_us":5852,"p99_us":49396,"p999_us":71189,"max_us":71680,"mean_us":4177.35}
`

// wrk --latency text without the Lua hook, with errors and non-2xx.
const wrkOutText = `Running 10s test @ https://127.0.0.1:8443/100
  1 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.50us  120.45us    1.05s    80.12%
    Req/Sec    60.12k     2.31k   65.00k    70.00%
  Latency Distribution
     50%  500.00us
     75%  600.00us
     90%  700.00us
     99%    1.20ms
  598234 requests in 10.00s, 80.12MB read
  Socket errors: connect 0, read 5, write 0, timeout 2
  Non-2xx or 3xx responses: 12
Requests/sec:  59823.40
Transfer/sec:      8.01MB
`

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestParseWrkJSON(t *testing.T) {
	r, err := parseWrk(wrkOutJSON)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 42390 || !near(r.DurationS, 2.094424) {
		t.Errorf("requests %d duration %v", r.Requests, r.DurationS)
	}
	if !near(r.RPS, 42390/2.094424) {
		t.Errorf("rps %v", r.RPS)
	}
	if r.P50us != 2506 || r.P90us != 5852 || r.P99us != 49396 || r.P999us != 71189 || r.MaxUs != 71680 {
		t.Errorf("percentiles %+v", r)
	}
	if r.Errors != 1+2+3+4 || r.Non2xx != 7 {
		t.Errorf("errors %d non2xx %d", r.Errors, r.Non2xx)
	}
}

func TestParseWrkText(t *testing.T) {
	r, err := parseWrk(wrkOutText) // no LOADBENCH line: falls back to the text
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 598234 || r.DurationS != 10 || r.RPS != 59823.40 {
		t.Errorf("totals %+v", r)
	}
	if r.P50us != 500 || r.P90us != 700 || r.P99us != 1200 || r.P999us != 0 {
		t.Errorf("percentiles p50 %v p90 %v p99 %v p99.9 %v", r.P50us, r.P90us, r.P99us, r.P999us)
	}
	if r.MaxUs != 1.05e6 {
		t.Errorf("max %v", r.MaxUs)
	}
	if r.Errors != 7 || r.Non2xx != 12 {
		t.Errorf("errors %d non2xx %d", r.Errors, r.Non2xx)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("no error for output without results")
	}
	if _, err := parseWrk("LOADBENCH {not json\n"); err == nil {
		t.Error("no error for a broken summary line")
	}
}

func TestToMicros(t *testing.T) {
	for _, c := range []struct {
		num, unit string
		want      float64
	}{{"512.00", "us", 512}, {"1.20", "ms", 1200}, {"2.5", "s", 2.5e6}, {"1", "m", 60e6}, {"x", "ms", 0}, {"1", "ns", 0}} {
		if got := toMicros(c.num, c.unit); got != c.want {
			t.Errorf("toMicros(%s%s) = %v, want %v", c.num, c.unit, got, c.want)
		}
	}
}

const h2loadOut = `starting benchmark...
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
Main benchmark duration is over for thread #0. Stopping all clients.

finished in 2.01s, 11305.50 req/s, 1.86MB/s
requests: 22611 total, 22867 started, 22611 done, 22600 succeeded, 11 failed, 3 errored, 2 timeout
status codes: 22590 2xx, 1 3xx, 4 4xx, 5 5xx
traffic: 3.71MB (3892228) total, 1.16MB (1220994) headers (space savings 49.53%), 2.16MB (2261100) data
`

func TestParseH2load(t *testing.T) {
	r, proto, err := parseH2load(h2loadOut)
	if err != nil {
		t.Fatal(err)
	}
	if proto != "h2" {
		t.Errorf("proto %q", proto)
	}
	if r.Requests != 22611 || r.DurationS != 2.01 || r.RPS != 11305.50 {
		t.Errorf("totals %+v", r)
	}
	if r.Errors != 5 || r.Non2xx != 10 {
		t.Errorf("errors %d non2xx %d", r.Errors, r.Non2xx)
	}
	if _, _, err := parseH2load("starting benchmark...\n"); err == nil {
		t.Error("no error for output without results")
	}
}

func TestParseH2loadLog(t *testing.T) {
	log := "1763765000000000\t200\t900\n1763765000000100\t200\t100\n\n1763765000000200\t503\t500\n"
	v, err := parseH2loadLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 3 || v[0] != 100 || v[1] != 500 || v[2] != 900 {
		t.Errorf("got %v", v)
	}
	if _, err := parseH2loadLog(strings.NewReader("1\t200\tabc\n")); err == nil {
		t.Error("no error for a bad line")
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 300 0 0 0 1234 567 0 0 20 0 1 0 1000 12345678 900 18446744073709551615\n"
	s, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{PID: 4242, Comm: "nginx: worker (x)", PPID: 4241, PGRP: 4241, UTime: 1234, STime: 567}
	if s != want {
		t.Errorf("got %+v, want %+v", s, want)
	}
	for _, bad := range []string{"", "12 nginx S 1 1", "12 (nginx) S 1 1 1", "x (a) S 1 1 1 0 -1 0 0 0 0 0 1 2"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("no error for %q", bad)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\thaproxy\nVmPeak:\t  100000 kB\nVmHWM:\t   21504 kB\nVmRSS:\t   20000 kB\n"
	kb, err := parseVmHWM(status)
	if err != nil || kb != 21504 {
		t.Errorf("got %d, %v", kb, err)
	}
	if _, err := parseVmHWM("Name:\tx\n"); err == nil {
		t.Error("no error without VmHWM")
	}
}

func TestProcStatCPUs(t *testing.T) {
	before, err := parseProcStatCPUs("cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 100 5 50 1000 10 1 2 0 0 0\ncpu1 200 0 100 900 0 0 0 0 0 0\nintr 1 2 3\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 || before[0].User != 100 || before[0].Nice != 5 || before[0].SoftIRQ != 2 || before[1].Idle != 900 {
		t.Fatalf("parsed %+v", before)
	}
	// CPU 1 over 100 ticks: 80 running tasks, of which 30 ours.
	after := before[1]
	after.User += 60
	after.System += 20
	after.Idle += 20
	if got := otherLoadPct(before[1], after, 30); !near(got, 50) {
		t.Errorf("other load %v, want 50", got)
	}
	if got := otherLoadPct(before[1], after, 500); got != 0 {
		t.Errorf("other load with more ticks than the CPU ran: %v", got)
	}
	if got := otherLoadPct(before[1], before[1], 0); got != 0 {
		t.Errorf("other load over no time: %v", got)
	}
	if _, err := parseProcStatCPUs("intr 1\n"); err == nil {
		t.Error("no error without cpu lines")
	}
}

func TestMedianSpreadPercentile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("odd median %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("even median %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("empty median %v", m)
	}
	in := []float64{5, 1, 9}
	median(in)
	if in[0] != 5 {
		t.Error("median sorted its input")
	}
	lo, hi := spread([]float64{5, 1, 9, 3})
	if lo != 1 || hi != 9 {
		t.Errorf("spread %v–%v", lo, hi)
	}
	sorted := make([]float64, 1000)
	for i := range sorted {
		sorted[i] = float64(i + 1)
	}
	for p, want := range map[float64]float64{50: 500, 99: 990, 99.9: 999, 100: 1000, 0: 1} {
		if got := percentileSorted(sorted, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if percentileSorted(nil, 50) != 0 {
		t.Error("percentile of nothing")
	}
}

func TestSummarizeAndTable(t *testing.T) {
	run := func(px string, round int, rps, p99, cpu float64, rssKiB int64) runResult {
		return runResult{Type: "run", Scenario: "ka64-100b", Proxy: px, Round: round, RPS: rps, Requests: int64(rps) * 10,
			P50us: 400, P99us: p99, P999us: 2 * p99, ProxyCPUPerReqUs: cpu, ProxyPeakRSSKiB: rssKiB, GenCPUPct: 30, CPU1OtherPct: float64(round)}
	}
	runs := []runResult{
		run("nginx", 1, 20000, 1000, 20, 20480), run("nginx", 2, 22000, 1200, 22, 20480), run("nginx", 3, 21000, 1100, 21, 20480),
		run("torii", 1, 10000, 3000, 60, 40960), run("torii", 2, 12000, 2000, 70, 40960), run("torii", 3, 11000, 2500, 40, 40960),
		run("direct", 1, 50000, 500, 0, 0),
		{Scenario: "ka64-100b", Proxy: "haproxy", Round: 1, Error: "haproxy not ready"},
	}
	runs[4].Errors, runs[4].Non2xx = 2, 5
	runs[6].GenCPUPct = 97 // direct: generator-bound
	rows := summarize(runs, []string{"ka64-100b"}, []string{"direct", "nginx", "haproxy", "torii"})
	if len(rows) != 4 {
		t.Fatalf("%d rows", len(rows))
	}
	d, ng, hp, to := rows[0], rows[1], rows[2], rows[3]
	if ng.RPS != 21000 || ng.RPSMin != 20000 || ng.RPSMax != 22000 || ng.P99us != 1100 || ng.ProxyCPUPerReqUs != 21 || ng.PeakRSSMiB != 20 {
		t.Errorf("nginx row %+v", ng)
	}
	if to.RPS != 11000 || to.P99us != 2500 || to.ProxyCPUPerReqUs != 60 || to.Errors != 2 || to.Non2xx != 5 || to.OtherLoadPct != 3 {
		t.Errorf("torii row %+v", to)
	}
	if !near(to.RatioRPS, 11000.0/21000) || !near(to.RatioP99, 2500.0/1100) || !near(to.RatioCPU, 60.0/21) || !near(to.RatioRSS, 2) {
		t.Errorf("torii ratios %+v", to)
	}
	if ng.RatioRPS != 1 || !near(d.RatioRPS, 50000.0/21000) || d.RatioCPU != 0 {
		t.Errorf("ratios nginx %v direct %v/%v", ng.RatioRPS, d.RatioRPS, d.RatioCPU)
	}
	if hp.Runs != 0 || hp.FailedRuns != 1 {
		t.Errorf("haproxy row %+v", hp)
	}

	table := renderTable(rows, map[string]string{"ka64-100b": "keep-alive"})
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if !strings.HasPrefix(lines[0], "| scenario | proxy | req/s median (min–max) |") || !strings.HasPrefix(lines[1], "|---|") {
		t.Errorf("header %q %q", lines[0], lines[1])
	}
	cols := func(line string) []string {
		f := strings.Split(strings.Trim(line, "|"), "|")
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		return f
	}
	header := cols(lines[0])
	for i, l := range lines[2:6] {
		if n := len(cols(l)); n != len(header) {
			t.Errorf("row %d has %d columns, header %d: %q", i, n, len(header), l)
		}
	}
	want := []string{"ka64-100b", "torii", "11000 (10000–12000)", "0.52", "0.400", "2.500", "5.000", "2.27", "60.0", "2.86", "40.0", "2.00", "2 / 5", "30", "3"}
	if got := cols(lines[5]); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("torii row\n got %q\nwant %q", got, want)
	}
	if got := cols(lines[2]); got[2] != "50000 (50000–50000) ‡" || got[8] != "—" || got[10] != "—" || got[3] != "2.38" {
		t.Errorf("direct row %q", got)
	}
	if !strings.Contains(lines[4], "failed (1 runs)") {
		t.Errorf("haproxy row %q", lines[4])
	}
	if !strings.Contains(table, "- `ka64-100b`: keep-alive") {
		t.Error("no scenario legend")
	}
}

func TestFmtMs(t *testing.T) {
	for us, want := range map[float64]string{0: "—", 412: "0.412", 12345: "12.35", 123456: "123.5"} {
		if got := fmtMs(us); got != want {
			t.Errorf("fmtMs(%v) = %q, want %q", us, got, want)
		}
	}
}

func TestRotate(t *testing.T) {
	p := []string{"direct", "nginx", "haproxy", "torii"}
	if got := strings.Join(rotate(p, 1), ","); got != "nginx,haproxy,torii,direct" {
		t.Errorf("rotate 1: %s", got)
	}
	if got := strings.Join(rotate(p, 5), ","); got != "nginx,haproxy,torii,direct" {
		t.Errorf("rotate 5: %s", got)
	}
	if got := strings.Join(p, ","); got != "direct,nginx,haproxy,torii" {
		t.Errorf("input changed: %s", got)
	}
}

func TestSelect(t *testing.T) {
	all, err := selectScenarios("", 5000)
	if err != nil || len(all) != 9 {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	s, err := selectScenarios("rate2500-100b, ka64-10k,ka64-10k", 2500)
	if err != nil || len(s) != 2 || s[0].Rate != 2500 || s[1].Body != 10240 || s[1].Path() != "/10240" {
		t.Errorf("got %+v, %v", s, err)
	}
	if _, err := selectScenarios("nope", 5000); err == nil {
		t.Error("unknown scenario accepted")
	}
	if _, err := selectProxies("nginx,envoy"); err == nil {
		t.Error("unknown proxy accepted")
	}
	if p, err := selectProxies("torii, nginx,torii"); err != nil || strings.Join(p, ",") != "torii,nginx" {
		t.Errorf("proxies %v, %v", p, err)
	}
}

func TestGeneratedConfigs(t *testing.T) {
	cert := &certFiles{CertPath: "/c.pem", KeyPath: "/k.pem", BundlePath: "/b.pem"}
	ep := endpoints{HTTP: "127.0.0.1:1001", HTTPS: "127.0.0.1:1002"}
	ng := nginxConf("/d", ep, "127.0.0.1:9000", cert)
	for _, want := range []string{"worker_processes 1;", "access_log off;", "keepalive 256;", "server 127.0.0.1:9000;",
		"listen 127.0.0.1:1001 ", "listen 127.0.0.1:1002 ssl http2", "proxy_http_version 1.1;", `proxy_set_header Connection "";`,
		"ssl_certificate /c.pem;", "keepalive_requests 1000000;"} {
		if !strings.Contains(ng, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	hp := haproxyCfg(ep, "127.0.0.1:9000", cert)
	for _, want := range []string{"nbthread 1", "http-reuse always", "bind 127.0.0.1:1001\n", "bind 127.0.0.1:1002 ssl crt /b.pem alpn h2,http/1.1", "server s1 127.0.0.1:9000"} {
		if !strings.Contains(hp, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	if strings.Contains(hp, "\n    log ") || strings.Contains(hp, "httplog") {
		t.Error("haproxy.cfg logs requests")
	}
}

func TestBackendHandler(t *testing.T) {
	h := backendHandler(bodySizes)
	for _, c := range []struct {
		path   string
		status int
		size   int
	}{{"/100", 200, 100}, {"/10240", 200, 10240}, {"/7", 404, -1}} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != c.status || (c.size >= 0 && len(body) != c.size) {
			t.Errorf("%s: status %d, %d bytes", c.path, rec.Code, len(body))
		}
		if c.size >= 0 && rec.Header().Get("Content-Length") != strings.TrimPrefix(c.path, "/") {
			t.Errorf("%s: Content-Length %q", c.path, rec.Header().Get("Content-Length"))
		}
	}
}
