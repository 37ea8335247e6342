// Package translate compiles the Kubernetes objects Torii owns into a routing
// model.Snapshot and a list of problems found on the way.
//
// Build is a pure function: no I/O, no clock, no goroutines, no logging. It
// never panics and never modifies its input, and for the same input it
// returns the same result, whatever the order of the objects in the input
// slices (should a view ever hold two objects of one kind and name, the
// first one counts). The controller, the admission webhook and the `torii check` command
// all call it, so one bad object is reported identically everywhere and never
// stops the others from being served.
//
// The semantics follow networking.k8s.io/v1 and the behaviour ingress-nginx
// users rely on: class selection by IngressClass, legacy annotation or default
// class; rules merged per host across Ingresses; the oldest Ingress winning
// any conflict; defaultBackend as a per-host fallback or, for an Ingress
// without rules, as the cluster-wide catch-all; TLS certificates from Secrets
// selected by SNI.
package translate
