// Package translate compiles the Kubernetes objects Torii owns into a routing
// model.Snapshot and a list of problems found on the way.
//
// Build is a pure function: no I/O, no clock, no goroutines, no logging. It
// never panics and never modifies its input, and for the same input it
// returns the same result. The order of the objects within the input slices
// does not matter either: every output list is sorted, and every conflict is
// settled by creationTimestamp (unset counts as oldest), then namespace/name,
// then position within the Ingress spec. The one exception is input no store
// produces: a slice holding two objects of one kind with the same namespace
// and name. Build then uses the one that comes first in the slice and ignores
// the other, so for such input swapping the two changes the result. The
// controller, the admission webhook and the `torii check` command all call
// it, so one bad object is reported identically everywhere and never stops
// the others from being served.
//
// The semantics follow networking.k8s.io/v1 and the behaviour ingress-nginx
// users rely on: class selection by IngressClass, legacy annotation or default
// class; rules merged per host across Ingresses; the oldest Ingress winning
// any conflict, with ImplementationSpecific paths conflicting with Prefix ones
// as they are matched alike; defaultBackend as the fallback of the named hosts
// of its Ingress's rules and, for an Ingress without rules or with rules
// without a host, as a candidate for the one cluster-wide catch-all; TLS
// certificates from Secrets selected by SNI. Annotation values are never
// read for routing: a torii.dev/ annotation Torii does not define makes the
// Ingress invalid, and ingress-nginx annotations, not interpreted yet, get
// one Warning that lists them, except those restricting access (auth,
// source ranges, the WAF), which make it invalid: it is never served
// without a restriction it asked for.
package translate
