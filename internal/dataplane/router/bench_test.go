package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/torii-dev/torii/internal/model"
)

type request struct{ host, path string }

// benchSnapshot builds a realistic snapshot of n exact hosts, each with a mix
// of Prefix, ImplementationSpecific and Exact paths, one wildcard host per ten
// exact ones, and a host-less virtual host. It also returns request mixes by
// kind: exact-host hits, wildcard hits, and hosts that no named virtual host
// takes.
func benchSnapshot(n int) (*model.Snapshot, map[string][]request) {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	var vhosts []model.VirtualHost
	reqs := map[string][]request{}
	for i := range n {
		host := fmt.Sprintf("app-%d.team-%d.example.com", i, i%97)
		vhosts = append(vhosts, model.VirtualHost{Host: host, Routes: []model.Route{
			prefix("/", "ns/web:80"),
			prefix("/api", "ns/api:80"),
			prefix("/api/v1/", "ns/api-v1:80"),
			implSpecific("/static/", "ns/static:80"),
			exact("/healthz", "ns/health:80"),
			exact("/login", "ns/auth:80"),
		}})
		// Clients send hosts as they like: some upper-case, some with port.
		switch rng.IntN(4) {
		case 0:
			host = strings.ToUpper(host[:1]) + host[1:]
		case 1:
			host += ":443"
		}
		path := []string{"/api/v1/users/42", "/healthz", "/static/css/app.css", "/login", "/", "/api/v2/orders", "/about/team"}[rng.IntN(7)]
		reqs["exact"] = append(reqs["exact"], request{host, path})

		if i%10 == 0 {
			suffix := fmt.Sprintf("tenant-%d.example.net", i)
			vhosts = append(vhosts, model.VirtualHost{Host: "*." + suffix, Routes: []model.Route{
				prefix("/", "ns/tenant:80"),
				prefix("/app", "ns/tenant-app:80"),
				exact("/app/ready", "ns/tenant-health:80"),
			}})
		}
		w := rng.IntN(n/10 + 1)
		reqs["wildcard"] = append(reqs["wildcard"], request{
			fmt.Sprintf("cust-%d.tenant-%d.example.net", i, w*10),
			[]string{"/app/dashboard", "/", "/app/ready"}[rng.IntN(3)],
		})
		reqs["miss"] = append(reqs["miss"], request{
			fmt.Sprintf("unknown-%d.example.org:8080", i),
			[]string{"/", "/.well-known/acme-challenge/token", "/x/y"}[rng.IntN(3)],
		})
	}
	vhosts = append(vhosts, model.VirtualHost{Routes: []model.Route{
		prefix("/", "ns/fallback:80"),
		implSpecific("/.well-known/acme-challenge/", "ns/acme:8089"),
	}})
	// The model sorts virtual hosts; so does the benchmark, to stay faithful.
	slices.SortFunc(vhosts, func(a, b model.VirtualHost) int { return strings.Compare(a.Host, b.Host) })

	// 60% exact hits, 25% wildcard, 15% misses.
	for i := range n {
		var r request
		switch k := rng.IntN(100); {
		case k < 60:
			r = reqs["exact"][i]
		case k < 85:
			r = reqs["wildcard"][i]
		default:
			r = reqs["miss"][i]
		}
		reqs["mix"] = append(reqs["mix"], r)
	}
	return snapshot(nil, vhosts...), reqs
}

// manyPathsSnapshot builds one virtual host with n Prefix paths and an Exact
// health path for each, and requests hitting deep paths, exact paths and
// nothing.
func manyPathsSnapshot(n int) (*model.Snapshot, []request) {
	rng := rand.New(rand.NewPCG(2, uint64(n)))
	vh := model.VirtualHost{Host: "big.example.com", Routes: []model.Route{prefix("/", "ns/web:80")}}
	var reqs []request
	for i := range n {
		svc := fmt.Sprintf("/svc-%d", i)
		vh.Routes = append(vh.Routes,
			prefix(svc+"/", fmt.Sprintf("ns/svc-%d:80", i)),
			exact(svc+"/health", fmt.Sprintf("ns/svc-%d:8081", i)),
		)
		path := []string{svc + "/api/v1/items/7", svc + "/health", svc, "/unknown/x/y/z", svc + "x/a"}[rng.IntN(5)]
		reqs = append(reqs, request{"big.example.com", path})
	}
	rng.Shuffle(len(vh.Routes), func(i, j int) { vh.Routes[i], vh.Routes[j] = vh.Routes[j], vh.Routes[i] })
	return snapshot(nil, vh), reqs
}

func BenchmarkMatch(b *testing.B) {
	type benchCase struct {
		name string
		tbl  *Table
		reqs []request
	}
	var cases []benchCase
	for _, n := range []int{1000, 10000} {
		s, reqs := benchSnapshot(n)
		tbl := Compile(s)
		for _, kind := range []string{"mix", "exact", "wildcard", "miss"} {
			cases = append(cases, benchCase{fmt.Sprintf("hosts=%d/%s", n, kind), tbl, reqs[kind]})
		}
	}
	s, reqs := manyPathsSnapshot(1000)
	cases = append(cases, benchCase{"paths=1000/mix", Compile(s), reqs})

	for _, bc := range cases {
		for _, r := range bc.reqs {
			if bc.tbl.Match(r.host, r.path) == nil {
				b.Fatalf("%s: Match(%q, %q) = nil", bc.name, r.host, r.path)
			}
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink *Target
			for i := 0; b.Loop(); i++ {
				r := bc.reqs[i%len(bc.reqs)]
				sink = bc.tbl.Match(r.host, r.path)
			}
			if sink == nil {
				b.Fatal("no match")
			}
			b.ReportMetric(medianNanos(bc.tbl, bc.reqs), "p50-ns")
		})
	}
}

// medianNanos times single Match calls to report a median, which ns/op (a
// mean) does not show. Each sample includes the clock's own overhead, so the
// figure is an upper bound.
func medianNanos(tbl *Table, reqs []request) float64 {
	samples := make([]time.Duration, 0, len(reqs))
	for _, r := range reqs {
		start := time.Now()
		tbl.Match(r.host, r.path)
		samples = append(samples, time.Since(start))
	}
	slices.Sort(samples)
	return float64(samples[len(samples)/2].Nanoseconds())
}

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		s, _ := benchSnapshot(n)
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Compile(s)
			}
		})
	}
}
