package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case "backend":
			err = backendMain(os.Args[2:])
		case "gen":
			err = genMain(os.Args[2:])
		default:
			err = benchMain(os.Args[1:])
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			os.Exit(1)
		}
		return
	}
	if err := benchMain(nil); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

// options are the command-line flags of a benchmark run.
type options struct {
	duration  time.Duration
	warmup    time.Duration
	rounds    int
	scenarios string
	proxies   string
	out       string
	jsonPath  string
	rate      int
	timeout   time.Duration
	noBuild   bool
	quick     bool
}

func benchMain(args []string) error {
	var o options
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time per run (whole seconds for wrk and h2load)")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before every run (same load)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds (every scenario x proxy once per round, proxy order rotated)")
	fs.StringVar(&o.scenarios, "scenarios", "all", "comma-separated scenarios: "+scenarioNames())
	fs.StringVar(&o.proxies, "proxies", strings.Join(knownProxies, ","), "comma-separated proxies: direct,nginx,haproxy,torii (default set), torii-nethttp (Torii with --http1-fast-path=false)")
	fs.StringVar(&o.out, "out", "", "directory for raw results (default bench/out/<UTC time>)")
	fs.StringVar(&o.jsonPath, "json", "", "JSON lines file, one per run and per summary row (default OUT/results.jsonl)")
	fs.IntVar(&o.rate, "rate", 5000, "request rate of the fixed-rate scenario, req/s")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Hour, "abort the whole benchmark after this long")
	fs.BoolVar(&o.noBuild, "no-build", false, "use the existing bin/torii instead of building it")
	fs.BoolVar(&o.quick, "quick", false, "smoke test: same as -duration 2s -rounds 1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.quick {
		o.duration, o.rounds = 2*time.Second, 1
	}
	if o.duration < time.Second || o.duration > time.Hour || o.rounds < 1 || o.rounds > 100 || o.warmup < 0 || o.warmup > time.Minute || o.rate < 1 {
		return errors.New("need 1s <= -duration <= 1h, 1 <= -rounds <= 100, 0 <= -warmup <= 1m, -rate >= 1")
	}
	scens, err := selectScenarios(o.scenarios, o.rate)
	if err != nil {
		return err
	}
	proxies, err := selectProxies(o.proxies)
	if err != nil {
		return err
	}
	if runtime.GOOS != "linux" {
		return errors.New("needs Linux (/proc, taskset)")
	}
	if runtime.NumCPU() < 2 {
		return errors.New("needs at least 2 CPUs (load generator on CPU 0, proxy and backend on CPU 1)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	defer stopAll() // every process we started, whatever happens

	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "%s loadbench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, a...))
	}
	raiseNoFile(logf)

	root, err := repoRoot()
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join(root, "bench", "out", time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if o.jsonPath == "" {
		o.jsonPath = filepath.Join(o.out, "results.jsonl")
	}
	workDir, err := os.MkdirTemp("", "loadbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(workDir)
	logf("raw results in %s", o.out)

	paths, err := ensureTools(ctx, neededTools(scens, proxies), logf)
	if err != nil {
		return err
	}
	e := &env{paths: paths, workDir: workDir, cpuProxy: "1", cpuLoad: "0"}
	if e.self, err = os.Executable(); err != nil {
		return err
	}
	if contains(proxies, proxyTorii) || contains(proxies, proxyToriiNetHTTP) {
		if o.noBuild {
			e.torii = filepath.Join(root, "bin", "torii")
		} else {
			logf("building bin/torii")
			if e.torii, err = buildTorii(ctx, root, logf); err != nil {
				return err
			}
		}
	}
	if e.cert, err = makeCert(workDir); err != nil {
		return err
	}
	versions := toolVersions(ctx, paths, e.torii)
	for _, v := range versions {
		logf("%s", v)
	}

	backend, err := e.startBackend(ctx, o.out)
	if err != nil {
		return err
	}
	logf("backend on %s (TLS %s), pinned to CPU %s; load generator on CPU %s", e.backend.HTTP, e.backend.HTTPS, e.cpuProxy, e.cpuLoad)

	jf, err := os.Create(o.jsonPath)
	if err != nil {
		return err
	}
	defer jf.Close()
	enc := json.NewEncoder(jf)

	clk := clockTicks()
	total := o.rounds * len(scens) * len(proxies)
	perRun := o.duration + o.warmup + 300*time.Millisecond
	logf("%d runs of %s (+%s warm-up): about %s", total, o.duration, o.warmup, (time.Duration(total) * perRun).Round(time.Second))
	began := time.Now()
	var runs []runResult
	n := 0
loop:
	for round := 0; round < o.rounds; round++ {
		for _, sc := range scens {
			for order, px := range rotate(proxies, round) {
				if ctx.Err() != nil {
					break loop
				}
				n++
				if backend.exited() {
					logf("backend exited (%v); restarting", backend.err)
					if backend, err = e.startBackend(ctx, o.out); err != nil {
						return err
					}
				}
				r := e.measure(ctx, sc, px, round+1, order, o, clk, backend)
				if ctx.Err() != nil {
					break loop // cut short by the interrupt: not a result
				}
				runs = append(runs, r)
				if err := enc.Encode(r); err != nil {
					return err
				}
				eta := time.Duration(float64(time.Since(began)) / float64(n) * float64(total-n)).Round(time.Second)
				logf("[%d/%d round %d] %s", n, total, round+1, progressLine(r)+fmt.Sprintf(" (eta %s)", eta))
			}
		}
	}
	interrupted := ctx.Err()
	backend.stop(3 * time.Second)

	var scNames []string
	descs := map[string]string{}
	for _, s := range scens {
		scNames = append(scNames, s.Name)
		descs[s.Name] = s.Desc
	}
	rows := summarize(runs, scNames, proxies)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	report := reportHeader(o, versions, time.Since(began), interrupted) + "\n" + renderTable(rows, descs)
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Print(report)
	logf("done in %s; JSON lines in %s", time.Since(began).Round(time.Second), o.jsonPath)
	if interrupted != nil {
		return fmt.Errorf("interrupted (%v): partial results", interrupted)
	}
	return nil
}

// measure runs one scenario against one proxy: fresh proxy, warm-up,
// measured run with CPU and memory accounting, stop.
func (e *env) measure(ctx context.Context, sc scenario, px string, round, order int, o options, clk float64, backend *proc) runResult {
	r := runResult{Type: "run", Scenario: sc.Name, Proxy: px, Round: round, Order: order, Tool: sc.Tool, Start: time.Now().UTC().Format(time.RFC3339)}
	tag := fmt.Sprintf("r%d-%s-%s", round, sc.Name, px)
	dir := filepath.Join(o.out, "runs", tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Error = err.Error()
		return r
	}
	rp, err := e.startProxy(ctx, px, filepath.Join(dir, "proxy"))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer rp.stop()
	if o.warmup > 0 {
		w := o.warmup
		if sc.Tool != toolGen {
			w = time.Duration(wholeSeconds(w)) * time.Second
		}
		if wr, err := e.runLoad(ctx, sc, rp.ep, w, tag+"-warmup"); err != nil {
			r.Error = "warm-up: " + err.Error()
			_ = os.WriteFile(filepath.Join(dir, "warmup.txt"), []byte(wr.raw), 0o644)
			return r
		}
	}
	pgid := 0
	if rp.proc != nil {
		pgid = rp.proc.pid()
	}
	logBefore := rp.logBytes()
	cpuBefore := readCPUs()
	var proxyBefore groupUsage
	if pgid != 0 {
		proxyBefore = readGroupUsage(pgid)
	}
	backendBefore := readGroupUsage(backend.pid())

	lr, err := e.runLoad(ctx, sc, rp.ep, o.duration, tag)

	backendAfter := readGroupUsage(backend.pid())
	var proxyAfter groupUsage
	if pgid != 0 {
		proxyAfter = readGroupUsage(pgid)
	}
	cpuAfter := readCPUs()
	r.ProxyLogBytes = rp.logBytes() - logBefore
	_ = os.WriteFile(filepath.Join(dir, "load.txt"), []byte(lr.raw), 0o644)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if rp.proc != nil && rp.proc.exited() {
		r.Error = fmt.Sprintf("%s exited during the run: %v", px, rp.proc.err)
		return r
	}
	res := lr.res
	r.DurationS, r.Requests, r.RPS = res.DurationS, res.Requests, res.RPS
	r.P50us, r.P90us, r.P99us, r.P999us, r.MaxUs = res.P50us, res.P90us, res.P99us, res.P999us, res.MaxUs
	r.Errors, r.Non2xx, r.Extra = res.Errors, res.Non2xx, res.Extra
	wall := lr.wall
	proxyTicks := sub(proxyAfter.Ticks, proxyBefore.Ticks)
	backendTicks := sub(backendAfter.Ticks, backendBefore.Ticks)
	if res.Requests > 0 {
		r.ProxyCPUPerReqUs = float64(proxyTicks) / clk * 1e6 / float64(res.Requests)
		r.BackendCPUPerReqUs = float64(backendTicks) / clk * 1e6 / float64(res.Requests)
	}
	if wall > 0 {
		r.ProxyCPUPct = 100 * float64(proxyTicks) / clk / wall
		r.BackendCPUPct = 100 * float64(backendTicks) / clk / wall
		r.GenCPUPct = 100 * lr.genCPU / wall
	}
	r.ProxyPeakRSSKiB = proxyAfter.HWMKiB
	r.ProxyProcs = proxyAfter.Command
	if c0b, ok := cpuBefore[0]; ok {
		r.CPU0OtherPct = otherLoadPct(c0b, cpuAfter[0], uint64(lr.genCPU*clk))
	}
	if c1b, ok := cpuBefore[1]; ok {
		r.CPU1OtherPct = otherLoadPct(c1b, cpuAfter[1], proxyTicks+backendTicks)
	}
	if res.Requests == 0 {
		r.Error = "no request completed"
	}
	return r
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func progressLine(r runResult) string {
	if r.Error != "" {
		return fmt.Sprintf("%s %s: FAILED: %s", r.Scenario, r.Proxy, firstLine(r.Error))
	}
	return fmt.Sprintf("%s %s: %.0f req/s p50 %sms p99 %sms cpu %.1fµs/req rss %.1fMiB err %d non-2xx %d gen %.0f%% other %.0f/%.0f%% log %dB",
		r.Scenario, r.Proxy, r.RPS, fmtMs(r.P50us), fmtMs(r.P99us), r.ProxyCPUPerReqUs,
		float64(r.ProxyPeakRSSKiB)/1024, r.Errors, r.Non2xx, r.GenCPUPct, r.CPU0OtherPct, r.CPU1OtherPct, r.ProxyLogBytes)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func reportHeader(o options, versions []string, took time.Duration, interrupted error) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Load benchmark, %s, host %s, %d CPUs, %s per run (+%s warm-up), %d round(s), took %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), o.duration, o.warmup, o.rounds, took.Round(time.Second))
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "Load average at the end: %s.\n", strings.TrimSpace(string(la)))
	}
	if interrupted != nil {
		fmt.Fprintf(&b, "INTERRUPTED (%v): partial results.\n", interrupted)
	}
	b.WriteString("\n")
	for _, v := range versions {
		fmt.Fprintf(&b, "- %s\n", v)
	}
	return b.String()
}

func selectProxies(list string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" || contains(out, p) {
			continue
		}
		if !contains(allProxies, p) {
			return nil, fmt.Errorf("unknown proxy %q (have %s)", p, strings.Join(allProxies, ", "))
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no proxy selected")
	}
	return out, nil
}

func scenarioNames() string {
	var n []string
	for _, s := range allScenarios(5000) {
		n = append(n, s.Name)
	}
	return strings.Join(n, ",")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// raiseNoFile lifts the soft open-files limit to the hard limit; children
// (wrk with 256 connections, the proxies) inherit it.
func raiseNoFile(logf func(string, ...any)) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			logf("cannot raise open-files limit: %v", err)
		}
	}
}
