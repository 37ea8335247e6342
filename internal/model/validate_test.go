package model

import (
	"slices"
	"strings"
	"testing"
)

// validSnapshot returns a snapshot that exercises every invariant Validate
// checks; each case of TestValidateRejects breaks exactly one of them.
func validSnapshot() *Snapshot {
	src := ObjectRef{Kind: "Ingress", Namespace: "default", Name: "web"}
	route := func(id, path string, pt PathType) Route {
		return Route{ID: id, Path: path, PathType: pt, BackendID: "default/web:80", Source: src}
	}
	def := route("ingress/default/web/defaultBackend", "/", PathPrefix)
	return &Snapshot{
		VirtualHosts: []VirtualHost{
			{Host: "", Routes: []Route{route("ingress/default/web/rule/1/path/0", "/", PathPrefix)}},
			{Host: "*.example.com", Routes: []Route{}},
			{
				Host: "a.example.com",
				Routes: []Route{
					route("ingress/default/web/rule/0/path/2", "/foo/", PathPrefix),
					route("ingress/default/web/rule/0/path/1", "/foo", PathExact),
					route("ingress/default/web/rule/0/path/0", "/foo", PathPrefix),
					route("ingress/default/web/rule/0/path/3", "/bar", PathImplementationSpecific),
				},
				Default: &def,
			},
		},
		CatchAll: &Route{ID: "ingress/default/fallback/defaultBackend", Path: "/", PathType: PathPrefix, BackendID: "default/ext:80"},
		Backends: []Backend{
			{ID: "default/ext:80", ExternalName: "api.example.org", Endpoints: []Endpoint{{Address: "api.example.org", Port: 80}}},
			{ID: "default/web:80", Endpoints: []Endpoint{{Address: "10.0.0.1", Port: 8080}, {Address: "10.0.0.1", Port: 8081}, {Address: "10.0.0.2", Port: 8080}}},
		},
		Certificates: []Certificate{
			{ID: "default/a", Hosts: []string{"*.example.com", "a.example.com"}},
			{ID: "default/b", Hosts: []string{"b.example.com"}},
		},
	}
}

