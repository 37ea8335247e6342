package controller

import (
	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/translate"
)

// RouteTable is the JSON document served at /debug/routes: the live routing
// table with its backends' current endpoints and the problems found while
// building it (including the losers of rule conflicts).
type RouteTable struct {
	Generation   uint64              `json:"generation"`
	Hosts        []HostRoutes        `json:"hosts"`
	CatchAll     *RouteInfo          `json:"catchAll,omitempty"`
	Certificates []model.Certificate `json:"certificates"`
	Problems     []ProblemInfo       `json:"problems"`
	SourceErrors []string            `json:"sourceErrors,omitempty"`
}

// HostRoutes is one virtual host.
type HostRoutes struct {
	Host    string      `json:"host"`
	Routes  []RouteInfo `json:"routes"`
	Default *RouteInfo  `json:"default,omitempty"`
}

// RouteInfo is one route with its backend resolved.
type RouteInfo struct {
	ID       string         `json:"id"`
	Path     string         `json:"path"`
	PathType model.PathType `json:"pathType"`
	Source   string         `json:"source"`
	Backend  BackendInfo    `json:"backend"`
}

// BackendInfo is a backend with the endpoints it is serving right now.
type BackendInfo struct {
	ID           string   `json:"id"`
	Service      string   `json:"service"`
	Port         string   `json:"port"`
	ExternalName string   `json:"externalName,omitempty"`
	Endpoints    []string `json:"endpoints"`
}

// ProblemInfo is a translate.Problem in JSON.
type ProblemInfo struct {
	Object   string `json:"object"`
	Severity string `json:"severity"`
	Reason   string `json:"reason"`
	Message  string `json:"message"`
}

// DebugRoutes renders the live routing table. sourceErrors are problems of
// the object source (such as manifest files that fail to parse).
func (c *Controller) DebugRoutes(sourceErrors []string) RouteTable {
	out := RouteTable{Hosts: []HostRoutes{}, Certificates: []model.Certificate{}, Problems: []ProblemInfo{}, SourceErrors: sourceErrors}
	// Holding the apply lock makes the routes, the problems and the
	// generation come from one published translation, never a mix of two.
	c.mu.Lock()
	res, live := c.Result(), c.cfg.Dataplane.Live()
	c.mu.Unlock()
	if res == nil || live == nil {
		return out
	}
	s := res.Snapshot
	// Endpoints come from the data plane: the endpoint lane may have
	// updated them since the snapshot was built.
	liveBackends := live.Backends
	out.Generation = s.Generation
	backends := make(map[string]BackendInfo, len(s.Backends))
	for i, b := range s.Backends {
		eps := b.Endpoints
		if i < len(liveBackends) && liveBackends[i] != nil {
			eps = liveBackends[i].Endpoints()
		}
		info := BackendInfo{ID: b.ID, Service: b.Service.Namespace + "/" + b.Service.Name, Port: b.Port, ExternalName: b.ExternalName, Endpoints: make([]string, 0, len(eps))}
		for _, ep := range eps {
			info.Endpoints = append(info.Endpoints, ep.HostPort())
		}
		backends[b.ID] = info
	}
	routeInfo := func(r *model.Route) *RouteInfo {
		if r == nil {
			return nil
		}
		b, ok := backends[r.BackendID]
		if !ok {
			b = BackendInfo{ID: r.BackendID, Endpoints: []string{}}
		}
		return &RouteInfo{ID: r.ID, Path: r.Path, PathType: r.PathType, Source: r.Source.String(), Backend: b}
	}
	for _, vh := range s.VirtualHosts {
		h := HostRoutes{Host: vh.Host, Routes: make([]RouteInfo, 0, len(vh.Routes)), Default: routeInfo(vh.Default)}
		for i := range vh.Routes {
			h.Routes = append(h.Routes, *routeInfo(&vh.Routes[i]))
		}
		out.Hosts = append(out.Hosts, h)
	}
	out.CatchAll = routeInfo(s.CatchAll)
	out.Certificates = append(out.Certificates, s.Certificates...)
	for _, p := range res.Problems {
		out.Problems = append(out.Problems, problemInfo(p))
	}
	return out
}

func problemInfo(p translate.Problem) ProblemInfo {
	return ProblemInfo{Object: p.Object.String(), Severity: string(p.Severity), Reason: p.Reason, Message: p.Message}
}
