package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certFiles is the one ECDSA P-256 certificate every TLS listener serves.
type certFiles struct {
	CertPEM, KeyPEM []byte
	CertPath        string // certificate
	KeyPath         string // private key
	BundlePath      string // certificate followed by key (HAProxy's crt)
	DER             []byte // leaf, to check what a listener presents
}

// benchHost is the certificate's name (also 127.0.0.1 as an IP SAN).
const benchHost = "bench.local"

func makeCert(dir string) (*certFiles, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: benchHost},
		DNSNames:              []string{benchHost},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	c := &certFiles{
		CertPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		CertPath:   filepath.Join(dir, "cert.pem"),
		KeyPath:    filepath.Join(dir, "key.pem"),
		BundlePath: filepath.Join(dir, "bundle.pem"),
		DER:        der,
	}
	for path, data := range map[string][]byte{
		c.CertPath:   c.CertPEM,
		c.KeyPath:    c.KeyPEM,
		c.BundlePath: append(append([]byte{}, c.CertPEM...), c.KeyPEM...),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return c, nil
}
