package router

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/urlpath"
)

// In these tests every route's BackendID names the outcome it stands for, so
// a case states the expected result as a backend ID ("" for no target).

func route(path string, typ model.PathType, backend string) model.Route {
	return model.Route{
		ID:        fmt.Sprintf("%s %s %s", typ, path, backend),
		Path:      path,
		PathType:  typ,
		BackendID: backend,
	}
}

func prefix(path, backend string) model.Route { return route(path, model.PathPrefix, backend) }
func exact(path, backend string) model.Route  { return route(path, model.PathExact, backend) }
func implSpecific(path, backend string) model.Route {
	return route(path, model.PathImplementationSpecific, backend)
}

// snapshot builds a snapshot with one Backend per distinct BackendID used,
// sorted by ID as the model promises.
func snapshot(catchAll *model.Route, vhosts ...model.VirtualHost) *model.Snapshot {
	s := &model.Snapshot{VirtualHosts: vhosts, CatchAll: catchAll}
	seen := map[string]bool{}
	add := func(r *model.Route) {
		if r != nil && !seen[r.BackendID] {
			seen[r.BackendID] = true
			s.Backends = append(s.Backends, model.Backend{ID: r.BackendID})
		}
	}
	add(catchAll)
	for i := range vhosts {
		add(vhosts[i].Default)
		for j := range vhosts[i].Routes {
			add(&vhosts[i].Routes[j])
		}
	}
	slices.SortFunc(s.Backends, func(a, b model.Backend) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// outcome names what Match returned: the matched route's BackendID, or "".
// It also checks that Target.Backend points at that backend.
func outcome(t *testing.T, tbl *Table, host, path string) string {
	t.Helper()
	got := tbl.Match(host, path)
	if got == nil {
		return ""
	}
	s, _ := compiled.Load(tbl)
	if s == nil {
		t.Fatalf("table not built by compile")
	}
	backends := s.(*model.Snapshot).Backends
	if got.Backend < 0 || got.Backend >= len(backends) || backends[got.Backend].ID != got.Route.BackendID {
		t.Errorf("Match(%q, %q): Backend %d does not index backend %q", host, path, got.Backend, got.Route.BackendID)
	}
	return got.Route.BackendID
}

// compiled maps the tables built by compile to their snapshots, so that
// outcome can check Target.Backend against the snapshot's Backends.
var compiled sync.Map

// compile is Compile, remembering the snapshot for outcome.
func compile(s *model.Snapshot) *Table {
	tbl := Compile(s)
	compiled.Store(tbl, s)
	return tbl
}

type matchCase struct {
	name, host, path, want string
}

func runCases(t *testing.T, tbl *Table, cases []matchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := outcome(t, tbl, tc.host, tc.path); got != tc.want {
				t.Errorf("Match(%q, %q) = %q, want %q", tc.host, tc.path, got, tc.want)
			}
		})
	}
}

// trickySnapshot is the setup of ingress-semantics.md section 5, with virtual
// hosts and routes deliberately out of precedence order. reverse reverses
// every route list, which must not change any outcome since no two routes tie.
func trickySnapshot(catchAll *model.Route, reverse bool) *model.Snapshot {
	vhosts := []model.VirtualHost{
		{Host: "bar.foo.com", Routes: []model.Route{prefix("/api", "bar")}},
		{Host: "", Routes: []model.Route{prefix("/", "any")}},
		{Host: "a.com", Routes: []model.Route{
			prefix("/", "root"),
			prefix("/foo", "fooP"),
			exact("/aaa/bbb", "abE"),
			prefix("/foo/bar/", "fb"),
			exact("/foo", "fooE"),
		}},
		{Host: "*.foo.com", Routes: []model.Route{prefix("/", "wild")}},
		{Host: "order.test", Routes: []model.Route{
			prefix("/foo", "X"),
			prefix("/foo/", "Y"),
		}},
	}
	if reverse {
		for i := range vhosts {
			slices.Reverse(vhosts[i].Routes)
		}
	}
	return snapshot(catchAll, vhosts...)
}

