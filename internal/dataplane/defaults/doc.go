// Package defaults holds the configuration defaults the proxy, the HTTP/1
// fast path and the listener share, so that they apply the same values to
// zero Config fields, and the one rule by which all three renew deadlines
// (RenewSlack).
package defaults
