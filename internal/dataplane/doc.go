// Package dataplane assembles Torii's data plane — router, upstream
// registry, proxy and certificate store — behind one Apply call that swaps a
// new snapshot in atomically.
//
// Nothing under dataplane imports k8s.io: the data plane is built, tested and
// benchmarked with no cluster.
package dataplane
