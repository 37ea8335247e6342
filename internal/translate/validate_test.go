package translate

import (
	"strings"
	"testing"

	"github.com/torii-dev/torii/internal/model"
)

// These tests cover model.Snapshot.Validate. They live here because the
// translator is what Validate guards, and its golden and fuzz tests are
// where snapshots come from.

func validSnapshot() *model.Snapshot {
	src := model.ObjectRef{Kind: "Ingress", Namespace: "default", Name: "web"}
	route := func(id, path string, pt model.PathType) model.Route {
		return model.Route{ID: id, Path: path, PathType: pt, BackendID: "default/web:80", Source: src}
	}
	def := route("ingress/default/web/defaultBackend", "/", model.PathPrefix)
	return &model.Snapshot{
		VirtualHosts: []model.VirtualHost{
			{Host: "", Routes: []model.Route{route("ingress/default/web/rule/1/path/0", "/", model.PathPrefix)}},
			{Host: "*.example.com", Routes: []model.Route{}},
			{
				Host: "a.example.com",
				Routes: []model.Route{
					route("ingress/default/web/rule/0/path/2", "/foo/", model.PathPrefix),
					route("ingress/default/web/rule/0/path/1", "/foo", model.PathExact),
					route("ingress/default/web/rule/0/path/0", "/foo", model.PathPrefix),
					route("ingress/default/web/rule/0/path/3", "/foo", model.PathImplementationSpecific),
				},
				Default: &def,
			},
		},
		CatchAll: &model.Route{ID: "ingress/default/fallback/defaultBackend", Path: "/", PathType: model.PathPrefix, BackendID: "default/ext:80"},
		Backends: []model.Backend{
			{ID: "default/ext:80", ExternalName: "api.example.org", Endpoints: []model.Endpoint{{Address: "api.example.org", Port: 80}}},
			{ID: "default/web:80", Endpoints: []model.Endpoint{{Address: "10.0.0.1", Port: 8080}, {Address: "10.0.0.1", Port: 8081}, {Address: "10.0.0.2", Port: 8080}}},
		},
		Certificates: []model.Certificate{
			{ID: "default/a", Hosts: []string{"*.example.com", "a.example.com"}},
			{ID: "default/b", Hosts: []string{"b.example.com"}},
		},
	}
}

func TestValidateAcceptsValid(t *testing.T) {
	if err := validSnapshot().Validate(); err != nil {
		t.Fatal(err)
	}
	empty := &model.Snapshot{}
	if err := empty.Validate(); err != nil {
		t.Errorf("empty snapshot with nil slices: %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(s *model.Snapshot)
		want   string
	}{
		{"unsorted hosts", func(s *model.Snapshot) {
			s.VirtualHosts[1], s.VirtualHosts[2] = s.VirtualHosts[2], s.VirtualHosts[1]
		}, "not sorted"},
		{"duplicate host", func(s *model.Snapshot) { s.VirtualHosts[1].Host = "a.example.com" }, "not sorted and unique"},
		{"upper-case host", func(s *model.Snapshot) { s.VirtualHosts[2].Host = "b.Example.com" }, "lower-case"},
		{"IP host", func(s *model.Snapshot) { s.VirtualHosts[2].Host = "10.0.0.1" }, "lower-case DNS"},
		{"bad wildcard", func(s *model.Snapshot) { s.VirtualHosts[1].Host = "*" }, "lower-case DNS"},
		{"host with port", func(s *model.Snapshot) { s.VirtualHosts[2].Host = "a.example.com:80" }, "lower-case DNS"},
		{"unknown backend", func(s *model.Snapshot) { s.VirtualHosts[0].Routes[0].BackendID = "default/gone:80" }, "not in the snapshot"},
		{"relative path", func(s *model.Snapshot) { s.VirtualHosts[0].Routes[0].Path = "foo" }, "start with '/'"},
		{"dot segment", func(s *model.Snapshot) { s.VirtualHosts[0].Routes[0].Path = "/a/../b" }, "not canonical"},
		{"lower-case escape", func(s *model.Snapshot) { s.VirtualHosts[0].Routes[0].Path = "/a%2fb" }, "not canonical"},
		{"unknown path type", func(s *model.Snapshot) { s.VirtualHosts[0].Routes[0].PathType = "Regex" }, "unknown path type"},
		{"empty route ID", func(s *model.Snapshot) { s.VirtualHosts[0].Routes[0].ID = "" }, "empty ID"},
		{"duplicate route ID", func(s *model.Snapshot) {
			s.VirtualHosts[0].Routes[0].ID = s.VirtualHosts[2].Routes[0].ID
		}, "not unique"},
		{"precedence by length", func(s *model.Snapshot) {
			r := s.VirtualHosts[2].Routes
			r[0], r[1] = r[1], r[0]
		}, "precedence"},
		{"precedence by type", func(s *model.Snapshot) {
			r := s.VirtualHosts[2].Routes
			r[1], r[2] = r[2], r[1]
		}, "precedence"},
		{"default not on /", func(s *model.Snapshot) { s.VirtualHosts[2].Default.Path = "/x" }, `want Prefix "/"`},
		{"catch-all Exact", func(s *model.Snapshot) { s.CatchAll.PathType = model.PathExact }, `want Prefix "/"`},
		{"default reuses route ID", func(s *model.Snapshot) { s.VirtualHosts[2].Default.ID = s.VirtualHosts[0].Routes[0].ID }, "also a rule route ID"},
		{"unsorted backends", func(s *model.Snapshot) { s.Backends[0], s.Backends[1] = s.Backends[1], s.Backends[0] }, "not sorted"},
		{"unsorted endpoints", func(s *model.Snapshot) {
			e := s.Backends[1].Endpoints
			e[0], e[2] = e[2], e[0]
		}, "not sorted"},
		{"duplicate endpoint", func(s *model.Snapshot) { s.Backends[1].Endpoints[1].Port = 8080 }, "not sorted and unique"},
		{"port zero", func(s *model.Snapshot) { s.Backends[1].Endpoints[0].Port = 0 }, "port out of range"},
		{"empty address", func(s *model.Snapshot) { s.Backends[1].Endpoints[0].Address = "" }, "empty address"},
		{"ExternalName without its endpoint", func(s *model.Snapshot) { s.Backends[0].Endpoints = nil }, "exactly one endpoint"},
		{"unsorted certificates", func(s *model.Snapshot) {
			s.Certificates[0], s.Certificates[1] = s.Certificates[1], s.Certificates[0]
		}, "not sorted"},
		{"unsorted certificate hosts", func(s *model.Snapshot) {
			h := s.Certificates[0].Hosts
			h[0], h[1] = h[1], h[0]
		}, "not sorted"},
		{"invalid certificate host", func(s *model.Snapshot) { s.Certificates[1].Hosts[0] = "" }, "lower-case DNS"},
		{"host on two certificates", func(s *model.Snapshot) { s.Certificates[1].Hosts[0] = "a.example.com" }, "already served"},
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
	var nilSnapshot *model.Snapshot
	if nilSnapshot.Validate() == nil {
		t.Error("nil snapshot validated")
	}
}
