package certstore

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/torii-dev/torii/internal/model"
)

// Store serves TLS certificates chosen by SNI. It is safe for concurrent use:
// GetCertificate never blocks on Update.
type Store struct {
	// defaultCert may be replaced while handshakes read it
	// (--default-ssl-certificate names a Secret that can change).
	defaultCert atomic.Pointer[tls.Certificate]
	index       atomic.Pointer[index]

	// mu serialises Update so that the parse cache has a single writer;
	// handshakes read only the index and never take it.
	mu    sync.Mutex
	cache map[cacheKey]*tls.Certificate
}

// cacheKey identifies a certificate by the hash of its PEM and key bytes.
type cacheKey [sha256.Size]byte

// index is one immutable generation of the SNI lookup tables.
type index struct {
	exact map[string]*tls.Certificate
	// wildcard is keyed by the suffix after "*.", so "*.example.com" is
	// stored under "example.com".
	wildcard map[string]*tls.Certificate
}

// New returns a Store holding no certificates yet. defaultCert is served to
// clients that send no SNI or a name no certificate covers; when it is nil,
// such handshakes fail.
func New(defaultCert *tls.Certificate) *Store {
	s := &Store{cache: map[cacheKey]*tls.Certificate{}}
	s.defaultCert.Store(defaultCert)
	s.index.Store(&index{})
	return s
}

// SetDefault replaces the certificate served when no other matches; nil
// makes unmatched handshakes fail. Handshakes in progress keep the one they
// already picked.
func (s *Store) SetDefault(cert *tls.Certificate) { s.defaultCert.Store(cert) }

// Update swaps in the certificates of a new snapshot. Parsed certificates are
// cached by content hash, so unchanged certificates are not parsed again on
// every snapshot. Entries that fail to parse are skipped and returned as
// errors; translate validated them already, so this is defence in depth and
// the rest of the snapshot is served regardless.
//
// When two certificates claim the same host, the first in certs wins, which
// is deterministic because snapshots list certificates sorted by ID.
func (s *Store) Update(certs []model.Certificate) []error {
	s.mu.Lock()
	defer s.mu.Unlock()

	var errs []error
	// The new cache holds only this snapshot's certificates, so certificates
	// of deleted Secrets do not pile up in memory.
	cache := make(map[cacheKey]*tls.Certificate, len(certs))
	next := &index{
		exact:    map[string]*tls.Certificate{},
		wildcard: map[string]*tls.Certificate{},
	}
	for i := range certs {
		c := &certs[i]
		key := keyOf(c)
		parsed, ok := cache[key]
		if !ok {
			parsed, ok = s.cache[key]
		}
		if !ok {
			var err error
			parsed, err = parse(c)
			if err != nil {
				errs = append(errs, fmt.Errorf("certificate %s: %w", c.ID, err))
				continue
			}
		}
		cache[key] = parsed
		for _, h := range c.Hosts {
			host := normalize(h)
			table := next.exact
			if suffix, ok := strings.CutPrefix(host, "*."); ok {
				if suffix == "" {
					continue
				}
				table, host = next.wildcard, suffix
			}
			if host == "" {
				continue
			}
			if _, taken := table[host]; !taken {
				table[host] = parsed
			}
		}
	}
	s.cache = cache
	s.index.Store(next)
	return errs
}

// keyOf hashes the PEM and key bytes with a length prefix, so that moving
// bytes from one field to the other cannot produce the same key.
func keyOf(c *model.Certificate) cacheKey {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(c.CertPEM)))
	h.Write(n[:])
	h.Write(c.CertPEM)
	h.Write(c.KeyPEM)
	var k cacheKey
	h.Sum(k[:0])
	return k
}

func parse(c *model.Certificate) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		return nil, err
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("no certificate in PEM data")
	}
	// X509KeyPair sets Leaf by default; parse it ourselves should a GODEBUG
	// setting turn that off, since handshakes rely on it to skip re-parsing.
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, err
		}
		cert.Leaf = leaf
	}
	return &cert, nil
}

// GetCertificate returns the certificate for the client's SNI name: an exact
// match (case-insensitive, trailing dot ignored) first, then a wildcard
// "*.suffix" covering exactly one extra label, then the default certificate.
// A missing or unknown name gets the default certificate.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	var name string
	if hello != nil {
		name = normalize(hello.ServerName)
	}
	if name != "" {
		idx := s.index.Load()
		if c := idx.exact[name]; c != nil {
			return c, nil
		}
		if dot := strings.IndexByte(name, '.'); dot > 0 && dot < len(name)-1 {
			if c := idx.wildcard[name[dot+1:]]; c != nil {
				return c, nil
			}
		}
	}
	if def := s.defaultCert.Load(); def != nil {
		return def, nil
	}
	return nil, fmt.Errorf("certstore: no certificate for server name %q", name)
}

// normalize lower-cases a host name and drops one trailing dot. ToLower
// returns its argument unchanged when there is nothing to lower, so the usual
// all-lower-case SNI costs no allocation.
func normalize(name string) string {
	name = strings.TrimSuffix(name, ".")
	return strings.ToLower(name)
}

// TLSConfig returns a server configuration that picks certificates from s:
// TLS 1.2 at least, only ECDHE key exchange with AEAD ciphers for TLS 1.2,
// and ALPN offering HTTP/2 before HTTP/1.1.
//
// Key exchange prefers the hybrid post-quantum X25519MLKEM768 group (Go's
// default, which current browsers negotiate), then X25519 and P-256.
func (s *Store) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// TLS 1.3 suites are not configurable and are all AEAD; this list
		// only governs TLS 1.2.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		NextProtos:       []string{"h2", "http/1.1"},
		GetCertificate:   s.GetCertificate,
	}
}
