// Package status is Torii's output to the Kubernetes API: the addresses it
// publishes in status.loadBalancer of the Ingresses it owns, the writer that
// puts them there, the leader election that makes exactly one replica that
// writer, and the deduplicated Events that report per-object problems.
//
// Status is an output, never an input: the writer applies a desired state,
// skips writes that change nothing (so its own updates cannot feed a rebuild
// loop), retries conflicts against a fresh read, and never overwrites a
// status another controller wrote. external-dns turns these addresses into
// DNS records, so the package prefers keeping a stable address over
// publishing a transient empty or partial one.
package status