func TestValidateAcceptsValid(t *testing.T) {
	if err := validSnapshot().Validate(); err != nil {
		t.Fatal(err)
	}
	empty := &Snapshot{}
	if err := empty.Validate(); err != nil {
		t.Errorf("empty snapshot with nil slices: %v", err)
	}
	// One Ingress with rules for a host and rules without one: its
	// defaultBackend is that host's Default and the catch-all, one ID.
	shared := validSnapshot()
	c := *shared.VirtualHosts[2].Default
	shared.CatchAll = &c
	if err := shared.Validate(); err != nil {
		t.Errorf("catch-all sharing a default route's ID: %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(s *Snapshot)
		want   string
	}{
		{"unsorted hosts", func(s *Snapshot) {
			s.VirtualHosts[1], s.VirtualHosts[2] = s.VirtualHosts[2], s.VirtualHosts[1]
		}, "not sorted"},
		{"duplicate host", func(s *Snapshot) { s.VirtualHosts[1].Host = "a.example.com" }, "not sorted and unique"},
		{"upper-case host", func(s *Snapshot) { s.VirtualHosts[2].Host = "b.Example.com" }, "lower-case"},
		{"IP host", func(s *Snapshot) { s.VirtualHosts[2].Host = "10.0.0.1" }, "lower-case DNS"},
		{"bad wildcard", func(s *Snapshot) { s.VirtualHosts[1].Host = "*" }, "lower-case DNS"},
		{"host with port", func(s *Snapshot) { s.VirtualHosts[2].Host = "a.example.com:80" }, "lower-case DNS"},
		{"unknown backend", func(s *Snapshot) { s.VirtualHosts[0].Routes[0].BackendID = "default/gone:80" }, "not in the snapshot"},
		{"relative path", func(s *Snapshot) { s.VirtualHosts[0].Routes[0].Path = "foo" }, "start with '/'"},
		{"dot segment", func(s *Snapshot) { s.VirtualHosts[0].Routes[0].Path = "/a/../b" }, "not canonical"},
		{"lower-case escape", func(s *Snapshot) { s.VirtualHosts[0].Routes[0].Path = "/a%2fb" }, "not canonical"},
		{"unknown path type", func(s *Snapshot) { s.VirtualHosts[0].Routes[0].PathType = "Regex" }, "unknown path type"},
		{"empty route ID", func(s *Snapshot) { s.VirtualHosts[0].Routes[0].ID = "" }, "empty ID"},
		{"duplicate route ID", func(s *Snapshot) {
			s.VirtualHosts[0].Routes[0].ID = s.VirtualHosts[2].Routes[0].ID
		}, "not unique"},
		{"precedence by length", func(s *Snapshot) {
			r := s.VirtualHosts[2].Routes
			r[0], r[1] = r[1], r[0]
		}, "precedence"},
		{"precedence by type", func(s *Snapshot) {
			r := s.VirtualHosts[2].Routes
			r[1], r[2] = r[2], r[1]
		}, "precedence"},
		{"Prefix and ImplementationSpecific on one path", func(s *Snapshot) {
			s.VirtualHosts[2].Routes[3].Path = "/foo"
		}, "match the same requests"},
		{"Exact twice on one path", func(s *Snapshot) {
			r := s.VirtualHosts[2].Routes
			r[2].PathType, r[2].ID = PathExact, "ingress/default/web/rule/0/path/9"
		}, "match the same requests"},
		{"default on the host-less virtual host", func(s *Snapshot) {
			s.VirtualHosts[0].Default = s.VirtualHosts[2].Default
		}, "host-less default is Snapshot.CatchAll"},
		{"default not on /", func(s *Snapshot) { s.VirtualHosts[2].Default.Path = "/x" }, `want Prefix "/"`},
		{"catch-all Exact", func(s *Snapshot) { s.CatchAll.PathType = PathExact }, `want Prefix "/"`},
		{"default reuses route ID", func(s *Snapshot) { s.VirtualHosts[2].Default.ID = s.VirtualHosts[0].Routes[0].ID }, "also a rule route ID"},
		{"unsorted backends", func(s *Snapshot) { s.Backends[0], s.Backends[1] = s.Backends[1], s.Backends[0] }, "not sorted"},
		{"unsorted endpoints", func(s *Snapshot) {
			e := s.Backends[1].Endpoints
			e[0], e[2] = e[2], e[0]
		}, "not sorted"},
		{"duplicate endpoint", func(s *Snapshot) { s.Backends[1].Endpoints[1].Port = 8080 }, "not sorted and unique"},
		{"port zero", func(s *Snapshot) { s.Backends[1].Endpoints[0].Port = 0 }, "port out of range"},
		{"empty address", func(s *Snapshot) { s.Backends[1].Endpoints[0].Address = "" }, "empty address"},
		{"ExternalName without its endpoint", func(s *Snapshot) { s.Backends[0].Endpoints = nil }, "exactly one endpoint"},
		{"unsorted certificates", func(s *Snapshot) {
			s.Certificates[0], s.Certificates[1] = s.Certificates[1], s.Certificates[0]
		}, "not sorted"},
		{"unsorted certificate hosts", func(s *Snapshot) {
			h := s.Certificates[0].Hosts
			h[0], h[1] = h[1], h[0]
		}, "not sorted"},
		{"invalid certificate host", func(s *Snapshot) { s.Certificates[1].Hosts[0] = "" }, "lower-case DNS"},
		{"host on two certificates", func(s *Snapshot) { s.Certificates[1].Hosts[0] = "a.example.com" }, "already served"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := validSnapshot()
			tt.mutate(s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	var nilSnapshot *Snapshot
	if nilSnapshot.Validate() == nil {
		t.Error("nil snapshot validated")
	}
}

func TestMatchedAs(t *testing.T) {
	for in, want := range map[PathType]PathType{
		PathExact:                  PathExact,
		PathPrefix:                 PathPrefix,
		PathImplementationSpecific: PathPrefix,
		"Regex":                    "Regex",
	} {
		if got := in.MatchedAs(); got != want {
			t.Errorf("%q.MatchedAs() = %q, want %q", in, got, want)
		}
	}
}

// TestRoutePrecedence pins the order from the Ingress API: the longer path
// string first, then Exact, Prefix, ImplementationSpecific, then by ID, with
// unknown types last.
func TestRoutePrecedence(t *testing.T) {
	want := []Route{
		{ID: "e", Path: "/foo/", PathType: PathPrefix},
		{ID: "a", Path: "/foo", PathType: PathExact},
		{ID: "b", Path: "/foo", PathType: PathPrefix},
		{ID: "c", Path: "/bar", PathType: PathPrefix},
		{ID: "a", Path: "/bar", PathType: PathImplementationSpecific},
		{ID: "d", Path: "/foo", PathType: "Regex"},
		{ID: "f", Path: "/", PathType: PathExact},
	}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, func(a, b Route) int { return RoutePrecedence(&a, &b) })
	if !slices.Equal(got, want) {
		t.Errorf("sorted:\n%v\nwant:\n%v", got, want)
	}
	for i := range want {
		if c := RoutePrecedence(&want[i], &want[i]); c != 0 {
			t.Errorf("RoutePrecedence(%v, itself) = %d, want 0", want[i], c)
		}
	}
}

func TestCompareEndpoints(t *testing.T) {
	want := []Endpoint{
		{Address: "10.0.0.1", Port: 80},
		{Address: "10.0.0.1", Port: 8080},
		{Address: "10.0.0.10", Port: 1},
		{Address: "10.0.0.2", Port: 65535},
		{Address: "api.example.org", Port: 443},
	}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, CompareEndpoints)
	if !slices.Equal(got, want) {
		t.Errorf("sorted: %v, want %v", got, want)
	}
	if c := CompareEndpoints(want[0], want[0]); c != 0 {
		t.Errorf("CompareEndpoints(e, e) = %d, want 0", c)
	}
}