func TestMatchTrickyCases(t *testing.T) {
	canonical := func(p string) string {
		c, err := urlpath.Canonical(p, urlpath.Options{})
		if err != nil {
			t.Fatalf("Canonical(%q): %v", p, err)
		}
		return c
	}
	cases := []matchCase{
		{name: "1 equal length Exact beats Prefix", host: "a.com", path: "/foo", want: "fooE"},
		{name: "2 Exact rejects trailing slash", host: "a.com", path: "/foo/", want: "fooP"},
		{name: "3 element-wise prefix", host: "a.com", path: "/foobar", want: "root"},
		{name: "4 trailing-slash prefix is longer", host: "a.com", path: "/foo/bar", want: "fb"},
		{name: "5 no partial element", host: "a.com", path: "/foo/barbaz", want: "fooP"},
		{name: "6 case-sensitive path", host: "a.com", path: "/FOO", want: "root"},
		{name: "7 Exact with trailing slash", host: "a.com", path: "/aaa/bbb/", want: "root"},
		// The proxy hands Match the path without the query.
		{name: "8 query is not matched", host: "a.com", path: "/foo", want: "fooE"},
		{name: "9 longest string wins", host: "order.test", path: "/foo", want: "Y"},
		{name: "9 longest string wins with slash", host: "order.test", path: "/foo/", want: "Y"},
		{name: "10 merged slashes", host: "a.com", path: canonical("//foo"), want: "fooE"},
		{name: "10 dot segments", host: "a.com", path: canonical("/x/../foo"), want: "fooE"},
		{name: "10 percent-encoded unreserved", host: "a.com", path: canonical("/fo%6F"), want: "fooE"},
		{name: "11 precise beats wildcard", host: "bar.foo.com", path: "/api/x", want: "bar"},
		{name: "12 no fall-through to other vhosts", host: "bar.foo.com", path: "/other", want: ""},
		{name: "13 wildcard one label", host: "baz.foo.com", path: "/", want: "wild"},
		{name: "14 wildcard not two labels", host: "x.baz.foo.com", path: "/", want: "any"},
		{name: "14 wildcard not the bare suffix", host: "foo.com", path: "/", want: "any"},
		{name: "15 port and case", host: "BAR.FOO.COM:8443", path: "/api", want: "bar"},
	}
	for _, reverse := range []bool{false, true} {
		t.Run(fmt.Sprintf("reversed=%v", reverse), func(t *testing.T) {
			runCases(t, compile(trickySnapshot(nil, reverse)), cases)
		})
	}
}

