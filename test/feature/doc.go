// Package feature holds Torii's feature tests: Kubernetes objects written to
// a manifest directory, served by the real server (source, controller, data
// plane, listeners), and checked with real HTTP and TLS requests against
// recording backends on loopback.
package feature
