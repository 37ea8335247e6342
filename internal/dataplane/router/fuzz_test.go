package router

import (
	"fmt"
	"strings"
	"testing"

	"github.com/torii-dev/torii/internal/model"
)

// The reference matcher below restates the rules as directly as possible:
// linear scans, allocation, no precomputation. FuzzMatch checks that the
// compiled table agrees with it on every request.

// refHostName is the reference for host normalisation.
func refHostName(host string) (string, bool) {
	if strings.HasPrefix(host, "[") {
		return "", false // IP literal
	}
	name, port, _ := strings.Cut(host, ":")
	if strings.Trim(port, "0123456789") != "" {
		return "", false
	}
	name = refLower(strings.TrimSuffix(name, "."))
	if len(name) > 253 {
		return "", false
	}
	return name, true
}

func refLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// refLowerBytes folds ASCII letters only and never rewrites other bytes, as
// strings.Map would for invalid UTF-8.
func refLowerBytes(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func refVirtualHost(s *model.Snapshot, host string) *model.VirtualHost {
	name, ok := refHostName(host)
	if ok && name != "" {
		name = refLowerBytes(name)
		for i := range s.VirtualHosts {
			h := refLowerBytes(s.VirtualHosts[i].Host)
			if h != "" && !strings.HasPrefix(h, "*.") && h == name {
				return &s.VirtualHosts[i]
			}
		}
		first, rest, found := strings.Cut(name, ".")
		if found && first != "" && rest != "" {
			for i := range s.VirtualHosts {
				h := refLowerBytes(s.VirtualHosts[i].Host)
				if h == "*."+rest {
					return &s.VirtualHosts[i]
				}
			}
		}
	}
	for i := range s.VirtualHosts {
		if s.VirtualHosts[i].Host == "" {
			return &s.VirtualHosts[i]
		}
	}
	return nil
}

func refRouteMatches(r *model.Route, path string) bool {
	switch r.PathType {
	case model.PathExact:
		return r.Path == path
	case model.PathPrefix, model.PathImplementationSpecific:
		if r.Path == "/" {
			return true
		}
		p := strings.TrimSuffix(r.Path, "/")
		return path == p || strings.HasPrefix(path, p+"/")
	}
	return false
}

func refTypeRank(t model.PathType) int {
	return map[model.PathType]int{model.PathExact: 0, model.PathPrefix: 1, model.PathImplementationSpecific: 2}[t]
}

func refMatch(s *model.Snapshot, host, path string) (*model.Route, int) {
	var r *model.Route
	if vh := refVirtualHost(s, host); vh != nil {
		for i := range vh.Routes {
			c := &vh.Routes[i]
			if !refRouteMatches(c, path) {
				continue
			}
			if r == nil || len(c.Path) > len(r.Path) ||
				len(c.Path) == len(r.Path) && refTypeRank(c.PathType) < refTypeRank(r.PathType) {
				r = c
			}
		}
		if r == nil {
			r = vh.Default
		}
	}
	if r == nil {
		r = s.CatchAll
	}
	if r == nil {
		return nil, -1
	}
	for i := range s.Backends {
		if s.Backends[i].ID == r.BackendID {
			return r, i
		}
	}
	return r, -1
}

// Small alphabets make collisions between snapshot and requests likely.
var (
	fuzzSnapshotHosts = []string{
		"", "a.com", "A.com", "b.a.com", "*.a.com", "*.A.com", "*.b.a.com", "*.com", "*.", "*",
		"c.b.a.com", "[::1]", "10.0.0.1", "*.0.0.1",
	}
	fuzzRoutePaths = []string{
		"/", "", "/a", "/a/", "/a/b", "/a/b/", "/ab", "//", "/a//", "/A", "/b/", "a", "/a/b/c",
	}
	fuzzPathTypes = []model.PathType{
		model.PathExact, model.PathPrefix, model.PathImplementationSpecific, "Regex",
	}
	fuzzBackendIDs = []string{"b0", "b1", "b2", "missing"}
	fuzzHosts      = []string{
		"a.com", "A.COM:8443", "a.com.", "b.a.com", "x.a.com:80", "x.b.a.com", "y.x.b.a.com",
		".a.com", "a.com..", "[::1]:80", "[::1]", "", ":80", "a.com:x", "com", "*", "*.a.com",
		"a.com.:1", "*..", "x.", "10.0.0.1:80", "1.0.0.1", "::1",
	}
	fuzzPaths = []string{
		"/", "", "/a", "/a/", "/a/b", "/a/b/", "/ab", "//", "/a//b", "/A", "/a/b/c", "/b", "a",
		"/a/bc", "/b/", "/a//",
	}
)

// fuzzReader hands out fuzz bytes, then zeros.
type fuzzReader []byte

func (r *fuzzReader) next() int {
	if len(*r) == 0 {
		return 0
	}
	c := (*r)[0]
	*r = (*r)[1:]
	return int(c)
}

func pick[T any](r *fuzzReader, from []T) T { return from[r.next()%len(from)] }

func fuzzRoute(r *fuzzReader, id string) model.Route {
	return model.Route{
		ID:        id,
		Path:      pick(r, fuzzRoutePaths),
		PathType:  pick(r, fuzzPathTypes),
		BackendID: pick(r, fuzzBackendIDs),
	}
}

func fuzzSnapshot(r *fuzzReader) *model.Snapshot {
	s := &model.Snapshot{}
	for i := range r.next() % 6 {
		vh := model.VirtualHost{Host: pick(r, fuzzSnapshotHosts)}
		for j := range r.next() % 8 {
			vh.Routes = append(vh.Routes, fuzzRoute(r, fmt.Sprintf("v%d/r%d", i, j)))
		}
		if r.next()%3 == 0 {
			d := fuzzRoute(r, fmt.Sprintf("v%d/default", i))
			vh.Default = &d
		}
		s.VirtualHosts = append(s.VirtualHosts, vh)
	}
	if r.next()%2 == 0 {
		c := fuzzRoute(r, "catchAll")
		s.CatchAll = &c
	}
	for range r.next() % 4 {
		s.Backends = append(s.Backends, model.Backend{ID: pick(r, fuzzBackendIDs)})
	}
	return s
}

func FuzzMatch(f *testing.F) {
	f.Add([]byte{}, "a.com", "/")
	f.Add([]byte{3, 1, 3, 1, 2, 1, 0, 1, 1, 2, 1, 2, 0, 0, 7, 3, 4, 2, 1}, "A.COM:8443", "/a/b")
	f.Add([]byte{5, 4, 6, 0, 1, 0, 3, 1, 1, 3, 2, 0, 2, 5, 5, 1, 1, 9, 2, 2}, "x.a.com", "/a/")
	f.Add([]byte("\x05\x02\x07\x01\x01\x01\x02\x03\x02\x04\x01\x05\x00\x06\x02\x07\x01"), "[::1]:80", "//")
	f.Fuzz(func(t *testing.T, data []byte, host, path string) {
		r := fuzzReader(data)
		s := fuzzSnapshot(&r)
		tbl := Compile(s)
		check := func(host, path string) {
			wantRoute, wantBackend := refMatch(s, host, path)
			got := tbl.Match(host, path)
			switch {
			case got == nil && wantRoute == nil:
			case got == nil:
				t.Fatalf("Match(%q, %q) = nil, want %s", host, path, wantRoute.ID)
			case got.Route != wantRoute || got.Backend != wantBackend:
				want := "nil"
				if wantRoute != nil {
					want = wantRoute.ID
				}
				t.Fatalf("Match(%q, %q) = {%s, %d}, want {%s, %d}\nsnapshot: %+v",
					host, path, got.Route.ID, got.Backend, want, wantBackend, s)
			}
		}
		check(host, path)
		for _, h := range fuzzHosts {
			for _, p := range fuzzPaths {
				check(h, p)
			}
		}
		for range 8 {
			check(pick(&r, fuzzHosts), path)
			check(host, pick(&r, fuzzPaths))
		}
	})
}
