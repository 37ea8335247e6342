// Package kube is the Kubernetes source: client-go shared informers on
// IngressClass, Ingress, Service, EndpointSlice and Secret objects, feeding
// complete views to Torii's pure translator.
//
// A Source runs one SharedInformerFactory per watched namespace (or one for
// the whole cluster) plus a cluster-wide one for IngressClasses, which are
// cluster-scoped. Every view is built from the informers' caches alone,
// never by a GET, and only after every cache has synced, so the caller
// never sees an empty or partial cluster.
//
// Changes reach the caller through two lanes, as docs/design.md describes:
//
//   - IngressClass, Ingress, Service and TLS Secret changes are coalesced
//     (debounced, with a cap for steady streams) into Handler.Rebuild with
//     the full view;
//   - EndpointSlice changes are coalesced the same way into
//     Handler.Endpoints with the full view and the Services whose slices
//     changed, so only those backends' endpoints are recomputed. A pending
//     Rebuild absorbs pending endpoint changes, since it covers them.
//
// Memory: a transform drops managedFields and the kubectl
// last-applied-configuration annotation from every object before it is
// cached, Secrets are listed with a field selector so only
// kubernetes.io/tls Secrets are ever fetched, and of those only the
// tls.crt and tls.key data are kept.
//
// Views hold the cached objects themselves, not copies: they are shared
// with the informers and with every other view, and must never be
// modified. An informer replaces an object on update rather than changing
// it, so an old view stays valid and unchanged.
//
// Two variants serve dedicated mode (docs/dedicated.md). Config.Only
// scopes a Source to a few named Ingresses of one namespace, for the
// per-Ingress proxies: one name-selected Ingress informer each, that
// namespace's Services, EndpointSlices and TLS Secrets, and a fixed
// IngressClass instead of an informer. Config.Extra adds informers the
// Source runs and waits for, whose changes start a Rebuild (the
// controller's IngressClassConfigs).
//
// When the API server is unreachable the informers keep their caches and
// retry on their own; nothing is delivered until something really changes.
// A relist after reconnecting that finds the same resourceVersions causes
// no call.
package kube