func TestMatchConformance(t *testing.T) {
	tbl := compile(snapshot(nil,
		model.VirtualHost{Host: "exact-path-rules", Routes: []model.Route{
			exact("/foo", "foo"),
		}},
		model.VirtualHost{Host: "exact-trailing-slash", Routes: []model.Route{
			exact("/foo/", "fooSlash"),
		}},
		model.VirtualHost{Host: "prefix-path-rules", Routes: []model.Route{
			prefix("/foo", "foo"),
			prefix("/aaa/bbb", "aaabbb"),
			prefix("/aaa", "aaa"),
		}},
		model.VirtualHost{Host: "mixed-path-rules", Routes: []model.Route{
			prefix("/foo", "fooPrefix"),
			exact("/foo", "fooExact"),
		}},
		model.VirtualHost{Host: "trailing-slash-rules", Routes: []model.Route{
			prefix("/aaa/bbb/", "aaabbb"),
			exact("/foo/bar/", "foobar"),
		}},
		model.VirtualHost{Host: "*.wildcard.com", Routes: []model.Route{
			prefix("/", "wild"),
		}},
	))
	runCases(t, tbl, []matchCase{
		{name: "exact matches itself", host: "exact-path-rules", path: "/foo", want: "foo"},
		{name: "exact rejects trailing slash", host: "exact-path-rules", path: "/foo/", want: ""},
		{name: "exact is case-sensitive", host: "exact-path-rules", path: "/FOO", want: ""},
		{name: "exact rejects sub-path", host: "exact-path-rules", path: "/foo/bar", want: ""},
		{name: "exact with slash matches itself", host: "exact-trailing-slash", path: "/foo/", want: "fooSlash"},
		{name: "exact with slash rejects bare", host: "exact-trailing-slash", path: "/foo", want: ""},
		{name: "prefix matches itself", host: "prefix-path-rules", path: "/foo", want: "foo"},
		{name: "prefix matches trailing slash", host: "prefix-path-rules", path: "/foo/", want: "foo"},
		{name: "prefix is case-sensitive", host: "prefix-path-rules", path: "/FOO", want: ""},
		{name: "longer prefix wins", host: "prefix-path-rules", path: "/aaa/bbb", want: "aaabbb"},
		{name: "longer prefix wins below", host: "prefix-path-rules", path: "/aaa/bbb/ccc", want: "aaabbb"},
		{name: "shorter prefix for sibling", host: "prefix-path-rules", path: "/aaa/bbbccc", want: "aaa"},
		{name: "no partial element", host: "prefix-path-rules", path: "/aaaccc", want: ""},
		{name: "root has no route", host: "prefix-path-rules", path: "/", want: ""},
		{name: "mixed exact wins", host: "mixed-path-rules", path: "/foo", want: "fooExact"},
		{name: "mixed prefix below", host: "mixed-path-rules", path: "/foo/", want: "fooPrefix"},
		{name: "trailing-slash prefix bare", host: "trailing-slash-rules", path: "/aaa/bbb", want: "aaabbb"},
		{name: "trailing-slash prefix slash", host: "trailing-slash-rules", path: "/aaa/bbb/", want: "aaabbb"},
		{name: "trailing-slash prefix below", host: "trailing-slash-rules", path: "/aaa/bbb/ccc", want: "aaabbb"},
		{name: "trailing-slash prefix no partial", host: "trailing-slash-rules", path: "/aaa/bbbccc", want: ""},
		{name: "trailing-slash exact itself", host: "trailing-slash-rules", path: "/foo/bar/", want: "foobar"},
		{name: "trailing-slash exact rejects bare", host: "trailing-slash-rules", path: "/foo/bar", want: ""},
		{name: "wildcard one label", host: "foo.wildcard.com", path: "/x", want: "wild"},
		{name: "wildcard not two labels", host: "foo.bar.wildcard.com", path: "/x", want: ""},
		{name: "wildcard not the suffix", host: "wildcard.com", path: "/x", want: ""},
		{name: "wildcard not an empty label", host: ".wildcard.com", path: "/x", want: ""},
	})
}

func TestMatchPrecedence(t *testing.T) {
	tbl := compile(snapshot(nil,
		model.VirtualHost{Host: "types.test", Routes: []model.Route{
			implSpecific("/a", "isA"),
			prefix("/a", "prefixA"),
			implSpecific("/b", "isB"),
			exact("/b", "exactB"),
			implSpecific("/c", "isC"),
			route("/d", "Regex", "unknownD"),
		}},
		model.VirtualHost{Host: "ties.test", Routes: []model.Route{
			prefix("/x", "first"),
			prefix("/x", "second"),
			exact("/y", "firstExact"),
			exact("/y", "secondExact"),
		}},
		model.VirtualHost{Host: "root.test", Routes: []model.Route{
			prefix("/", "root"),
			implSpecific("/", "rootIS"),
			exact("/", "rootExact"),
			prefix("/deep/er/path/", "deep"),
		}},
	))
	runCases(t, tbl, []matchCase{
		{name: "Prefix beats ImplementationSpecific", host: "types.test", path: "/a/x", want: "prefixA"},
		{name: "Exact beats ImplementationSpecific", host: "types.test", path: "/b", want: "exactB"},
		{name: "ImplementationSpecific is element-wise", host: "types.test", path: "/c/d", want: "isC"},
		{name: "ImplementationSpecific no partial", host: "types.test", path: "/cd", want: ""},
		{name: "unknown type never matches", host: "types.test", path: "/d", want: ""},
		{name: "first of equal prefixes", host: "ties.test", path: "/x", want: "first"},
		{name: "first of equal exacts", host: "ties.test", path: "/y", want: "firstExact"},
		{name: "Exact root", host: "root.test", path: "/", want: "rootExact"},
		{name: "root matches everything", host: "root.test", path: "/anything/at/all", want: "root"},
		{name: "longest beats root", host: "root.test", path: "/deep/er/path", want: "deep"},
		{name: "root for partial deep", host: "root.test", path: "/deep/er/pat", want: "root"},
	})
}

