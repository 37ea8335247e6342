// Package upstream holds the data plane's runtime view of backends: the
// endpoint set of each backend and the state that must outlive a routing
// snapshot, such as the round-robin cursor and connect-failure cooldowns.
//
// A Registry keys that state by backend ID, so publishing a new snapshot
// (Registry.Sync) or a new endpoint list for one backend
// (Registry.SetEndpoints) keeps the balancing state of every backend that
// still exists. Endpoint sets are immutable and swapped atomically, so
// Backend.Pick, which runs on every proxied request, takes no lock and does
// not allocate.
package upstream
