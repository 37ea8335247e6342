package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// loadRun is one invocation of a load tool.
type loadRun struct {
	res    loadResult
	genCPU float64 // seconds of CPU the tool used
	wall   float64 // seconds
	raw    string  // stdout + stderr
}

// wholeSeconds rounds a duration to whole seconds (wrk and h2load take
// seconds), at least one.
func wholeSeconds(d time.Duration) int {
	s := int(math.Round(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// runLoad runs the scenario's load tool against ep for d.
func (e *env) runLoad(ctx context.Context, sc scenario, ep endpoints, d time.Duration, tag string) (loadRun, error) {
	var lr loadRun
	taskset := []string{e.paths["taskset"], "-c", e.cpuLoad}
	addr := ep.HTTP
	scheme := "http"
	if sc.TLS {
		addr, scheme = ep.HTTPS, "https"
	}
	url := scheme + "://" + addr + sc.Path()
	var argv []string
	var h2log string
	switch sc.Tool {
	case toolWrk:
		script := filepath.Join(e.workDir, "loadbench.lua")
		if _, err := os.Stat(script); err != nil {
			if err := os.WriteFile(script, []byte(wrkLua), 0o644); err != nil {
				return lr, err
			}
		}
		argv = append(taskset, e.paths["wrk"], "-t", "1", "-c", strconv.Itoa(sc.Conns),
			"-d", strconv.Itoa(wholeSeconds(d))+"s", "--timeout", "2s", "--latency", "-s", script)
		if sc.NewConn {
			argv = append(argv, "-H", "Connection: close")
		}
		argv = append(argv, url)
	case toolH2load:
		h2log = filepath.Join(e.workDir, "h2load-"+tag+".log")
		argv = append(taskset, e.paths["h2load"], "-t", "1", "-c", strconv.Itoa(sc.Conns),
			"-m", strconv.Itoa(sc.Streams), "-D", strconv.Itoa(wholeSeconds(d)),
			"--log-file="+h2log, url)
		defer os.Remove(h2log)
	case toolGen:
		argv = append(taskset, e.self, "gen", "-addr", addr, "-path", sc.Path(),
			"-conns", strconv.Itoa(sc.Conns), "-duration", d.String())
		if sc.TLS {
			argv = append(argv, "-tls")
		}
		if sc.Rate > 0 {
			argv = append(argv, "-mode", "rate", "-rate", strconv.Itoa(sc.Rate))
		} else {
			argv = append(argv, "-mode", "newconn")
		}
	default:
		return lr, fmt.Errorf("unknown tool %q", sc.Tool)
	}
	start := time.Now()
	so, se, ru, err := runTool(ctx, d+60*time.Second, argv, nil)
	lr.wall = time.Since(start).Seconds()
	lr.raw = "$ " + strings.Join(argv, " ") + "\n" + so + se
	if ru != nil {
		lr.genCPU = tvSeconds(ru.Utime.Sec, ru.Utime.Usec) + tvSeconds(ru.Stime.Sec, ru.Stime.Usec)
	}
	if err != nil {
		return lr, fmt.Errorf("%s: %v: %s", sc.Tool, err, tail(strings.TrimSpace(se+so), 600))
	}
	switch sc.Tool {
	case toolWrk:
		lr.res, err = parseWrk(so)
	case toolH2load:
		var proto string
		lr.res, proto, err = parseH2load(so)
		if err == nil && proto != "h2" {
			err = fmt.Errorf("h2load negotiated %q, not h2", proto)
		}
		if err == nil {
			var f *os.File
			if f, err = os.Open(h2log); err == nil {
				var lat []float64
				lat, err = parseH2loadLog(f)
				f.Close()
				lr.res.P50us = percentileSorted(lat, 50)
				lr.res.P90us = percentileSorted(lat, 90)
				lr.res.P99us = percentileSorted(lat, 99)
				lr.res.P999us = percentileSorted(lat, 99.9)
				lr.res.MaxUs = percentileSorted(lat, 100)
			}
		}
	case toolGen:
		var g genResult
		if err = json.Unmarshal([]byte(strings.TrimSpace(so)), &g); err == nil {
			lr.res = loadResult{
				Requests: g.Requests, DurationS: g.DurationS,
				P50us: g.P50us, P90us: g.P90us, P99us: g.P99us, P999us: g.P999us, MaxUs: g.MaxUs,
				Errors: g.Errors + g.Dropped, Non2xx: g.Non2xx,
				Extra: map[string]any{"dropped": g.Dropped, "tls_resumed": g.Resumed},
			}
			if g.DurationS > 0 {
				lr.res.RPS = float64(g.Requests) / g.DurationS
			}
			if g.IssueLagP50us > 0 || g.IssueLagP99us > 0 {
				lr.res.Extra["issue_lag_p50_us"] = g.IssueLagP50us
				lr.res.Extra["issue_lag_p99_us"] = g.IssueLagP99us
			}
			if g.FirstError != "" {
				lr.res.Extra["first_error"] = g.FirstError
			}
		}
	}
	if err != nil {
		return lr, fmt.Errorf("%s output: %v", sc.Tool, err)
	}
	return lr, nil
}

func tvSeconds(sec, usec int64) float64 { return float64(sec) + float64(usec)/1e6 }
