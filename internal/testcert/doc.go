// Package testcert makes throwaway self-signed certificates for tests (TLS
// Secrets, SNI checks, rotation). It is imported by test code only.
package testcert
