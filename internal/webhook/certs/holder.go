package certs

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// Holder holds the serving certificate. It is safe for concurrent use.
type Holder struct {
	cert atomic.Pointer[tls.Certificate]

	mu   sync.Mutex
	hash [sha256.Size]byte // of the PEM pair last set by SetPEM
}

// errNoCertificate fails handshakes until the first certificate is ready.
var errNoCertificate = errors.New("webhook: no serving certificate yet")

// GetCertificate is a tls.Config GetCertificate function: every handshake
// gets the current certificate.
func (h *Holder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := h.cert.Load()
	if c == nil {
		return nil, errNoCertificate
	}
	return c, nil
}

// Current returns the certificate being served, or nil.
func (h *Holder) Current() *tls.Certificate { return h.cert.Load() }

// SetPEM parses a PEM certificate (chain) and key and serves them from the
// next handshake on. It reports whether they differ from the pair set
// before; an unchanged pair is not parsed again.
func (h *Holder) SetPEM(certPEM, keyPEM []byte) (bool, error) {
	hash := pairHash(certPEM, keyPEM)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cert.Load() != nil && hash == h.hash {
		return false, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("parse certificate and key: %w", err)
	}
	h.cert.Store(&pair)
	h.hash = hash
	return true, nil
}

// Differs reports whether a PEM pair differs from the one served (or
// nothing is served yet).
func (h *Holder) Differs(certPEM, keyPEM []byte) bool {
	hash := pairHash(certPEM, keyPEM)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cert.Load() == nil || hash != h.hash
}

func pairHash(certPEM, keyPEM []byte) [sha256.Size]byte {
	sum := sha256.New()
	sum.Write(certPEM)
	sum.Write([]byte{0})
	sum.Write(keyPEM)
	var hash [sha256.Size]byte
	sum.Sum(hash[:0])
	return hash
}

// logLoaded logs a newly served certificate.
func logLoaded(log *slog.Logger, h *Holder, from string) {
	if c := h.Current(); c != nil && c.Leaf != nil {
		log.Info("webhook serving certificate loaded", "from", from, "notAfter", c.Leaf.NotAfter, "dnsNames", c.Leaf.DNSNames, "ipAddresses", c.Leaf.IPAddresses)
	}
}