// TestMatchManyTies uses enough tied routes that an unstable sort would
// reorder them (small slices are sorted by insertion, which is stable).
func TestMatchManyTies(t *testing.T) {
	vh := model.VirtualHost{Host: "ties.test"}
	for i := range 100 {
		vh.Routes = append(vh.Routes,
			implSpecific("/x", fmt.Sprintf("is%d", i)),
			prefix("/x", fmt.Sprintf("prefix%d", i)),
			exact("/y", fmt.Sprintf("exact%d", i)),
			prefix("/y", fmt.Sprintf("prefixY%d", i)),
		)
	}
	runCases(t, compile(snapshot(nil, vh)), []matchCase{
		{name: "first Prefix of many", host: "ties.test", path: "/x", want: "prefix0"},
		{name: "first Prefix below", host: "ties.test", path: "/x/z", want: "prefix0"},
		{name: "first Exact of many", host: "ties.test", path: "/y", want: "exact0"},
		{name: "first Prefix under Exacts", host: "ties.test", path: "/y/", want: "prefixY0"},
	})
}

func TestMatchHostNormalisation(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	if len(long) != maxHostLen {
		t.Fatalf("long host is %d bytes", len(long))
	}
	tbl := compile(snapshot(nil,
		model.VirtualHost{Host: "foo.com", Routes: []model.Route{prefix("/", "foo")}},
		model.VirtualHost{Host: "*.foo.com", Routes: []model.Route{prefix("/", "wild")}},
		model.VirtualHost{Host: "10.0.0.1", Routes: []model.Route{prefix("/", "ipv4")}},
		model.VirtualHost{Host: long, Routes: []model.Route{prefix("/", "long")}},
		model.VirtualHost{Host: "*." + long[64:], Routes: []model.Route{prefix("/", "longWild")}},
		model.VirtualHost{Host: "", Routes: []model.Route{prefix("/", "any")}},
	))
	runCases(t, tbl, []matchCase{
		{name: "plain", host: "foo.com", want: "foo"},
		{name: "upper case", host: "FOO.COM", want: "foo"},
		{name: "mixed case", host: "Foo.CoM", want: "foo"},
		{name: "port", host: "foo.com:8443", want: "foo"},
		{name: "empty port", host: "foo.com:", want: "foo"},
		{name: "mixed case and port", host: "Foo.COM:8443", want: "foo"},
		{name: "trailing dot", host: "foo.com.", want: "foo"},
		{name: "trailing dot and port", host: "FOO.com.:80", want: "foo"},
		{name: "only one trailing dot", host: "foo.com..", want: "any"},
		{name: "wildcard with case and port", host: "BAR.Foo.Com:443", want: "wild"},
		{name: "wildcard with trailing dot", host: "bar.foo.com.", want: "wild"},
		{name: "wildcard with case, trailing dot and port", host: "Bar.Foo.Com.:8080", want: "wild"},
		{name: "two trailing dots and port", host: "foo.com..:80", want: "any"},
		{name: "ipv4", host: "10.0.0.1", want: "ipv4"},
		{name: "ipv4 with port", host: "10.0.0.1:80", want: "ipv4"},
		{name: "ipv6 literal", host: "[::1]", want: "any"},
		{name: "ipv6 literal with port", host: "[::1]:8080", want: "any"},
		{name: "bare ipv6", host: "::1", want: "any"},
		{name: "non-numeric port", host: "foo.com:https", want: "any"},
		{name: "empty host", host: "", want: "any"},
		{name: "port only", host: ":80", want: "any"},
		{name: "unknown host", host: "example.org", want: "any"},
		{name: "253 bytes", host: long, want: "long"},
		{name: "253 bytes upper case with dot and port", host: strings.ToUpper(long) + ".:1", want: "long"},
		{name: "wildcard of 253 bytes", host: "x" + long[63:], want: "longWild"},
		{name: "254 bytes", host: "x" + long, want: "any"},
		{name: "over-long wildcard candidate", host: "xx" + long[63:], want: "longWild"},
		{name: "far too long", host: strings.Repeat("A", 10000), want: "any"},
	})
}

