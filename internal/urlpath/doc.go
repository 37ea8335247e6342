// Package urlpath canonicalises URL paths once, so that routing and the
// request forwarded upstream see the very same path.
//
// The canonical form decodes percent-encoded unreserved characters, upper-cases
// every other escape, percent-encodes bytes that may not appear raw in a path,
// merges duplicate slashes and resolves "." and ".." segments. Encoded slashes
// (%2F) and backslashes (%5C) stay encoded and are never separators, so no
// encoding trick can reach a backend through a route it would not match.
package urlpath
