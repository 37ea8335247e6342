// Package defaults holds the configuration defaults the proxy and the HTTP/1
// fast path share, so that both apply the same values to zero Config fields.
package defaults