func TestMatchFallbacks(t *testing.T) {
	catchAll := prefix("/", "catchAll")
	def := prefix("/", "default")
	vhosts := func() []model.VirtualHost {
		return []model.VirtualHost{
			{Host: "with-default.test", Routes: []model.Route{prefix("/api", "api")}, Default: &def},
			{Host: "without-default.test", Routes: []model.Route{prefix("/api", "api")}},
			{Host: "*.wild.test", Routes: []model.Route{exact("/x", "x")}},
			{Host: "empty.test"},
		}
	}
	withHostless := append(vhosts(), model.VirtualHost{Routes: []model.Route{exact("/only", "hostless")}})
	tests := []struct {
		name string
		snap *model.Snapshot
		want []matchCase
	}{
		{
			name: "catch-all set",
			snap: snapshot(&catchAll, vhosts()...),
			want: []matchCase{
				{name: "route", host: "with-default.test", path: "/api", want: "api"},
				{name: "default", host: "with-default.test", path: "/other", want: "default"},
				{name: "catch-all for vhost without default", host: "without-default.test", path: "/other", want: "catchAll"},
				{name: "catch-all for wildcard miss", host: "a.wild.test", path: "/y", want: "catchAll"},
				{name: "catch-all for vhost without routes", host: "empty.test", path: "/", want: "catchAll"},
				{name: "catch-all for no vhost", host: "unknown.test", path: "/api", want: "catchAll"},
			},
		},
		{
			name: "no catch-all",
			snap: snapshot(nil, vhosts()...),
			want: []matchCase{
				{name: "default", host: "with-default.test", path: "/other", want: "default"},
				{name: "nothing for vhost without default", host: "without-default.test", path: "/other", want: ""},
				{name: "nothing for vhost without routes", host: "empty.test", path: "/", want: ""},
				{name: "nothing for no vhost", host: "unknown.test", path: "/api", want: ""},
			},
		},
		{
			name: "host-less vhost",
			snap: snapshot(&catchAll, withHostless...),
			want: []matchCase{
				{name: "host-less route", host: "unknown.test", path: "/only", want: "hostless"},
				{name: "catch-all for host-less miss", host: "unknown.test", path: "/other", want: "catchAll"},
				{name: "named vhost does not fall through", host: "without-default.test", path: "/only", want: "catchAll"},
			},
		},
		{
			name: "empty snapshot with catch-all",
			snap: snapshot(&catchAll),
			want: []matchCase{
				{name: "anything", host: "a.test", path: "/", want: "catchAll"},
			},
		},
		{
			name: "empty snapshot",
			snap: snapshot(nil),
			want: []matchCase{
				{name: "anything", host: "a.test", path: "/", want: ""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runCases(t, compile(tt.snap), tt.want)
		})
	}
}

func TestMatchBackendIndex(t *testing.T) {
	catchAll := model.Route{ID: "catch", Path: "/", PathType: model.PathPrefix, BackendID: "ns/catch:80"}
	def := model.Route{ID: "def", Path: "/", PathType: model.PathPrefix, BackendID: "ns/gone:80"}
	s := &model.Snapshot{
		VirtualHosts: []model.VirtualHost{{
			Host: "b.test",
			Routes: []model.Route{
				{ID: "a", Path: "/a", PathType: model.PathPrefix, BackendID: "ns/a:80"},
				{ID: "b", Path: "/b", PathType: model.PathExact, BackendID: "ns/b:http"},
				{ID: "dangling", Path: "/dangling", PathType: model.PathPrefix, BackendID: "ns/missing:80"},
			},
			Default: &def,
		}},
		CatchAll: &catchAll,
		Backends: []model.Backend{{ID: "ns/a:80"}, {ID: "ns/b:http"}, {ID: "ns/catch:80"}},
	}
	tbl := compile(s)
	tests := []struct {
		name, host, path string
		wantRoute        *model.Route
		wantBackend      int
	}{
		{name: "first backend", host: "b.test", path: "/a", wantRoute: &s.VirtualHosts[0].Routes[0], wantBackend: 0},
		{name: "named port", host: "b.test", path: "/b", wantRoute: &s.VirtualHosts[0].Routes[1], wantBackend: 1},
		{name: "dangling backend", host: "b.test", path: "/dangling/x", wantRoute: &s.VirtualHosts[0].Routes[2], wantBackend: -1},
		{name: "dangling default", host: "b.test", path: "/other", wantRoute: &def, wantBackend: -1},
		{name: "catch-all", host: "other.test", path: "/", wantRoute: &catchAll, wantBackend: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tbl.Match(tt.host, tt.path)
			if got == nil {
				t.Fatalf("Match(%q, %q) = nil", tt.host, tt.path)
			}
			// The target must point into the snapshot, not at a copy.
			if got.Route != tt.wantRoute || got.Backend != tt.wantBackend {
				t.Errorf("Match(%q, %q) = {%s, %d}, want {%s, %d}",
					tt.host, tt.path, got.Route.ID, got.Backend, tt.wantRoute.ID, tt.wantBackend)
			}
		})
	}
}

