package translate

import (
	"fmt"

	"github.com/torii-dev/torii/internal/model"
)

// Reasons for problems that exclude one route of an otherwise served Ingress.
const (
	reasonRuleConflict           = "RuleConflict"
	reasonDefaultBackendConflict = "DefaultBackendConflict"
)

// routeKey identifies what two routes may not both serve: the same host and
// canonical path, matched the same way. ImplementationSpecific is keyed as
// Prefix (model.PathType.MatchedAs) because the router matches it exactly
// like Prefix; keyed apart, the two would coexist and the newer Prefix route
// would silently take all the traffic of an older ImplementationSpecific one.
type routeKey struct {
	host    string
	matchAs model.PathType
	path    string
}

// claim remembers which Ingress path won a routeKey.
type claim struct {
	owner    *ingress
	loc      loc
	id       string
	pathType model.PathType
}

// routes merges the paths of the valid Ingresses into virtual hosts and
// settles conflicts. valid is sorted oldest first, and paths within an
// Ingress are in spec order, so the first claim of a key is the winner.
func (b *builder) routes(valid []*ingress) {
	n := 0
	for _, in := range valid {
		n += len(in.paths)
	}
	claims := make(map[routeKey]claim, n)
	for _, in := range valid {
		// Every reference is resolved, even one whose route loses below: a
		// missing Service is worth knowing about either way.
		var reported map[string]struct{}
		for i := range in.paths {
			b.checkBackend(in, &in.paths[i].backend, &reported)
		}
		if in.defaultBackend != nil {
			b.checkBackend(in, in.defaultBackend, &reported)
		}

		for _, h := range in.hosts {
			b.vhost(h)
		}
		for i := range in.paths {
			p := &in.paths[i]
			key := routeKey{host: p.host, matchAs: p.pathType.MatchedAs(), path: p.path}
			if w, taken := claims[key]; taken {
				written := quote(p.raw)
				if p.raw != p.path {
					written += " (canonically " + quote(p.path) + ")"
				}
				where := "without a host"
				if p.host != "" {
					where = "on host " + quote(p.host)
				}
				why := ""
				if w.pathType != p.pathType {
					// Only ImplementationSpecific and Prefix differ yet
					// share a key; say why they collide.
					why = "; ImplementationSpecific and Prefix paths are matched alike"
				}
				b.fail(in, reasonRuleConflict, fmt.Sprintf("%s: %s path %s %s is already served by %s%s",
					p.loc, p.pathType, written, where, winner(in, w.owner, w.loc.String(), w.id), why))
				continue
			}
			claims[key] = claim{owner: in, loc: p.loc, id: p.id, pathType: p.pathType}
			vh := b.vhost(p.host)
			vh.routes = append(vh.routes, model.Route{
				ID:        p.id,
				Path:      p.path,
				PathType:  p.pathType,
				BackendID: p.backend.id,
				Source:    in.ref,
			})
			b.used[p.backend.id] = struct{}{}
		}

		if in.defaultBackend == nil {
			continue
		}
		route := &model.Route{
			ID:        in.id + "/defaultBackend",
			Path:      "/",
			PathType:  model.PathPrefix,
			BackendID: in.defaultBackend.id,
			Source:    in.ref,
		}
		if len(in.obj.Spec.Rules) == 0 {
			b.claimCatchAll(in, route, "the catch-all default backend")
			continue
		}
		for _, h := range in.hosts {
			if h == "" {
				b.claimCatchAll(in, route, "as the default for rules without a host, the catch-all default backend")
				continue
			}
			vh := b.vhost(h)
			if vh.def != nil {
				b.fail(in, reasonDefaultBackendConflict, fmt.Sprintf("spec.defaultBackend: the default backend of host %s is already served by %s",
					quote(h), winner(in, vh.defaultOwner, "spec.defaultBackend", vh.def.ID)))
				continue
			}
			vh.def, vh.defaultOwner = route, in
			b.used[route.BackendID] = struct{}{}
		}
	}
}

// claimCatchAll gives the catch-all slot to route unless an older Ingress
// holds it. Both an Ingress without rules and one with rules without a host
// compete for it: either defaultBackend would serve requests for hosts no
// rule names, so only one of them can, as in ingress-nginx, where both set
// the default location of the one catch-all server and the oldest wins. The
// host-less virtual host therefore gets no Default of its own and falls
// through to the catch-all. what names the slot in the loser's message.
func (b *builder) claimCatchAll(in *ingress, route *model.Route, what string) {
	if b.catchAll != nil {
		b.fail(in, reasonDefaultBackendConflict, fmt.Sprintf("spec.defaultBackend: %s is already served by %s",
			what, winner(in, b.catchAllOwner, "spec.defaultBackend", b.catchAll.ID)))
		return
	}
	b.catchAll, b.catchAllOwner = route, in
	b.used[route.BackendID] = struct{}{}
}

// vhost returns the virtual host for host, creating it. A host named by a
// rule gets a virtual host even without paths: the Ingress claims the host,
// so its requests must not fall through to the host-less rules.
func (b *builder) vhost(host string) *vhost {
	vh := b.hosts[host]
	if vh == nil {
		vh = &vhost{routes: []model.Route{}}
		b.hosts[host] = vh
	}
	return vh
}

// checkBackend resolves ref and reports a problem with it once per Ingress
// and backend, naming the first field that refers to it.
// The set of reported IDs is only allocated once there is something to
// report.
func (b *builder) checkBackend(in *ingress, ref *backendRef, reported *map[string]struct{}) {
	r := b.resolve(in.ref.Namespace, ref)
	if r.reason == "" {
		return
	}
	if _, done := (*reported)[ref.id]; done {
		return
	}
	if *reported == nil {
		*reported = make(map[string]struct{})
	}
	(*reported)[ref.id] = struct{}{}
	field := ref.nameField()
	if r.onPort {
		field = ref.portField()
	}
	b.warn(in, r.reason, field+": "+r.detail)
}

// winner describes who beat loser to something, and why, for a conflict
// message. field names the winning field; routeID, if set, the winning
// route.
func winner(loser, owner *ingress, field, routeID string) string {
	if owner == loser {
		return field + " of this Ingress, which comes first"
	}
	what := field
	if routeID != "" {
		what = "route " + routeID
	}
	if owner.obj.CreationTimestamp.Equal(&loser.obj.CreationTimestamp) {
		return fmt.Sprintf("Ingress %s/%s (%s), which is as old and sorts first by namespace/name", owner.ref.Namespace, owner.ref.Name, what)
	}
	return fmt.Sprintf("Ingress %s/%s (%s), which is older", owner.ref.Namespace, owner.ref.Name, what)
}
