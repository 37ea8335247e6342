// Package router compiles a model.Snapshot into an immutable lookup table and
// matches requests against it without allocating.
//
// Matching follows networking.k8s.io/v1 exactly. The virtual host is chosen
// first: an exact host (case-insensitive, port and one trailing dot stripped)
// beats a wildcard "*.suffix", which covers exactly one extra non-empty
// label, and the host-less virtual host takes what neither claims. Once a
// virtual host is chosen the request never falls through to another one.
// Within it, Exact routes compare bytes and Prefix and ImplementationSpecific
// routes compare '/'-separated elements; the longest route path as written
// wins, then Exact over Prefix over ImplementationSpecific, then the order of
// VirtualHost.Routes. A request no route takes goes to the virtual host's
// Default, else to the snapshot's CatchAll, else nowhere (404).
//
// Compile computes all precedence itself and relies on no ordering in the
// snapshot. Where the snapshot breaks its own contract, Compile degrades
// predictably rather than failing: a host listed twice is served by its first
// entry, a wildcard with an empty suffix and a route with an unknown path type
// never match, and a route naming an unknown backend gets Backend -1.
//
// The lookup structures are an exact-host map, a wildcard map keyed by the
// part after the first label, and per virtual host one map from path key to
// the best Exact and best Prefix route for that key, plus a bitset of the key
// lengths present. A request path is then resolved with one map lookup per
// '/'-boundary whose length some key has, longest first, stopping as soon as
// no shorter key could win. Host names are lower-cased into a stack buffer, so
// Match never touches the heap.
package router
