package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// Lifetimes of what Generate issues, and when Bootstrap renews.
const (
	CALifetime      = 10 * 365 * 24 * time.Hour
	ServingLifetime = 365 * 24 * time.Hour
	RenewBefore     = 30 * 24 * time.Hour
	// backdate covers clocks a little behind ours.
	backdate = time.Hour
)

// Bundle is a serving certificate, its key and the CA that signed it, PEM
// encoded: the tls.crt, tls.key and ca.crt of a kubernetes.io/tls Secret.
type Bundle struct {
	CACert, Cert, Key []byte
}

// ServiceHosts returns the names the API server uses to reach a webhook
// Service: <service>.<namespace>.svc (the TLS server name it checks) and
// the fully qualified <service>.<namespace>.svc.cluster.local.
func ServiceHosts(service, namespace string) []string {
	base := service + "." + namespace + ".svc"
	return []string{base, base + ".cluster.local"}
}

// Generate issues a new CA and a serving certificate for hosts (DNS names
// or IP addresses), both ECDSA P-256, valid from now (backdated an hour)
// for CALifetime and ServingLifetime.
func Generate(hosts []string, now time.Time) (Bundle, error) {
	if len(hosts) == 0 {
		return Bundle{}, errors.New("no host names for the serving certificate")
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "torii-webhook-ca"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CALifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Bundle{}, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Bundle{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(ServingLifetime),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return Bundle{}, fmt.Errorf("create serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Bundle{}, err
	}
	return Bundle{
		CACert: pemBlock("CERTIFICATE", caDER),
		Cert:   pemBlock("CERTIFICATE", der),
		Key:    pemBlock("PRIVATE KEY", keyDER),
	}, nil
}

// Check returns why b cannot serve hosts from now until renewBefore from
// now, or "" if it can: the pair must parse and match, the certificate must
// chain to the CA for server authentication, cover every host, and neither
// it nor the CA may expire within renewBefore.
func Check(b Bundle, hosts []string, now time.Time, renewBefore time.Duration) string {
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return "tls.crt and tls.key are not a certificate and its key: " + err.Error()
	}
	leaf := pair.Leaf
	cas := parseCerts(b.CACert)
	if len(cas) == 0 {
		return "ca.crt holds no certificate"
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return "the certificate does not verify against ca.crt: " + err.Error()
	}
	horizon := now.Add(renewBefore)
	if leaf.NotAfter.Before(horizon) {
		return "the certificate expires at " + leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	for _, c := range cas {
		if c.NotAfter.Before(horizon) {
			return "the CA certificate expires at " + c.NotAfter.UTC().Format(time.RFC3339)
		}
	}
	var missing []string
	for _, h := range hosts {
		if !covers(leaf, h) {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		return "the certificate does not cover " + strings.Join(missing, ", ")
	}
	return ""
}

// covers reports whether leaf names host exactly, as a DNS or IP SAN.
func covers(leaf *x509.Certificate, host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		for _, a := range leaf.IPAddresses {
			if a.Equal(ip) {
				return true
			}
		}
		return false
	}
	for _, n := range leaf.DNSNames {
		if strings.EqualFold(n, host) {
			return true
		}
	}
	return false
}

// parseCerts returns the certificates in a PEM bundle, skipping anything
// else.
func parseCerts(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on supported platforms.
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}
