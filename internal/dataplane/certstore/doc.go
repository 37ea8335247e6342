// Package certstore chooses the TLS certificate for each handshake by the
// client's SNI name.
//
// The certificates come from routing snapshots. Update builds an immutable
// index of them and swaps it in atomically, so a handshake always sees one
// whole snapshot and never waits for a rebuild. Parsed certificates are cached
// by content hash: a snapshot that leaves a Secret unchanged reuses the parsed
// certificate instead of decoding PEM and key again.
//
// Selection is exact name first, then a wildcard "*.suffix" covering exactly
// one extra label, then the default certificate.
package certstore