func TestCompileSnapshotQuirks(t *testing.T) {
	s := snapshot(nil,
		model.VirtualHost{Host: "dup.test", Routes: []model.Route{prefix("/", "firstDup")}},
		model.VirtualHost{Host: "dup.test", Routes: []model.Route{prefix("/", "secondDup")}},
		model.VirtualHost{Host: "UPPER.test", Routes: []model.Route{prefix("/", "upper")}},
		model.VirtualHost{Host: "*.", Routes: []model.Route{prefix("/", "emptyWildcard")}},
		model.VirtualHost{Host: "*.dup.test", Routes: []model.Route{prefix("/", "firstWild")}},
		model.VirtualHost{Host: "*.dup.test", Routes: []model.Route{prefix("/", "secondWild")}},
		model.VirtualHost{Routes: []model.Route{exact("/h", "firstHostless")}},
		model.VirtualHost{Routes: []model.Route{prefix("/", "secondHostless")}},
	)
	s.Backends = append(s.Backends, model.Backend{ID: "firstDup"}) // duplicate ID
	runCases(t, compile(s), []matchCase{
		{name: "first duplicate host wins", host: "dup.test", path: "/", want: "firstDup"},
		{name: "snapshot host case folded", host: "upper.TEST", path: "/", want: "upper"},
		{name: "empty wildcard ignored", host: "x.", path: "/", want: ""},
		{name: "empty wildcard ignored with double dot", host: "x..", path: "/", want: ""},
		{name: "first duplicate wildcard wins", host: "a.dup.test", path: "/", want: "firstWild"},
		{name: "first host-less wins", host: "none.test", path: "/h", want: "firstHostless"},
		{name: "first host-less has no root", host: "none.test", path: "/", want: ""},
	})
	first := slices.IndexFunc(s.Backends, func(b model.Backend) bool { return b.ID == "firstDup" })
	if got := Compile(s).Match("dup.test", "/"); got == nil || got.Backend != first {
		t.Errorf("duplicate backend ID: got %+v, want index %d", got, first)
	}
}

