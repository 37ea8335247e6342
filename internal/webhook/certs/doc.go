// Package certs provides the admission webhook's serving certificate
// without extra tooling.
//
// Holder serves the current certificate to the TLS listener and can be
// swapped at any time (rotation without restart). Files keeps it loaded from
// a certificate and key file that something else renews, such as a
// cert-manager Certificate mounted as a Secret volume. Bootstrap makes the
// certificate itself: a CA and a serving certificate (ECDSA P-256; 10 years
// and 1 year), stored in one kubernetes.io/tls Secret with the CA in
// ca.crt, renewed when less than 30 days remain, with the CA written into
// the caBundle of every webhook of the ValidatingWebhookConfiguration
// before a renewed certificate is served. It
// replaces the two Jobs (create and patch) ingress-nginx used for the same
// purpose.
//
// Nothing here writes files; Bootstrap talks to the API server only, and
// only about its one Secret and its one ValidatingWebhookConfiguration.
package certs
