// Package reqmetrics holds the request metric children that the proxy and the
// HTTP/1 fast path both record to, resolved once so that recording never
// allocates or hashes label values, and labelled alike so that a request
// counts the same whichever path served it.
package reqmetrics