func TestCompileDoesNotModifySnapshot(t *testing.T) {
	s := trickySnapshot(nil, false)
	before := trickySnapshot(nil, false)
	Compile(s)
	if !reflect.DeepEqual(s, before) {
		t.Fatal("Compile modified the snapshot")
	}
}

func TestNilTableAndSnapshot(t *testing.T) {
	var none *Table
	if none.Match("a.com", "/") != nil {
		t.Error("nil table matched something")
	}
	tbl := Compile(nil)
	if tbl.Match("a.com", "/") != nil {
		t.Error("table of nil snapshot matched something")
	}
}

func TestMatchManyPaths(t *testing.T) {
	const n = 1000
	vh := model.VirtualHost{Host: "many.test"}
	for i := range n {
		vh.Routes = append(vh.Routes,
			prefix(fmt.Sprintf("/svc%d/", i), fmt.Sprintf("p%d", i)),
			exact(fmt.Sprintf("/svc%d/health", i), fmt.Sprintf("e%d", i)),
		)
	}
	vh.Routes = append(vh.Routes, prefix("/", "root"))
	tbl := compile(snapshot(nil, vh))
	var cases []matchCase
	for _, i := range []int{0, 1, 10, 999} {
		cases = append(cases,
			matchCase{name: fmt.Sprintf("prefix %d", i), host: "many.test", path: fmt.Sprintf("/svc%d/a/b/c", i), want: fmt.Sprintf("p%d", i)},
			matchCase{name: fmt.Sprintf("prefix bare %d", i), host: "many.test", path: fmt.Sprintf("/svc%d", i), want: fmt.Sprintf("p%d", i)},
			matchCase{name: fmt.Sprintf("exact %d", i), host: "many.test", path: fmt.Sprintf("/svc%d/health", i), want: fmt.Sprintf("e%d", i)},
			matchCase{name: fmt.Sprintf("below exact %d", i), host: "many.test", path: fmt.Sprintf("/svc%d/health/x", i), want: fmt.Sprintf("p%d", i)},
		)
	}
	cases = append(cases,
		matchCase{name: "partial element", host: "many.test", path: "/svc1000", want: "root"},
		matchCase{name: "deep miss", host: "many.test", path: "/" + strings.Repeat("x/", 2000), want: "root"},
	)
	runCases(t, tbl, cases)
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tbl := compile(trickySnapshot(nil, false))
	requests := []struct{ host, path string }{
		{"a.com", "/foo/bar/baz"},
		{"A.COM:8443", "/foo"},
		{"BAZ.foo.com.", "/x"},
		{"x.baz.foo.com", "/"},
		{"[::1]:8080", "/"},
		{"bar.foo.com", "/other"},
		{strings.Repeat("X", 300), "/"},
	}
	for _, r := range requests {
		if n := testing.AllocsPerRun(100, func() { tbl.Match(r.host, r.path) }); n != 0 {
			t.Errorf("Match(%q, %q) allocates %v times", r.host, r.path, n)
		}
	}
}

func TestMatchConcurrent(t *testing.T) {
	tbl := Compile(trickySnapshot(nil, false))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				if got := tbl.Match("Bar.Foo.Com", "/api/x"); got == nil || got.Route.BackendID != "bar" {
					t.Errorf("concurrent Match = %+v, want bar", got)
					return
				}
			}
		})
	}
	wg.Wait()
}
