package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// runResult is one measurement: one scenario, one proxy, one round. It is
// written as one JSON line (type "run").
type runResult struct {
	Type               string         `json:"type"`
	Scenario           string         `json:"scenario"`
	Proxy              string         `json:"proxy"`
	Round              int            `json:"round"`
	Order              int            `json:"order"` // position of the proxy in this round
	Tool               string         `json:"tool"`
	Start              string         `json:"start"`
	DurationS          float64        `json:"duration_s"`
	Requests           int64          `json:"requests"`
	RPS                float64        `json:"rps"`
	P50us              float64        `json:"p50_us"`
	P90us              float64        `json:"p90_us"`
	P99us              float64        `json:"p99_us"`
	P999us             float64        `json:"p999_us"`
	MaxUs              float64        `json:"max_us"`
	Errors             int64          `json:"errors"`
	Non2xx             int64          `json:"non2xx"`
	ProxyCPUPerReqUs   float64        `json:"proxy_cpu_us_per_req"`
	ProxyCPUPct        float64        `json:"proxy_cpu_pct"` // of one CPU, over the run
	BackendCPUPerReqUs float64        `json:"backend_cpu_us_per_req"`
	BackendCPUPct      float64        `json:"backend_cpu_pct"`
	ProxyPeakRSSKiB    int64          `json:"proxy_peak_rss_kib"`
	ProxyProcs         []string       `json:"proxy_procs,omitempty"`
	GenCPUPct          float64        `json:"gen_cpu_pct"`
	CPU0OtherPct       float64        `json:"cpu0_other_pct"`
	CPU1OtherPct       float64        `json:"cpu1_other_pct"`
	ProxyLogBytes      int64          `json:"proxy_log_bytes"`
	Extra              map[string]any `json:"extra,omitempty"`
	Error              string         `json:"error,omitempty"`
}

// summaryRow aggregates the rounds of one scenario and proxy (JSON type
// "summary"). Medians across rounds; RPSMin/RPSMax the spread; error counts
// summed; ratios are to nginx's medians (0 when not applicable).
type summaryRow struct {
	Type             string  `json:"type"`
	Scenario         string  `json:"scenario"`
	Proxy            string  `json:"proxy"`
	Runs             int     `json:"runs"`
	FailedRuns       int     `json:"failed_runs"`
	RPS              float64 `json:"rps"`
	RPSMin           float64 `json:"rps_min"`
	RPSMax           float64 `json:"rps_max"`
	P50us            float64 `json:"p50_us"`
	P99us            float64 `json:"p99_us"`
	P999us           float64 `json:"p999_us"`
	ProxyCPUPerReqUs float64 `json:"proxy_cpu_us_per_req"`
	PeakRSSMiB       float64 `json:"peak_rss_mib"`
	Requests         int64   `json:"requests"`
	Errors           int64   `json:"errors"`
	Non2xx           int64   `json:"non2xx"`
	GenCPUPct        float64 `json:"gen_cpu_pct"`
	OtherLoadPct     float64 `json:"other_load_pct"` // max over rounds of max(cpu0, cpu1) other load
	ProxyLogBytes    int64   `json:"proxy_log_bytes"`
	RatioRPS         float64 `json:"rps_vs_nginx,omitempty"`
	RatioP99         float64 `json:"p99_vs_nginx,omitempty"`
	RatioCPU         float64 `json:"cpu_vs_nginx,omitempty"`
	RatioRSS         float64 `json:"rss_vs_nginx,omitempty"`
}

// median of values (mean of the middle two for an even count; 0 for none).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// spread is the minimum and maximum of values.
func spread(v []float64) (lo, hi float64) {
	if len(v) == 0 {
		return 0, 0
	}
	lo, hi = v[0], v[0]
	for _, x := range v[1:] {
		lo = math.Min(lo, x)
		hi = math.Max(hi, x)
	}
	return lo, hi
}

