package translate

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/torii-dev/torii/internal/model"
)

// Reasons for TLS problems. They are all Warnings: a host without a usable
// certificate is served with the default certificate and keeps routing.
const (
	reasonInvalidSecretName       = "InvalidSecretName"
	reasonInvalidTLSHost          = "InvalidTLSHost"
	reasonSecretNotFound          = "SecretNotFound"
	reasonInvalidSecret           = "InvalidSecret"
	reasonCertificateHostMismatch = "CertificateHostMismatch"
	reasonTLSConflict             = "TLSConflict"
)

// cert is a Secret parsed once per Build, and the hosts attached to it.
type cert struct {
	id     string
	source model.ObjectRef
	// reason and problem say why the Secret cannot serve; both are empty
	// if it can.
	reason, problem string
	leaf            *x509.Certificate
	// certPEM and keyPEM are copies: the model must not alias store objects.
	certPEM, keyPEM []byte
	hosts           map[string]struct{}
}

// sniClaim remembers which certificate won an SNI host.
type sniClaim struct {
	cert  *cert
	owner *ingress
	field string
}

// tls attaches the valid Ingresses' TLS hosts to certificates. valid is
// sorted oldest first, so the first certificate to claim a host keeps it.
// Only hosts a usable certificate covers take part in conflicts: a broken
// Secret never shadows a working one.
func (b *builder) tls(valid []*ingress) {
	claims := make(map[string]sniClaim)
	for _, in := range valid {
		for k := range in.obj.Spec.TLS {
			entry := &in.obj.Spec.TLS[k]
			field := fmt.Sprintf("spec.tls[%d]", k)
			if entry.SecretName == "" {
				// No Secret: the hosts are served with the default
				// certificate ("TLS routing based on SNI alone").
				continue
			}
			if strings.Contains(entry.SecretName, "/") {
				b.warn(in, reasonInvalidSecretName, fmt.Sprintf("%s.secretName %s: must name a Secret in the Ingress's namespace, without '/'",
					field, quote(entry.SecretName)))
				continue
			}
			hosts := b.tlsHosts(in, field, entry.Hosts)
			// The Secret is checked even when no host is left to attach,
			// so that a broken reference never goes unreported.
			c := b.cert(in.ref.Namespace, entry.SecretName)
			if c.problem != "" {
				b.warn(in, c.reason, fmt.Sprintf("%s.secretName %s: Secret %s %s", field, quote(entry.SecretName), c.id, c.problem))
				continue
			}
			for _, h := range hosts {
				if !covers(c.leaf, h.name) {
					b.warn(in, reasonCertificateHostMismatch, fmt.Sprintf("%s: the certificate in Secret %s does not cover %s", h.field, c.id, quote(h.name)))
					continue
				}
				if w, taken := claims[h.name]; taken {
					if w.cert != c {
						b.warn(in, reasonTLSConflict, fmt.Sprintf("%s: host %s is already served with Secret %s by %s",
							h.field, quote(h.name), w.cert.id, winner(in, w.owner, w.field, "")))
					}
					continue
				}
				claims[h.name] = sniClaim{cert: c, owner: in, field: h.field}
				c.hosts[h.name] = struct{}{}
			}
		}
	}
}

// tlsHost is one host of a TLS entry and the field it came from.
type tlsHost struct {
	name  string
	field string
}

// tlsHosts returns the entry's hosts, lower-cased and validated, or, when the
// entry lists none, the hosts of the Ingress's rules (the host-less rules
// have no SNI name and are skipped).
func (b *builder) tlsHosts(in *ingress, field string, listed []string) []tlsHost {
	var out []tlsHost
	seen := make(map[string]struct{})
	if len(listed) == 0 {
		for _, h := range in.hosts {
			if h == "" {
				continue
			}
			out = append(out, tlsHost{name: h, field: field})
		}
		return out
	}
	for i, raw := range listed {
		hfield := fmt.Sprintf("%s.hosts[%d]", field, i)
		h := strings.ToLower(raw)
		if msg := checkHost(h); msg != "" {
			b.warn(in, reasonInvalidTLSHost, fmt.Sprintf("%s %s: %s", hfield, quote(raw), msg))
			continue
		}
		if _, dup := seen[h]; dup {
			continue
		}
		seen[h] = struct{}{}
		out = append(out, tlsHost{name: h, field: hfield})
	}
	return out
}

// cert returns the Secret ns/name parsed as a certificate and key, parsing
// each Secret once per Build.
func (b *builder) cert(ns, name string) *cert {
	id := ns + "/" + name
	if c, ok := b.certs[id]; ok {
		return c
	}
	c := &cert{
		id:     id,
		source: model.ObjectRef{Kind: "Secret", Namespace: ns, Name: name},
		hosts:  make(map[string]struct{}),
	}
	b.certs[id] = c
	s := b.secrets[id]
	switch {
	case s == nil:
		c.reason, c.problem = reasonSecretNotFound, "not found"
		return c
	case len(s.Data[corev1.TLSCertKey]) == 0:
		c.reason, c.problem = reasonInvalidSecret, fmt.Sprintf("has no %q data", corev1.TLSCertKey)
		return c
	case len(s.Data[corev1.TLSPrivateKeyKey]) == 0:
		c.reason, c.problem = reasonInvalidSecret, fmt.Sprintf("has no %q data", corev1.TLSPrivateKeyKey)
		return c
	}
	pair, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err == nil && pair.Leaf == nil {
		pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0])
	}
	if err != nil {
		c.reason, c.problem = reasonInvalidSecret, "does not hold a valid certificate and key: "+quote(err.Error())
		return c
	}
	c.leaf = pair.Leaf
	c.certPEM = bytes.Clone(s.Data[corev1.TLSCertKey])
	c.keyPEM = bytes.Clone(s.Data[corev1.TLSPrivateKeyKey])
	return c
}

// covers reports whether the certificate serves host. An exact name is
// checked as a TLS client would; a wildcard host needs the very same
// wildcard in the certificate, since the client's name is unknown.
func covers(leaf *x509.Certificate, host string) bool {
	if strings.HasPrefix(host, "*.") {
		for _, n := range leaf.DNSNames {
			if strings.EqualFold(n, host) {
				return true
			}
		}
		return false
	}
	return leaf.VerifyHostname(host) == nil
}
