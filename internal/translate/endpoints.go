package translate

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/torii-dev/torii/internal/model"
	"github.com/torii-dev/torii/internal/store"
)

// BackendEndpoints returns the endpoints Build would give backend b, computed
// from objs alone: the endpoint lane's way to refresh one backend after its
// EndpointSlices changed, without rebuilding the snapshot. objs needs to hold
// only b's Service and its EndpointSlices.
//
// ok is false when a rebuild could differ from b in more than its endpoints —
// the Service or its port is gone, or it is an ExternalName Service, whose
// single endpoint comes from the Service — and the caller must rebuild
// instead.
func BackendEndpoints(objs *store.Objects, b model.Backend) (eps []model.Endpoint, ok bool) {
	if b.ExternalName != "" {
		return nil, false
	}
	ref := &backendRef{service: b.Service.Name, id: b.ID}
	// Port names are IANA service names, which always hold a letter, so a
	// port that parses as a number was given as one.
	if n, err := strconv.ParseInt(b.Port, 10, 32); err == nil {
		ref.portNumber = int32(n)
	} else {
		ref.portName = b.Port
	}
	bld := newBuilder(objs)
	svc := bld.services[b.Service.Namespace+"/"+b.Service.Name]
	if svc == nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil, false
	}
	sp := findServicePort(svc, ref)
	if sp == nil {
		return nil, false
	}
	return bld.endpoints(b.Service.Namespace, b.Service.Name, sp.Name), true
}