// summarize groups runs by scenario and proxy, in the given orders.
func summarize(runs []runResult, scenarios, proxies []string) []summaryRow {
	var rows []summaryRow
	for _, sc := range scenarios {
		byProxy := map[string]int{} // index into rows
		for _, px := range proxies {
			row := summaryRow{Type: "summary", Scenario: sc, Proxy: px}
			var rps, p50, p99, p999, cpu, rss, gen []float64
			for _, r := range runs {
				if r.Scenario != sc || r.Proxy != px {
					continue
				}
				if r.Error != "" {
					row.FailedRuns++
					continue
				}
				row.Runs++
				rps = append(rps, r.RPS)
				p50 = append(p50, r.P50us)
				p99 = append(p99, r.P99us)
				p999 = append(p999, r.P999us)
				cpu = append(cpu, r.ProxyCPUPerReqUs)
				rss = append(rss, float64(r.ProxyPeakRSSKiB)/1024)
				gen = append(gen, r.GenCPUPct)
				row.Requests += r.Requests
				row.Errors += r.Errors
				row.Non2xx += r.Non2xx
				row.ProxyLogBytes += r.ProxyLogBytes
				row.OtherLoadPct = math.Max(row.OtherLoadPct, math.Max(r.CPU0OtherPct, r.CPU1OtherPct))
			}
			if row.Runs == 0 && row.FailedRuns == 0 {
				continue
			}
			row.RPS = median(rps)
			row.RPSMin, row.RPSMax = spread(rps)
			row.P50us, row.P99us, row.P999us = median(p50), median(p99), median(p999)
			row.ProxyCPUPerReqUs = median(cpu)
			row.PeakRSSMiB = median(rss)
			row.GenCPUPct = median(gen)
			rows = append(rows, row)
			byProxy[px] = len(rows) - 1
		}
		ni, ok := byProxy[proxyNginx]
		if !ok || rows[ni].Runs == 0 {
			continue
		}
		ng := rows[ni]
		for px, i := range byProxy {
			row := &rows[i]
			if row.Runs == 0 {
				continue
			}
			row.RatioRPS = ratio(row.RPS, ng.RPS)
			row.RatioP99 = ratio(row.P99us, ng.P99us)
			if px != proxyDirect {
				row.RatioCPU = ratio(row.ProxyCPUPerReqUs, ng.ProxyCPUPerReqUs)
				row.RatioRSS = ratio(row.PeakRSSMiB, ng.PeakRSSMiB)
			}
		}
	}
	return rows
}

func ratio(a, b float64) float64 {
	if b == 0 || a == 0 {
		return 0
	}
	return a / b
}

// genBoundPct is the load generator CPU use above which a row is marked
// as limited by the generator.
const genBoundPct = 90

// renderTable renders the summary as a Markdown table, with a legend.
func renderTable(rows []summaryRow, descs map[string]string) string {
	var b strings.Builder
	b.WriteString("| scenario | proxy | req/s median (min–max) | req/s ×nginx | p50 ms | p99 ms | p99.9 ms | p99 ×nginx | proxy CPU µs/req | CPU ×nginx | peak RSS MiB | RSS ×nginx | errors / non-2xx | gen CPU % | other load % |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		if r.Runs == 0 {
			fmt.Fprintf(&b, "| %s | %s | failed (%d runs) | | | | | | | | | | | | |\n", r.Scenario, r.Proxy, r.FailedRuns)
			continue
		}
		rps := fmt.Sprintf("%.0f (%.0f–%.0f)", r.RPS, r.RPSMin, r.RPSMax)
		if r.GenCPUPct >= genBoundPct {
			rps += " ‡"
		}
		if r.FailedRuns > 0 {
			rps += fmt.Sprintf(" [%d failed]", r.FailedRuns)
		}
		cpu, rss := "—", "—"
		if r.Proxy != proxyDirect {
			cpu = fmt.Sprintf("%.1f", r.ProxyCPUPerReqUs)
			rss = fmt.Sprintf("%.1f", r.PeakRSSMiB)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d | %.0f | %.0f |\n",
			r.Scenario, r.Proxy, rps, fmtRatio(r.RatioRPS),
			fmtMs(r.P50us), fmtMs(r.P99us), fmtMs(r.P999us), fmtRatio(r.RatioP99),
			cpu, fmtRatio(r.RatioCPU), rss, fmtRatio(r.RatioRSS),
			r.Errors, r.Non2xx, r.GenCPUPct, r.OtherLoadPct)
	}
	b.WriteString("\n‡ load generator ≥90% busy (median): req/s is limited by the generator, not the proxy; compare CPU µs/req.\n")
	if len(descs) > 0 {
		b.WriteString("\nScenarios:\n\n")
		seen := map[string]bool{}
		for _, r := range rows {
			if seen[r.Scenario] {
				continue
			}
			seen[r.Scenario] = true
			fmt.Fprintf(&b, "- `%s`: %s\n", r.Scenario, descs[r.Scenario])
		}
	}
	return b.String()
}

// fmtMs renders microseconds as milliseconds with useful precision.
func fmtMs(us float64) string {
	ms := us / 1000
	switch {
	case us <= 0:
		return "—"
	case ms < 10:
		return fmt.Sprintf("%.3f", ms)
	case ms < 100:
		return fmt.Sprintf("%.2f", ms)
	default:
		return fmt.Sprintf("%.1f", ms)
	}
}

func fmtRatio(r float64) string {
	if r == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", r)
}

// rotate returns proxies rotated left by n (the order of round n).
func rotate(proxies []string, n int) []string {
	if len(proxies) == 0 {
		return nil
	}
	n %= len(proxies)
	return append(append([]string{}, proxies[n:]...), proxies[:n]...)
}
